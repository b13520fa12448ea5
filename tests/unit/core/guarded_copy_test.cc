#include "core/guarded_copy.h"

#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <thread>
#include <vector>

namespace mm {
namespace {

// A memfd of three pages, mapped whole, then truncated to one page: its
// second and third pages now raise SIGBUS when touched.
class TruncatedMapping {
 public:
  TruncatedMapping() {
    page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    fd_ = memfd_create("guarded_copy_test", MFD_CLOEXEC);
    EXPECT_GE(fd_, 0);
    EXPECT_EQ(ftruncate(fd_, static_cast<off_t>(3 * page_)), 0);
    map_ = static_cast<std::byte*>(
        mmap(nullptr, 3 * page_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0));
    EXPECT_NE(map_, MAP_FAILED);
    std::memset(map_, 0x5a, 3 * page_);
    EXPECT_EQ(ftruncate(fd_, static_cast<off_t>(page_)), 0);  // the client shrinks it
  }
  ~TruncatedMapping() {
    munmap(map_, 3 * page_);
    close(fd_);
  }
  std::byte* map() const { return map_; }
  size_t page() const { return page_; }

 private:
  int fd_ = -1;
  size_t page_ = 0;
  std::byte* map_ = nullptr;
};

TEST(GuardedCopy, CopiesLikeMemcpy) {
  std::vector<char> src(10000), dst(10000);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<char>(i * 7);
  ASSERT_TRUE(GuardedCopy(dst.data(), src.data(), src.size()).ok());
  EXPECT_EQ(src, dst);
  EXPECT_TRUE(GuardedCopy(nullptr, nullptr, 0).ok());
}

TEST(GuardedCopy, ReadingPastATruncatedObjectIsAnError) {
  TruncatedMapping m;
  std::vector<std::byte> dst(3 * m.page());
  // The page still inside the object copies as usual.
  ASSERT_TRUE(GuardedCopy(dst.data(), m.map(), m.page()).ok());
  EXPECT_EQ(dst[0], std::byte{0x5a});
  // Beyond it: an error naming the first missing byte, not a crash.
  Status s = GuardedCopy(dst.data(), m.map(), 3 * m.page());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("the source became unreadable at byte " + std::to_string(m.page()) +
                             " of " + std::to_string(3 * m.page())),
            std::string::npos)
      << s.message();
  // Starting beyond the end: byte 0 of the copy.
  s = GuardedCopy(dst.data(), m.map() + 2 * m.page() + 8, 16);
  EXPECT_NE(s.message().find("unreadable at byte 0 of 16"), std::string::npos) << s.message();
  // The thread is not left in a guarded state: a later copy works.
  EXPECT_TRUE(GuardedCopy(dst.data(), m.map(), 64).ok());
}

TEST(GuardedCopy, WritingPastATruncatedObjectIsAnError) {
  TruncatedMapping m;
  std::vector<std::byte> src(2 * m.page(), std::byte{1});
  Status s = GuardedCopy(m.map() + m.page() / 2, src.data(), src.size());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(
      s.message().find("the destination became unwritable at byte " + std::to_string(m.page() / 2)),
      std::string::npos)
      << s.message();
  EXPECT_EQ(m.map()[m.page() / 2], std::byte{1});  // what fit was written
}

TEST(GuardedCopy, ManyThreadsAtOnce) {
  TruncatedMapping m;
  std::vector<std::thread> threads;
  std::vector<int> faults(8, 0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::byte> dst(2 * m.page());
      for (int i = 0; i < 200; ++i) {
        faults[t] += !GuardedCopy(dst.data(), m.map(), dst.size()).ok();
        EXPECT_TRUE(GuardedCopy(dst.data(), m.map(), m.page()).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int f : faults) EXPECT_EQ(f, 200);
}

TEST(GuardedCopyDeathTest, AnUnguardedFaultStillKills) {
  InstallGuardedCopyHandler();
  TruncatedMapping m;
  // Outside a guarded copy the fault is not hidden: the process dies (under
  // ASan, by ASan's report, whose handler was chained).
  EXPECT_DEATH(
      {
        volatile std::byte* p = m.map() + 2 * m.page();
        std::byte b = *p;
        (void)b;
      },
      "");
}

}  // namespace
}  // namespace mm
