#include "isolation/worker_channel.h"

#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>
#include <thread>

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
  auto first = ReadWorkerFrame(sp.fds[1]);
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(first->header.type, WorkerMessageType::kLoad);
  EXPECT_EQ(first->header.request_id, 7u);
  auto decoded = DecodeLoad(std::as_bytes(std::span<const char>(first->payload)));
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_EQ(decoded->model_dir, "/models/m/3");
  auto second = ReadWorkerFrame(sp.fds[1]);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->header.type, WorkerMessageType::kHealth);
  EXPECT_TRUE(second->payload.empty());
}

TEST(WorkerChannelTest, ALargePayloadArrivesWhole) {
  SocketPair sp;
  // Larger than the socket buffer: the writer blocks until the reader reads.
  std::string payload;
  ExecuteReply reply;
  for (int i = 0; i < 1000; ++i) {
    reply.outputs.push_back({"output_" + std::to_string(i), DataType::kFp32, {4}, 0, 16});
  }
  payload = EncodeExecuteReply(reply);
  std::thread writer([&] {
    for (int i = 0; i < 20; ++i) {
      EXPECT_TRUE(WriteWorkerFrame(sp.fds[0], WorkerMessageType::kReply, i, payload).ok());
    }
  });
  for (int i = 0; i < 20; ++i) {
    auto frame = ReadWorkerFrame(sp.fds[1]);
    ASSERT_TRUE(frame.ok()) << frame.status().message();
    EXPECT_EQ(frame->header.request_id, static_cast<uint32_t>(i));
    EXPECT_EQ(frame->payload, payload);
  }
  writer.join();
}

TEST(WorkerChannelTest, APeerThatGoesAwaySaysWhere) {
  SocketPair sp;
  sp.Close(0);
  auto clean = ReadWorkerFrame(sp.fds[1]);
  ASSERT_FALSE(clean.ok());
  EXPECT_EQ(clean.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(clean.status().message(), "worker socket: the peer closed");
  EXPECT_EQ(WriteWorkerFrame(sp.fds[1], WorkerMessageType::kHealth, 1, "").code(),
            StatusCode::kUnavailable);

  SocketPair mid;
  std::string frame = Frame(WorkerMessageType::kLoad, 1, std::string(100, 'x'));
  ASSERT_EQ(::write(mid.fds[0], frame.data(), 16 + 40), 16 + 40);  // header + 40 of 100
  mid.Close(0);
  auto cut = ReadWorkerFrame(mid.fds[1]);
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(cut.status().message().find("in the middle of a Load message (40 of 100"),
            std::string::npos)
      << cut.status().message();

  SocketPair header;
  ASSERT_EQ(::write(header.fds[0], frame.data(), 5), 5);
  header.Close(0);
  auto partial = ReadWorkerFrame(header.fds[1]);
  ASSERT_FALSE(partial.ok());
  EXPECT_NE(partial.status().message().find("frame header (5 of 16 bytes)"), std::string::npos)
      << partial.status().message();
}

TEST(WorkerChannelTest, ABadHeaderIsRefusedBeforeAnyPayloadIsRead) {
  SocketPair sp;
  std::string frame = Frame(WorkerMessageType::kHealth, 1, "");
  frame[0] = 'X';  // magic
  ASSERT_EQ(::write(sp.fds[0], frame.data(), frame.size()), static_cast<ssize_t>(frame.size()));
  auto bad = ReadWorkerFrame(sp.fds[1]);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteWorkerFrame(sp.fds[0], WorkerMessageType::kLoad, 1,
                             std::string(kMaxPayloadBytes + 1, 'x'))
                .code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace mm
