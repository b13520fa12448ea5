#include "service/shared_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace mm {
namespace {

std::span<const std::byte> Bytes(const char* s) {
  return {reinterpret_cast<const std::byte*>(s), std::strlen(s)};
}

class SharedMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = "/mmserve_unit_" + std::to_string(getpid());
    int fd = shm_open(key_.c_str(), O_CREAT | O_RDWR, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, 8192), 0);
    close(fd);
  }
  void TearDown() override { shm_unlink(key_.c_str()); }
  void Truncate(off_t size) {
    int fd = shm_open(key_.c_str(), O_RDWR, 0);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, size), 0);
    close(fd);
  }
  std::string key_;
};

TEST_F(SharedMemoryTest, RegisterResolveAndList) {
  SharedMemoryManager m;
  ASSERT_TRUE(m.Register("a", "r", key_, 4100, 100).ok());  // an offset that is not page aligned
  EXPECT_EQ(m.Register("a", "r", key_, 0, 10).code(), StatusCode::kAlreadyExists);
  auto w = m.Resolve("a", "r", 10, 20, "input 'x'");
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w->size(), 20u);
  ASSERT_TRUE(w->WriteFrom(Bytes("hello"), "output 'y'").ok());
  // The bytes land at key offset 4100 + 10.
  int fd = shm_open(key_.c_str(), O_RDONLY, 0);
  char buf[5];
  ASSERT_EQ(pread(fd, buf, 5, 4110), 5);
  close(fd);
  EXPECT_EQ(std::string(buf, 5), "hello");
  std::vector<std::byte> back(20);
  ASSERT_TRUE(w->ReadInto(back.data(), "input 'x'").ok());
  EXPECT_EQ(std::memcmp(back.data(), "hello", 5), 0);
  EXPECT_EQ(w->WriteFrom(std::vector<std::byte>(21), "output 'y'").code(),
            StatusCode::kInvalidArgument);
  auto list = m.List("a", "");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].offset, 4100u);
  EXPECT_EQ(m.List("a", "nope").status().code(), StatusCode::kNotFound);
}

TEST_F(SharedMemoryTest, BadReferencesAreClearErrors) {
  SharedMemoryManager m;
  EXPECT_EQ(m.Register("a", "r", "/mmserve_missing_key", 0, 8).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(m.Register("a", "r", key_, 8000, 500).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m.Register("a", "r", key_, 0, 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m.Register("a", "", key_, 0, 8).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(
      m.Register("a", std::string(SharedMemoryManager::kMaxNameBytes + 1, 'n'), key_, 0, 8).code(),
      StatusCode::kInvalidArgument);
  ASSERT_TRUE(m.Register("a", "r", key_, 0, 64).ok());
  EXPECT_EQ(m.Resolve("a", "x", 0, 1, "input 'a'").status().code(), StatusCode::kNotFound);
  auto oob = m.Resolve("a", "r", 60, 8, "input 'a'");
  EXPECT_EQ(oob.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(oob.status().message().find("input 'a'"), std::string::npos);
  EXPECT_FALSE(m.Resolve("a", "r", ~0ULL, 2, "input 'a'").ok());  // no overflow
  EXPECT_EQ(m.Unregister("a", "x").code(), StatusCode::kNotFound);
}

TEST_F(SharedMemoryTest, AResolvedWindowOutlivesUnregister) {
  SharedMemoryManager m;
  ASSERT_TRUE(m.Register("a", "r", key_, 0, 64).ok());
  auto w = m.Resolve("a", "r", 0, 64, "input 'x'");
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(m.Unregister("a", "r").ok());
  EXPECT_FALSE(m.Resolve("a", "r", 0, 1, "input 'x'").ok());
  std::vector<std::byte> sevens(64, std::byte{7}), back(64);
  ASSERT_TRUE(w->WriteFrom(sevens, "output 'y'").ok());  // still mapped
  ASSERT_TRUE(w->ReadInto(back.data(), "input 'x'").ok());
  EXPECT_EQ(back, sevens);
}

// Regions are owned: another tenant's region is exactly an unknown one, and
// names never collide across tenants.
TEST_F(SharedMemoryTest, EachTenantHasItsOwnNamespace) {
  SharedMemoryManager m;
  ASSERT_TRUE(m.Register("ops", "r", key_, 0, 64).ok());
  // Exactly what a name nobody registered gets, whichever the operation.
  const std::string unknown = "no shared memory region named 'r' is registered";
  for (const Status& s : {m.Resolve("team-a", "r", 0, 16, "input 'x'").status(),
                          m.List("team-a", "r").status(), m.Unregister("team-a", "r")}) {
    EXPECT_EQ(s.code(), StatusCode::kNotFound);
    EXPECT_NE(s.message().find(unknown), std::string::npos) << s.message();
  }
  EXPECT_EQ(m.Resolve("team-a", "r", 0, 16, "input 'x'").status().message(),
            "input 'x': " + unknown);
  EXPECT_EQ(m.Unregister("nobody", "r").message(), unknown);
  EXPECT_TRUE(m.List("team-a", "")->empty());
  // team-a may use the same name for its own region; each resolves its own.
  ASSERT_TRUE(m.Register("team-a", "r", key_, 4096, 64).ok());
  ASSERT_TRUE(m.Resolve("ops", "r", 0, 4, "input 'x'")->WriteFrom(Bytes("OPS!"), "o").ok());
  ASSERT_TRUE(m.Resolve("team-a", "r", 0, 4, "input 'x'")->WriteFrom(Bytes("AAAA"), "o").ok());
  std::vector<std::byte> back(4);
  ASSERT_TRUE(m.Resolve("ops", "r", 0, 4, "input 'x'")->ReadInto(back.data(), "i").ok());
  EXPECT_EQ(std::memcmp(back.data(), "OPS!", 4), 0);
  EXPECT_EQ((*m.List("team-a", ""))[0].offset, 4096u);
  // Unregistering all is per tenant.
  m.UnregisterAll("team-a");
  EXPECT_TRUE(m.List("team-a", "")->empty());
  EXPECT_EQ(m.List("ops", "")->size(), 1u);
  // A tenant a reload removed loses its regions.
  ASSERT_TRUE(m.Register("team-b", "r", key_, 0, 8).ok());
  m.RetainOwners({"ops"});
  EXPECT_TRUE(m.List("team-b", "")->empty());
  EXPECT_EQ(m.List("ops", "")->size(), 1u);
}

TEST_F(SharedMemoryTest, RegionsPerTenantAreBounded) {
  SharedMemoryManager m({.max_regions_per_tenant = 2});
  ASSERT_TRUE(m.Register("a", "r1", key_, 0, 8).ok());
  ASSERT_TRUE(m.Register("a", "r2", key_, 0, 8).ok());
  Status s = m.Register("a", "r3", key_, 0, 8);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("--max-shm-regions-per-tenant"), std::string::npos) << s.message();
  EXPECT_TRUE(m.Register("b", "r3", key_, 0, 8).ok());  // another tenant's count is its own
  ASSERT_TRUE(m.Unregister("a", "r1").ok());
  EXPECT_TRUE(m.Register("a", "r3", key_, 0, 8).ok());
}

// Client memory is the client's problem: a shrunk object fails the copy with
// a clear error naming the region and key, in both directions.
TEST_F(SharedMemoryTest, AShrunkObjectIsAnErrorNotACrash) {
  SharedMemoryManager m;
  ASSERT_TRUE(m.Register("a", "r", key_, 0, 8192).ok());
  auto w = m.Resolve("a", "r", 0, 8192, "input 'x'");
  ASSERT_TRUE(w.ok());
  Truncate(100);
  std::vector<std::byte> buf(8192);
  Status in = w->ReadInto(buf.data(), "input 'x'");
  EXPECT_EQ(in.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(in.message().find("input 'x': shared memory region 'r' (key '" + key_ + "')"),
            std::string::npos)
      << in.message();
  EXPECT_NE(in.message().find("became unreadable at byte 4096 of 8192"), std::string::npos)
      << in.message();
  Status out = w->WriteFrom(buf, "output 'y'");
  EXPECT_EQ(out.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(out.message().find("output 'y'"), std::string::npos) << out.message();
  EXPECT_NE(out.message().find("unwritable"), std::string::npos) << out.message();
  // The first page is still inside the object.
  auto first = m.Resolve("a", "r", 0, 100, "input 'x'");
  EXPECT_TRUE(first->ReadInto(buf.data(), "input 'x'").ok());
}

}  // namespace
}  // namespace mm
