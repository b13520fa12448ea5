#include "isolation/shared_region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <cstring>

#include "socket_pair.h"

namespace mm {
namespace {

std::span<const std::byte> Bytes(const char* s) {
  return std::as_bytes(std::span<const char>(s, std::strlen(s)));
}

TEST(SharedRegionTest, BothMappingsSeeTheSameBytes) {
  auto region = SharedRegion::Create("test", 1 << 20);
  ASSERT_TRUE(region.ok()) << region.status().message();
  EXPECT_EQ((*region)->size(), 1u << 20);
  EXPECT_EQ((*region)->bytes()[12345], std::byte{0});  // zero-filled
  // What the other process does with the descriptor it receives.
  auto other = SharedRegion::Adopt(::dup((*region)->fd()), 1 << 20);
  ASSERT_TRUE(other.ok()) << other.status().message();
  (*region)->bytes()[7] = std::byte{42};
  EXPECT_EQ((*other)->bytes()[7], std::byte{42});
  (*other)->bytes()[(1 << 20) - 1] = std::byte{9};
  EXPECT_EQ((*region)->bytes()[(1 << 20) - 1], std::byte{9});
}

TEST(SharedRegionTest, ItCannotBeResized) {
  auto region = SharedRegion::Create("test", 4096);
  ASSERT_TRUE(region.ok());
  EXPECT_NE(::ftruncate((*region)->fd(), 0), 0);     // sealed against shrinking
  EXPECT_NE(::ftruncate((*region)->fd(), 8192), 0);  // and growing
}

TEST(SharedRegionTest, AdoptChecksSizeAndSeals) {
  auto region = SharedRegion::Create("test", 4096);
  ASSERT_TRUE(region.ok());
  auto wrong = SharedRegion::Adopt(::dup((*region)->fd()), 8192);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(wrong.status().message().find("expected a memory file of 8192 bytes, got 4096"),
            std::string::npos)
      << wrong.status().message();
  // An unsealed memory file could be shrunk by the peer while mapped.
  const int unsealed = ::memfd_create("unsealed", MFD_CLOEXEC);
  ASSERT_GE(unsealed, 0);
  ASSERT_EQ(::ftruncate(unsealed, 4096), 0);
  auto bad = SharedRegion::Adopt(unsealed, 4096);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("not sealed"), std::string::npos);
  // Not a file at all.
  SocketPair sp;
  auto socket = SharedRegion::Adopt(::dup(sp.fds[0]), 4096);
  EXPECT_FALSE(socket.ok());
  EXPECT_FALSE(SharedRegion::Create("empty", 0).ok());
}

// Receiving descriptors is FrameReader's (worker_channel_test.cc).
TEST(SharedRegionTest, SendingToAClosedPeerFails) {
  auto region = SharedRegion::Create("test", 4096);
  ASSERT_TRUE(region.ok());
  SocketPair sp;
  sp.Close(0);
  Status s = SendWithFd(sp.fds[1], Bytes("x"), (*region)->fd());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.message();
}

}  // namespace
}  // namespace mm
