#include "isolation/worker_channel.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "isolation/shared_region.h"
#include "socket_pair.h"

namespace mm {
namespace {

TEST(WorkerChannelTest, FramesCrossInOrderWithTheirIds) {
  SocketPair sp;
  LoadRequest load;
  load.model_name = "m";
  load.version = 3;
  load.model_dir = "/models/m/3";
  ASSERT_TRUE(WriteWorkerFrame(sp.fds[0], WorkerMessageType::kLoad, 7, EncodeLoad(load)).ok());
  ASSERT_TRUE(WriteWorkerFrame(sp.fds[0], WorkerMessageType::kHealth, 8, "").ok());
  FrameReader reader(sp.fds[1]);
  auto first = reader.Read();  // both frames arrive in one receive: the second waits

  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(first->header.type, WorkerMessageType::kLoad);
  EXPECT_EQ(first->header.request_id, 7u);
  auto decoded = DecodeLoad(std::as_bytes(std::span<const char>(first->payload)));
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_EQ(decoded->model_dir, "/models/m/3");
  auto second = reader.Read();
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->header.type, WorkerMessageType::kHealth);
  EXPECT_TRUE(second->payload.empty());
}

TEST(WorkerChannelTest, ALargePayloadArrivesWhole) {
  SocketPair sp;
  // Larger than the socket buffer: the writer blocks until the reader reads.
  std::string payload;
  ExecuteReply reply;
  reply.results.resize(1);
  for (int i = 0; i < 1000; ++i) {
    reply.results[0].outputs.push_back(
        {"output_" + std::to_string(i), DataType::kFp32, {4}, 0, 16});
  }
  payload = EncodeExecuteReply(reply);
  std::thread writer([&] {
    for (int i = 0; i < 20; ++i) {
      EXPECT_TRUE(WriteWorkerFrame(sp.fds[0], WorkerMessageType::kReply, i, payload).ok());
    }
  });
  FrameReader reader(sp.fds[1]);
  for (int i = 0; i < 20; ++i) {
    auto frame = reader.Read();
    ASSERT_TRUE(frame.ok()) << frame.status().message();
    EXPECT_EQ(frame->header.request_id, static_cast<uint32_t>(i));
    EXPECT_EQ(frame->payload, payload);
  }
  writer.join();
}

TEST(WorkerChannelTest, APeerThatGoesAwaySaysWhere) {
  SocketPair sp;
  sp.Close(0);
  FrameReader reader(sp.fds[1]);
  auto clean = reader.Read();
  ASSERT_FALSE(clean.ok());
  EXPECT_EQ(clean.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(clean.status().message(), "worker socket: the peer closed");
  EXPECT_TRUE(reader.closed());
  EXPECT_EQ(WriteWorkerFrame(sp.fds[1], WorkerMessageType::kHealth, 1, "").code(),
            StatusCode::kUnavailable);

  SocketPair mid;
  std::string frame = Frame(WorkerMessageType::kLoad, 1, std::string(100, 'x'));
  ASSERT_EQ(::write(mid.fds[0], frame.data(), 16 + 40), 16 + 40);  // header + 40 of 100
  mid.Close(0);
  FrameReader mid_reader(mid.fds[1]);
  auto cut = mid_reader.Read();
  EXPECT_FALSE(mid_reader.closed());  // cut short, not a clean end
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(cut.status().message().find("in the middle of a Load message (40 of 100"),
            std::string::npos)
      << cut.status().message();

  SocketPair header;
  ASSERT_EQ(::write(header.fds[0], frame.data(), 5), 5);
  header.Close(0);
  auto partial = FrameReader(header.fds[1]).Read();
  ASSERT_FALSE(partial.ok());
  EXPECT_NE(partial.status().message().find("frame header (5 of 16 bytes)"), std::string::npos)
      << partial.status().message();
}

TEST(WorkerChannelTest, ABadHeaderIsRefusedBeforeAnyPayloadIsRead) {
  SocketPair sp;
  std::string frame = Frame(WorkerMessageType::kHealth, 1, "");
  frame[0] = 'X';  // magic
  ASSERT_EQ(::write(sp.fds[0], frame.data(), frame.size()), static_cast<ssize_t>(frame.size()));
  auto bad = FrameReader(sp.fds[1]).Read();
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteWorkerFrame(sp.fds[0], WorkerMessageType::kLoad, 1,
                             std::string(kMaxPayloadBytes + 1, 'x'))
                .code(),
            StatusCode::kInvalidArgument);
}

TEST(WorkerChannelTest, RegionFramesTakeTheirDescriptors) {
  SocketPair sp;
  auto region = SharedRegion::Create("channel-test", 4096);
  ASSERT_TRUE(region.ok());
  // A Region frame with its descriptor, then a plain frame: one receive may
  // bring both (and the descriptor with them).
  ASSERT_TRUE(WriteWorkerFrameWithFd(sp.fds[0], WorkerMessageType::kRegion, 0,
                                     EncodeRegion({0, 4096}), (*region)->fd())
                  .ok());
  ASSERT_TRUE(WriteWorkerFrame(sp.fds[0], WorkerMessageType::kHealth, 5, "").ok());
  FrameReader reader(sp.fds[1]);
  auto first = reader.Read();
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(first->header.type, WorkerMessageType::kRegion);
  ASSERT_GE(first->fd.get(), 0);
  auto adopted = SharedRegion::Adopt(first->fd.release(), 4096);
  EXPECT_TRUE(adopted.ok()) << adopted.status().message();
  auto second = reader.Read();
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_EQ(second->header.request_id, 5u);
  EXPECT_LT(second->fd.get(), 0);

  // A Region frame without a descriptor is refused.
  ASSERT_TRUE(
      WriteWorkerFrame(sp.fds[0], WorkerMessageType::kRegion, 0, EncodeRegion({0, 1})).ok());
  auto bare = reader.Read();
  ASSERT_FALSE(bare.ok());
  EXPECT_NE(bare.status().message().find("expected a descriptor"), std::string::npos);

  // A descriptor on a frame that is not a Region is refused.
  SocketPair stray;
  ASSERT_TRUE(
      WriteWorkerFrameWithFd(stray.fds[0], WorkerMessageType::kHealth, 1, "", (*region)->fd())
          .ok());
  FrameReader stray_reader(stray.fds[1]);
  ASSERT_TRUE(stray_reader.Read().ok());  // the Health frame itself
  auto next = stray_reader.Read();
  ASSERT_FALSE(next.ok());
  EXPECT_NE(
      next.status().message().find("descriptor came without a Region, Mailbox or Calls frame"),
      std::string::npos)
      << next.status().message();
}

TEST(WorkerChannelTest, AReceiveTimeoutIsDeadlineExceeded) {
  SocketPair sp;
  timeval tv{0, 20'000};  // 20 ms; nothing is ever sent
  ASSERT_EQ(::setsockopt(sp.fds[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
  auto r = FrameReader(sp.fds[1]).Read();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace mm
