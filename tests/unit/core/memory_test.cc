#include "core/memory.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

namespace mm {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kKiB = 1ull << 10;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;
constexpr uint64_t kTiB = 1ull << 40;
constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

uint64_t Parse(std::string_view text, uint64_t total = 0) {
  auto parsed = ParseByteSize(text, total);
  EXPECT_TRUE(parsed.ok()) << text << ": " << parsed.status().ToString();
  return parsed.ok() ? *parsed : 0;
}

// The message of a parse that must fail with INVALID_ARGUMENT.
std::string ParseError(std::string_view text, uint64_t total = 1000) {
  auto parsed = ParseByteSize(text, total);
  EXPECT_FALSE(parsed.ok()) << text << " parsed as " << (parsed.ok() ? *parsed : 0);
  if (parsed.ok()) return "";
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << text;
  EXPECT_THAT(parsed.status().message(), HasSubstr("'" + std::string(text) + "'"));
  EXPECT_THAT(parsed.status().message(), HasSubstr("expected a non-negative number"));
  return parsed.status().message();
}

// Keeps the compiler from eliding a malloc/memset/free sequence.
void Escape(void* p) { asm volatile("" : : "g"(p) : "memory"); }

TEST(ParseByteSizeTest, PlainBytes) {
  EXPECT_EQ(Parse("0"), 0u);
  EXPECT_EQ(Parse("1048576"), 1048576u);
  EXPECT_EQ(Parse("512B"), 512u);
  EXPECT_EQ(Parse("512b"), 512u);
  EXPECT_EQ(Parse("18446744073709551615"), kMax);
  EXPECT_EQ(Parse("1.9"), 1u);  // truncated to whole bytes
}

TEST(ParseByteSizeTest, BinaryUnits) {
  EXPECT_EQ(Parse("64KiB"), 64 * kKiB);
  EXPECT_EQ(Parse("64K"), 64 * kKiB);
  EXPECT_EQ(Parse("64k"), 64 * kKiB);
  EXPECT_EQ(Parse("300M"), 300 * kMiB);
  EXPECT_EQ(Parse("512MiB"), 512 * kMiB);
  EXPECT_EQ(Parse("512mib"), 512 * kMiB);
  EXPECT_EQ(Parse("2G"), 2 * kGiB);
  EXPECT_EQ(Parse("4GiB"), 4 * kGiB);
  EXPECT_EQ(Parse("4GIB"), 4 * kGiB);
  EXPECT_EQ(Parse("3T"), 3 * kTiB);
  EXPECT_EQ(Parse("3TiB"), 3 * kTiB);
  EXPECT_EQ(Parse("1.5GiB"), kGiB + kGiB / 2);
  EXPECT_EQ(Parse("0.5K"), 512u);
}

TEST(ParseByteSizeTest, DecimalUnits) {
  EXPECT_EQ(Parse("64KB"), 64'000u);
  EXPECT_EQ(Parse("64kb"), 64'000u);
  EXPECT_EQ(Parse("300MB"), 300'000'000u);
  EXPECT_EQ(Parse("1.5GB"), 1'500'000'000u);
  EXPECT_EQ(Parse("2gb"), 2'000'000'000u);
  EXPECT_EQ(Parse("7TB"), 7'000'000'000'000u);
  EXPECT_EQ(Parse("0.001KB"), 1u);
}

TEST(ParseByteSizeTest, WhitespaceAroundAndBeforeTheUnit) {
  EXPECT_EQ(Parse("  512MiB\t"), 512 * kMiB);
  EXPECT_EQ(Parse("\n2G "), 2 * kGiB);
  EXPECT_EQ(Parse("1.5 GB"), 1'500'000'000u);
  EXPECT_EQ(Parse(" 50 % ", 1000), 500u);
}

TEST(ParseByteSizeTest, Percentages) {
  EXPECT_EQ(Parse("50%", 1000), 500u);
  EXPECT_EQ(Parse("100%", 12345), 12345u);
  EXPECT_EQ(Parse("12.5%", 1000), 125u);
  EXPECT_EQ(Parse("0.1%", 1000), 1u);
  EXPECT_EQ(Parse("33%", 100), 33u);
  EXPECT_EQ(Parse("100%", kMax), kMax);  // no overflow in between
  EXPECT_EQ(Parse("50%", kMax), kMax / 2);
}

TEST(ParseByteSizeTest, Errors) {
  EXPECT_THAT(ParseError(""), HasSubstr("is empty"));
  EXPECT_THAT(ParseError("   "), HasSubstr("is empty"));
  EXPECT_THAT(ParseError("-1"), HasSubstr("is negative"));
  EXPECT_THAT(ParseError(" -5GiB"), HasSubstr("is negative"));
  EXPECT_THAT(ParseError("GiB"), HasSubstr("does not start with a number"));
  EXPECT_THAT(ParseError("+5"), HasSubstr("does not start with a number"));
  EXPECT_THAT(ParseError(".5G"), HasSubstr("does not start with a number"));
  EXPECT_THAT(ParseError("5.G"), HasSubstr("no digits after the decimal point"));
  EXPECT_THAT(ParseError("5XB"), HasSubstr("unknown unit 'XB'"));
  EXPECT_THAT(ParseError("5 bytes"), HasSubstr("unknown unit 'bytes'"));
  EXPECT_THAT(ParseError("1e9"), HasSubstr("unknown unit 'e9'"));
  EXPECT_THAT(ParseError("1,000"), HasSubstr("unknown unit ',000'"));
  EXPECT_THAT(ParseError("5%%"), HasSubstr("unknown unit '%%'"));
  // Overflow: in the number itself, and after the unit.
  EXPECT_THAT(ParseError("18446744073709551616"), HasSubstr("more than 2^64-1 bytes"));
  EXPECT_THAT(ParseError("99999999999999999999999G"), HasSubstr("more than 2^64-1 bytes"));
  EXPECT_THAT(ParseError("16777216TiB"), HasSubstr("more than 2^64-1 bytes"));
  EXPECT_THAT(ParseError("18446744073709551615.5K"), HasSubstr("more than 2^64-1 bytes"));
  // Percentages outside (0,100], and without a total.
  EXPECT_THAT(ParseError("0%"), HasSubstr("outside (0,100]"));
  EXPECT_THAT(ParseError("0.0%"), HasSubstr("outside (0,100]"));
  EXPECT_THAT(ParseError("100.01%"), HasSubstr("outside (0,100]"));
  EXPECT_THAT(ParseError("150%"), HasSubstr("outside (0,100]"));
  EXPECT_THAT(ParseError("99999999999999999999999%"), HasSubstr("outside (0,100]"));
  EXPECT_THAT(ParseError("-50%"), HasSubstr("is negative"));
  EXPECT_THAT(ParseError("50%", 0), HasSubstr("total that is unknown"));
}

TEST(FormatBytesTest, Boundaries) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1024), "1.0 KiB");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(10 * kKiB - 1), "10.0 KiB");  // 9.999 rounds up to one decimal
  EXPECT_EQ(FormatBytes(10 * kKiB), "10.0 KiB");
  EXPECT_EQ(FormatBytes(12 * kMiB), "12.0 MiB");
  EXPECT_EQ(FormatBytes(3 * kGiB + kGiB / 4), "3.25 GiB");
  EXPECT_EQ(FormatBytes(kMiB - 1), "1.0 MiB");  // not "1024.0 KiB"
  EXPECT_EQ(FormatBytes(kMiB - 60 * kKiB), "964.0 KiB");
  EXPECT_EQ(FormatBytes(kGiB), "1.0 GiB");
  EXPECT_EQ(FormatBytes(5 * kTiB), "5.0 TiB");
  EXPECT_EQ(FormatBytes(kTiB * 1024), "1.0 PiB");
  EXPECT_EQ(FormatBytes(kMax), "16.0 EiB");
}

TEST(MemoryProbeTest, PhysicalMemoryIsKnown) {
  EXPECT_GT(PhysicalMemoryBytes(), 64 * kMiB);
  EXPECT_GT(ProcessResidentBytes(), 0u);
  EXPECT_LT(ProcessResidentBytes(), PhysicalMemoryBytes());
}

// A fake /proc/self/cgroup and /sys/fs/cgroup under a temporary folder.
class UsableMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("mm_usable_memory_test_" + std::to_string(::getpid()));
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_ / "cg");
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  void Write(const std::string& relative, const std::string& text) {
    std::filesystem::create_directories((root_ / relative).parent_path());
    std::ofstream(root_ / relative) << text;
  }
  uint64_t Usable() { return UsableMemoryBytes(root_ / "self_cgroup", root_ / "cg"); }
  std::filesystem::path root_;
};

TEST_F(UsableMemoryTest, WithoutALimitItIsThePhysicalMemory) {
  Write("self_cgroup", "0::/\n");
  EXPECT_EQ(Usable(), PhysicalMemoryBytes());
  Write("cg/memory.max", "max\n");
  EXPECT_EQ(Usable(), PhysicalMemoryBytes());
  Write("self_cgroup", "");  // no cgroup line at all, or no file
  EXPECT_EQ(Usable(), PhysicalMemoryBytes());
  EXPECT_EQ(UsableMemoryBytes(root_ / "missing", root_ / "cg"), PhysicalMemoryBytes());
}

TEST_F(UsableMemoryTest, TheSmallestLimitOnTheWayUpCountsInV2) {
  Write("self_cgroup", "0::/kubepods/pod1/ctr\n");
  Write("cg/kubepods/pod1/ctr/memory.max", "max\n");
  Write("cg/kubepods/pod1/memory.max", std::to_string(2 * kGiB) + "\n");
  Write("cg/kubepods/memory.max", std::to_string(4 * kGiB) + "\n");
  EXPECT_EQ(Usable(), std::min<uint64_t>(2 * kGiB, PhysicalMemoryBytes()));
  // A container's own view (cgroup namespace): "/" and the limit at the top.
  Write("self_cgroup", "0::/\n");
  Write("cg/memory.max", std::to_string(256 * kMiB) + "\n");
  EXPECT_EQ(Usable(), 256 * kMiB);
}

TEST_F(UsableMemoryTest, V1MemoryControllerAndItsNoLimitValue) {
  Write("self_cgroup", "5:cpu,cpuacct:/x\n4:memory:/docker/abc\n0::/\n");
  Write("cg/memory/docker/abc/memory.limit_in_bytes", "9223372036854771712\n");  // no limit
  EXPECT_EQ(Usable(), PhysicalMemoryBytes());
  Write("cg/memory/docker/memory.limit_in_bytes", std::to_string(512 * kMiB) + "\n");
  EXPECT_EQ(Usable(), 512 * kMiB);
  Write("cg/memory/docker/abc/memory.limit_in_bytes", "garbage\n");  // unreadable: ignored
  EXPECT_EQ(Usable(), 512 * kMiB);
}

TEST(MemoryProbeTest, ResidentAndHeapGrowWithATouchedAllocation) {
  constexpr size_t kSize = 64 * kMiB;
  constexpr uint64_t kAtLeast = 32 * kMiB;
  uint64_t rss_before = ProcessResidentBytes();
  uint64_t heap_before = HeapInUseBytes();
  void* p = std::malloc(kSize);
  ASSERT_NE(p, nullptr);
  std::memset(p, 0x5a, kSize);
  Escape(p);
  uint64_t rss_during = ProcessResidentBytes();
  uint64_t heap_during = HeapInUseBytes();
  std::free(p);
  Escape(p);
  uint64_t heap_after = HeapInUseBytes();
  ReleaseFreeMemory();

  EXPECT_GE(rss_during, rss_before + kAtLeast)
      << FormatBytes(rss_before) << " -> " << FormatBytes(rss_during);
  EXPECT_GE(heap_during, heap_before + kAtLeast)
      << FormatBytes(heap_before) << " -> " << FormatBytes(heap_during);
  EXPECT_LE(heap_after + kAtLeast, heap_during)
      << FormatBytes(heap_during) << " -> " << FormatBytes(heap_after);
}

}  // namespace
}  // namespace mm
