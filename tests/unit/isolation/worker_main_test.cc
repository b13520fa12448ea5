// The worker side of the protocol, driven over a socketpair the way the
// server drives a worker process, with the chaos backend as its model.
#include "isolation/worker_main.h"

#include <gtest/gtest.h>

#include <cstring>
#include <future>
#include <thread>

#include "isolation/mailbox.h"
#include "isolation/shared_region.h"
#include "isolation/worker_channel.h"
#include "isolation/worker_protocol.h"
#include "socket_pair.h"
#include "tests/backends/chaos/chaos_backend.h"

namespace mm {
namespace {

std::span<const std::byte> AsBytes(const std::string& s) {
  return std::as_bytes(std::span<const char>(s));
}

class WorkerMainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RegisterChaosBackend(backends_).ok());
    ASSERT_TRUE(backends_.EnableTestBackends().ok());
    result_ = std::async(std::launch::async, [this] { return RunWorker(pair_.fds[1], backends_); });
  }
  void TearDown() override {
    if (mailbox_) mailbox_->MarkGone();  // the end of a mailbox conversation
    if (pair_.fds[0] >= 0) pair_.Close(0);
    EXPECT_EQ(result_.get(), expected_exit_);
  }

  int server() const { return pair_.fds[0]; }

  WorkerFrame Ask(WorkerMessageType type, const std::string& payload) {
    const uint32_t id = ++next_id_;
    EXPECT_TRUE(WriteWorkerFrame(server(), type, id, payload).ok());
    auto frame = reader_.Read();
    EXPECT_TRUE(frame.ok()) << frame.status().message();
    if (!frame.ok()) return WorkerFrame{};
    EXPECT_EQ(frame->header.type, WorkerMessageType::kReply);
    EXPECT_EQ(frame->header.request_id, id);
    return std::move(*frame);
  }

  void MapRegion(uint64_t bytes) {
    auto region = SharedRegion::Create("test", bytes);
    ASSERT_TRUE(region.ok());
    region_ = std::move(*region);
    ASSERT_TRUE(WriteWorkerFrameWithFd(server(), WorkerMessageType::kRegion, 0,
                                       EncodeRegion({0, bytes}), region_->fd())
                    .ok());
  }

  LoadReply LoadChaos() {
    LoadRequest load{"chaos", 1, "/nowhere", "", 0, ChaosBackend::kPlatform, false};
    auto frame = Ask(WorkerMessageType::kLoad, EncodeLoad(load));
    auto reply = DecodeLoadReply(AsBytes(frame.payload));
    EXPECT_TRUE(reply.ok()) << reply.status().message();
    return reply.ok() ? std::move(*reply) : LoadReply{};
  }

  // Echoes `values` through the chaos model; inputs at the region's start.
  ExecuteReply Echo(const std::vector<float>& values, uint64_t output_offset) {
    std::byte* base = region_->bytes().data();
    const int64_t command[2] = {0, 0};
    std::memcpy(base, command, sizeof(command));
    std::memcpy(base + 64, values.data(), values.size() * 4);
    ExecuteRequest execute;
    execute.output_offset = output_offset;
    execute.requests.resize(1);
    execute.requests[0].inputs = {
        {"COMMAND", DataType::kInt64, {2}, 0, 16},
        {"INPUT", DataType::kFp32, {static_cast<int64_t>(values.size())}, 64, values.size() * 4}};
    auto frame = Ask(WorkerMessageType::kExecute, EncodeExecute(execute));
    auto reply = DecodeExecuteReply(AsBytes(frame.payload), region_->size());
    EXPECT_TRUE(reply.ok()) << reply.status().message();
    return reply.ok() ? std::move(*reply) : ExecuteReply{};
  }

  // Hands the worker a mailbox, as the server does after the load.
  void OpenMailbox() {
    auto mailbox = Mailbox::Create("test-mailbox");
    ASSERT_TRUE(mailbox.ok());
    mailbox_ = std::move(*mailbox);
    const uint32_t id = ++next_id_;
    ASSERT_TRUE(WriteWorkerFrameWithFd(server(), WorkerMessageType::kMailbox, id,
                                       EncodeMailbox(mailbox_->size()), mailbox_->fd())
                    .ok());
    auto frame = reader_.Read();
    ASSERT_TRUE(frame.ok()) << frame.status().message();
    EXPECT_EQ(frame->header.request_id, id);
    auto reply = DecodeStatusReply(AsBytes(frame->payload));
    ASSERT_TRUE(reply.ok() && reply->status.ok());
  }

  // Posts a request through the mailbox (`socket_frames` frames written to
  // the socket before it) and returns its reply's payload.
  std::string Post(WorkerMessageType type, const std::string& payload, uint32_t socket_frames,
                   bool on_socket = false) {
    const uint32_t id = ++next_id_;
    if (on_socket) EXPECT_TRUE(WriteWorkerFrame(server(), type, id, payload).ok());
    EXPECT_TRUE(mailbox_->Post(type, id, socket_frames, on_socket, payload).ok());
    bool reply_on_socket = false;
    std::string reply;
    Status s = mailbox_->AwaitReply(std::chrono::milliseconds(0), &reply_on_socket, reply);
    EXPECT_TRUE(s.ok()) << s.message();
    if (reply_on_socket) {
      auto frame = reader_.Read();
      EXPECT_TRUE(frame.ok());
      if (frame.ok()) reply = std::move(frame->payload);
    }
    return reply;
  }

  SocketPair pair_;
  FrameReader reader_{pair_.fds[0]};
  std::unique_ptr<Mailbox> mailbox_;
  BackendRegistry backends_;
  std::future<int> result_;
  std::unique_ptr<SharedRegion> region_;
  uint32_t next_id_ = 0;
  int expected_exit_ = 0;
};

TEST_F(WorkerMainTest, LoadsExecutesAndReports) {
  auto health = Ask(WorkerMessageType::kHealth, "");
  EXPECT_TRUE(DecodeStatusReply(AsBytes(health.payload))->status.ok());
  MapRegion(4096);
  LoadReply loaded = LoadChaos();
  ASSERT_TRUE(loaded.status.ok()) << loaded.status.message();
  inference::ModelConfig config;
  ASSERT_TRUE(config.ParseFromString(loaded.config));
  EXPECT_EQ(config.platform(), ChaosBackend::kPlatform);
  EXPECT_EQ(config.input_size(), 2);

  ExecuteReply reply = Echo({1.5f, -2.0f, 3.0f}, 128);
  ASSERT_TRUE(reply.status.ok()) << reply.status.message();
  ASSERT_EQ(reply.results.size(), 1u);
  ASSERT_EQ(reply.results[0].outputs.size(), 1u);
  const ShmTensor& out = reply.results[0].outputs[0];
  EXPECT_EQ(out.name, "OUTPUT");
  EXPECT_EQ(out.shape, (std::vector<int64_t>{3}));
  EXPECT_GE(out.offset, 128u);
  EXPECT_EQ(out.offset % 64, 0u);
  float got[3];
  std::memcpy(got, region_->bytes().data() + out.offset, sizeof(got));
  EXPECT_EQ(got[0], 1.5f);
  EXPECT_EQ(got[2], 3.0f);

  auto stats = DecodeStatsReply(AsBytes(Ask(WorkerMessageType::kStats, "").payload));
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->stats.executions, 1u);
  EXPECT_GT(stats->stats.resident_bytes, 0u);

  // A second Load is refused; Unload frees the model, after which Execute is refused.
  EXPECT_EQ(LoadChaos().status.code(), StatusCode::kFailedPrecondition);
  auto unloaded = Ask(WorkerMessageType::kUnload, "");
  EXPECT_TRUE(DecodeStatusReply(AsBytes(unloaded.payload))->status.ok());
  EXPECT_EQ(Echo({1}, 128).status.code(), StatusCode::kFailedPrecondition);
}

TEST_F(WorkerMainTest, AsksForALargerRegionWhenOutputsDoNotFit) {
  MapRegion(4096);
  ASSERT_TRUE(LoadChaos().status.ok());
  std::vector<float> values(900, 1.0f);  // 3600 bytes in, 3600 out: 7.2 KiB > 4 KiB
  ExecuteReply reply = Echo(values, 3712);
  EXPECT_EQ(reply.status.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(reply.region_bytes_needed, 3712u + 3600u);
  // With a larger region (inputs copied over) it goes through.
  auto old = std::vector<std::byte>(region_->bytes().begin(), region_->bytes().end());
  MapRegion(reply.region_bytes_needed);
  std::memcpy(region_->bytes().data(), old.data(), old.size());
  reply = Echo(values, 3712);
  ASSERT_TRUE(reply.status.ok()) << reply.status.message();
}

TEST_F(WorkerMainTest, TakesRequestsFromItsMailboxAfterTheLoad) {
  ASSERT_TRUE(LoadChaos().status.ok());
  OpenMailbox();
  // A region announced by the request that follows it on the socket.
  MapRegion(4096);
  std::byte* base = region_->bytes().data();
  const int64_t command[2] = {0, 0};
  const float values[2] = {4.0f, 5.0f};
  std::memcpy(base, command, sizeof(command));
  std::memcpy(base + 64, values, sizeof(values));
  ExecuteRequest execute;
  execute.output_offset = 128;
  execute.requests.resize(1);
  execute.requests[0].inputs = {{"COMMAND", DataType::kInt64, {2}, 0, 16},
                                {"INPUT", DataType::kFp32, {2}, 64, 8}};
  auto reply = DecodeExecuteReply(
      AsBytes(Post(WorkerMessageType::kExecute, EncodeExecute(execute), 1)), region_->size());
  ASSERT_TRUE(reply.ok()) << reply.status().message();
  ASSERT_TRUE(reply->status.ok()) << reply->status.message();
  ASSERT_EQ(reply->results.size(), 1u);
  ASSERT_EQ(reply->results[0].outputs.size(), 1u);
  float got[2];
  std::memcpy(got, base + reply->results[0].outputs[0].offset, sizeof(got));
  EXPECT_EQ(got[1], 5.0f);

  // The same request as a frame on the socket, announced by the mailbox.
  reply = DecodeExecuteReply(
      AsBytes(Post(WorkerMessageType::kExecute, EncodeExecute(execute), 1, /*on_socket=*/true)),
      region_->size());
  ASSERT_TRUE(reply.ok() && reply->status.ok());
  auto stats = DecodeStatsReply(AsBytes(Post(WorkerMessageType::kStats, "", 0)));
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->stats.executions, 2u);
}

TEST_F(WorkerMainTest, AListOfRequestsIsOneExecutionWithAResultPerRequest) {
  ASSERT_TRUE(LoadChaos().status.ok());
  OpenMailbox();
  MapRegion(4096);  // announced by the request that follows
  std::byte* base = region_->bytes().data();
  // Request 0 echoes {1, 2}; request 1 asks to fail (op 5); request 2 echoes {3}.
  const int64_t echo[2] = {0, 0};
  const int64_t fail[2] = {5, 0};
  const float a[2] = {1.0f, 2.0f};
  const float c[1] = {3.0f};
  std::memcpy(base, echo, 16);
  std::memcpy(base + 64, a, 8);
  std::memcpy(base + 128, fail, 16);
  std::memcpy(base + 192, a, 8);
  std::memcpy(base + 256, echo, 16);
  std::memcpy(base + 320, c, 4);
  ExecuteRequest execute;
  execute.output_offset = 384;
  execute.requests.resize(3);
  for (size_t r = 0; r < 3; ++r) {
    execute.requests[r].id = "r" + std::to_string(r);
    const int64_t rows = r == 2 ? 1 : 2;
    execute.requests[r].inputs = {
        {"COMMAND", DataType::kInt64, {2}, r * 128, 16},
        {"INPUT", DataType::kFp32, {rows}, r * 128 + 64, static_cast<uint64_t>(rows) * 4}};
  }
  execute.requests[1].parameters = {{"note", std::string("x")}};
  auto reply = DecodeExecuteReply(
      AsBytes(Post(WorkerMessageType::kExecute, EncodeExecute(execute), 1)), region_->size());
  ASSERT_TRUE(reply.ok()) << reply.status().message();
  ASSERT_TRUE(reply->status.ok()) << reply->status.message();
  ASSERT_EQ(reply->results.size(), 3u);
  ASSERT_TRUE(reply->results[0].status.ok());
  EXPECT_EQ(reply->results[1].status.message(), "chaos: asked to fail");
  ASSERT_TRUE(reply->results[2].status.ok());
  ASSERT_EQ(reply->results[0].outputs.size(), 1u);
  ASSERT_EQ(reply->results[2].outputs.size(), 1u);
  float got_a[2];
  float got_c[1];
  std::memcpy(got_a, base + reply->results[0].outputs[0].offset, sizeof(got_a));
  std::memcpy(got_c, base + reply->results[2].outputs[0].offset, sizeof(got_c));
  EXPECT_EQ(got_a[1], 2.0f);
  EXPECT_EQ(got_c[0], 3.0f);
  EXPECT_GE(reply->results[0].outputs[0].offset, 384u);
  EXPECT_NE(reply->results[0].outputs[0].offset, reply->results[2].outputs[0].offset);
  auto stats = DecodeStatsReply(AsBytes(Post(WorkerMessageType::kStats, "", 0)));
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->stats.executions, 1u);  // one execution for the list
}

TEST_F(WorkerMainTest, AnAnnouncedFrameThatIsNotARegionEndsTheWorker) {
  ASSERT_TRUE(LoadChaos().status.ok());
  OpenMailbox();
  ASSERT_TRUE(WriteWorkerFrame(server(), WorkerMessageType::kHealth, 99, "").ok());
  ASSERT_TRUE(mailbox_->Post(WorkerMessageType::kStats, ++next_id_, 1, false, "").ok());
  mailbox_.reset();  // not closed: the worker ends on its own, on the bad frame
  expected_exit_ = kWorkerExitProtocolError;
}

TEST_F(WorkerMainTest, RefusesUnknownPlatformsAndBadConfigs) {
  LoadRequest load{"m", 1, "/nowhere", "", 0, "tensorflow_savedmodel", false};
  auto reply = DecodeLoadReply(AsBytes(Ask(WorkerMessageType::kLoad, EncodeLoad(load)).payload));
  ASSERT_TRUE(reply.ok());
  EXPECT_NE(reply->status.message().find("platform 'tensorflow_savedmodel' is not supported"),
            std::string::npos);
  load.platform = ChaosBackend::kPlatform;
  load.config = "\xff\xff\xff";
  reply = DecodeLoadReply(AsBytes(Ask(WorkerMessageType::kLoad, EncodeLoad(load)).payload));
  ASSERT_TRUE(reply.ok());
  EXPECT_NE(reply->status.message().find("does not parse"), std::string::npos);
}

TEST_F(WorkerMainTest, EndsOnAMalformedFrame) {
  const std::string garbage(16, 'x');
  ASSERT_EQ(::write(server(), garbage.data(), garbage.size()), 16);
  expected_exit_ = kWorkerExitProtocolError;
}

TEST_F(WorkerMainTest, ExecuteBeforeARegionEndsTheWorker) {
  ASSERT_TRUE(
      WriteWorkerFrame(server(), WorkerMessageType::kExecute, 1, EncodeExecute(ExecuteRequest{}))
          .ok());
  expected_exit_ = kWorkerExitProtocolError;
}

}  // namespace
}  // namespace mm
