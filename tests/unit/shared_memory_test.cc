#include "service/shared_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>

namespace mm {
namespace {

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
  std::string key_;
};

TEST_F(SharedMemoryTest, RegisterResolveAndList) {
  SharedMemoryManager m;
  ASSERT_TRUE(m.Register("r", key_, 4100, 100).ok());  // an offset that is not page aligned
  EXPECT_EQ(m.Register("r", key_, 0, 10).code(), StatusCode::kAlreadyExists);
  auto w = m.Resolve("r", 10, 20, "input 'x'");
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  std::memcpy(w->bytes.data(), "hello", 5);
  // The bytes land at key offset 4100 + 10.
  int fd = shm_open(key_.c_str(), O_RDONLY, 0);
  char buf[5];
  ASSERT_EQ(pread(fd, buf, 5, 4110), 5);
  close(fd);
  EXPECT_EQ(std::string(buf, 5), "hello");
  auto list = m.List("");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].offset, 4100u);
  EXPECT_EQ(m.List("nope").status().code(), StatusCode::kNotFound);
}

TEST_F(SharedMemoryTest, BadReferencesAreClearErrors) {
  SharedMemoryManager m;
  EXPECT_EQ(m.Register("r", "/mmserve_missing_key", 0, 8).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m.Register("r", key_, 8000, 500).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m.Register("r", key_, 0, 0).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(m.Register("r", key_, 0, 64).ok());
  EXPECT_EQ(m.Resolve("x", 0, 1, "input 'a'").status().code(), StatusCode::kNotFound);
  auto oob = m.Resolve("r", 60, 8, "input 'a'");
  EXPECT_EQ(oob.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(oob.status().message().find("input 'a'"), std::string::npos);
  EXPECT_FALSE(m.Resolve("r", ~0ULL, 2, "input 'a'").ok());  // no overflow
  EXPECT_EQ(m.Unregister("x").code(), StatusCode::kNotFound);
}

TEST_F(SharedMemoryTest, AResolvedWindowOutlivesUnregister) {
  SharedMemoryManager m;
  ASSERT_TRUE(m.Register("r", key_, 0, 64).ok());
  auto w = m.Resolve("r", 0, 64, "input 'x'");
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(m.Unregister("r").ok());
  EXPECT_FALSE(m.Resolve("r", 0, 1, "input 'x'").ok());
  std::memset(w->bytes.data(), 7, 64);  // still mapped: an unmapped write would fault
  EXPECT_EQ(static_cast<int>(w->bytes[63]), 7);
}

}  // namespace
}  // namespace mm
