#include "isolation/region_pool.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cstring>
#include <memory>
#include <vector>

#include "isolation/worker_channel.h"
#include "isolation/worker_protocol.h"
#include "socket_pair.h"

namespace mm::isolation_internal {
namespace {

using ::testing::HasSubstr;

// The worker's side: the next Region frame, its region mapped as the worker
// maps it.
struct Received {
  RegionMessage message;
  std::unique_ptr<SharedRegion> region;
};
// (A frame that is not there fails the test after a while, not hangs it.)
Received NextRegion(FrameReader& reader) {
  auto frame = reader.Read();
  EXPECT_TRUE(frame.ok()) << frame.status().message();
  EXPECT_EQ(frame->header.type, WorkerMessageType::kRegion);
  auto message = DecodeRegion(std::as_bytes(std::span<const char>(frame->payload)));
  EXPECT_TRUE(message.ok()) << message.status().message();
  auto region = SharedRegion::Adopt(frame->fd.release(), message->bytes);
  EXPECT_TRUE(region.ok()) << region.status().message();
  return {*message, std::move(*region)};
}

// The worker's end of `sp`, which gives up on a frame after 30 s.
FrameReader WorkerEnd(SocketPair& sp) {
  timeval timeout{30, 0};
  EXPECT_EQ(setsockopt(sp.fds[1], SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout), 0);
  return FrameReader(sp.fds[1]);
}

// A pool whose worker is the other end of a socket pair.
class RegionPoolTest : public testing::Test {
 protected:
  SocketPair sp;
  FrameReader worker = WorkerEnd(sp);
  RegionPool pool{"m", 4096, "model 'm' version 1"};
  uint32_t frames = 0;  // frames the pool wrote
};

TEST_F(RegionPoolTest, AFreeRegionIsReusedAndSentOnlyOnce) {
  auto first = pool.Take(sp.fds[0], 100, &frames);
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(*first, 0u);
  EXPECT_EQ(frames, 1u);
  EXPECT_EQ(pool.at(0)->size(), 4096u);  // at least initial_bytes
  Received sent = NextRegion(worker);
  EXPECT_EQ(sent.message.id, 0u);
  EXPECT_EQ(sent.message.bytes, 4096u);
  // The worker sees what the server writes: the same memory.
  std::memcpy(pool.at(0)->bytes().data(), "abc", 3);
  EXPECT_EQ(std::memcmp(sent.region->bytes().data(), "abc", 3), 0);

  // Nothing holds it: the next batch takes it again, with no frame.
  auto again = pool.Take(sp.fds[0], 4096, &frames);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0u);
  EXPECT_EQ(frames, 1u);
  EXPECT_EQ(pool.size(), 1u);
}

TEST_F(RegionPoolTest, AHeldRegionIsNeverTakenAndTheLastIdsAreReplaced) {
  std::vector<std::shared_ptr<SharedRegion>> held;  // responses holding their outputs' regions
  for (uint32_t i = 0; i < kMaxRegions; ++i) {
    auto id = pool.Take(sp.fds[0], 10, &frames);
    ASSERT_TRUE(id.ok());
    EXPECT_EQ(*id, i);
    held.push_back(pool.at(*id));
    EXPECT_EQ(NextRegion(worker).message.id, i);
  }
  EXPECT_EQ(frames, kMaxRegions);
  // Every id is held: a fresh region replaces one; the held one lives on.
  const SharedRegion* before = held[0].get();
  auto replaced = pool.Take(sp.fds[0], 10, &frames);
  ASSERT_TRUE(replaced.ok());
  EXPECT_EQ(*replaced, 0u);
  EXPECT_NE(pool.at(0).get(), before);
  EXPECT_EQ(held[0].get(), before);
  EXPECT_EQ(NextRegion(worker).message.id, 0u);
  // Held too: the next replacement takes the next id.
  held.push_back(pool.at(0));
  auto next = pool.Take(sp.fds[0], 10, &frames);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, 1u);
  EXPECT_EQ(NextRegion(worker).message.id, 1u);
  held.push_back(pool.at(1));
  // Once a holder lets go, its region is free again (no new frame).
  held[5].reset();
  const uint32_t frames_before = frames;
  auto freed = pool.Take(sp.fds[0], 10, &frames);
  ASSERT_TRUE(freed.ok());
  EXPECT_EQ(*freed, 5u);
  EXPECT_EQ(frames, frames_before);
}

TEST_F(RegionPoolTest, ARegionGrowsAtLeastTwofoldAndIsSentAgain) {
  ASSERT_TRUE(pool.Take(sp.fds[0], 10, &frames).ok());
  NextRegion(worker);
  // Too small for the next batch: made larger under the same id.
  auto id = pool.Take(sp.fds[0], 5000, &frames);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(*id, 0u);
  EXPECT_GE(pool.at(0)->size(), 8192u);
  Received grown = NextRegion(worker);
  EXPECT_EQ(grown.message.id, 0u);
  EXPECT_EQ(grown.message.bytes, pool.at(0)->size());
  // Outputs that did not fit: Grow asks for at least what is needed.
  ASSERT_TRUE(pool.Grow(sp.fds[0], 0, 100000, &frames).ok());
  EXPECT_GE(pool.at(0)->size(), 100000u);
  EXPECT_EQ(NextRegion(worker).message.bytes, pool.at(0)->size());
  EXPECT_EQ(frames, 3u);
}

TEST_F(RegionPoolTest, AWorkerThatIsGoneFailsTheTakeAndLeavesNoId) {
  sp.Close(1);
  auto id = pool.Take(sp.fds[0], 10, &frames);
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), StatusCode::kUnavailable) << id.status().message();
  EXPECT_EQ(pool.size(), 0u);
  EXPECT_EQ(frames, 0u);
}

TEST_F(RegionPoolTest, ClearForgetsTheRegionsButNotTheirHolders) {
  ASSERT_TRUE(pool.Take(sp.fds[0], 10, &frames).ok());
  std::shared_ptr<SharedRegion> held = pool.at(0);
  pool.Clear();  // a new worker process
  EXPECT_EQ(pool.size(), 0u);
  EXPECT_EQ(held.use_count(), 1);
  auto id = pool.Take(sp.fds[0], 10, &frames);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(*id, 0u);
  EXPECT_NE(pool.at(0).get(), held.get());
}

}  // namespace
}  // namespace mm::isolation_internal
