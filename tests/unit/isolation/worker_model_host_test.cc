// The call channel end to end, through a real socketpair: the worker's
// WorkerModelHost on one end, the server's CallHub and WorkerCallServer on
// the other, serving with a FakeModelHost.
#include "isolation/worker_model_host.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "fake_model_host.h"
#include "isolation/call_hub.h"
#include "isolation/worker_call_server.h"

namespace mm {
namespace {

std::string Serialized(std::initializer_list<std::string_view> items) {
  std::string out;
  for (std::string_view item : items) {
    const auto n = static_cast<uint32_t>(item.size());
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
    out.append(item);
  }
  return out;
}

std::span<const std::byte> AsBytesOf(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

std::string Bytes(const Tensor& t) {
  return std::string(reinterpret_cast<const char*>(t.data.data()), t.data.size());
}

// What a callback heard: every response, until the final one.
struct Heard {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<StatusOr<std::unique_ptr<InferResponse>>> responses;
  bool final = false;

  HostInferCallback Callback() {
    return [this](StatusOr<std::unique_ptr<InferResponse>> r, bool is_final) {
      std::lock_guard<std::mutex> lock(mu);
      EXPECT_FALSE(final) << "a response after the final one";
      responses.push_back(std::move(r));
      final = is_final;
      cv.notify_all();
    };
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return final; }));
  }
};

// A ResponseSender that records what it is sent.
class RecordingSender final : public ResponseSender {
 public:
  explicit RecordingSender(std::string id) { request_.id = std::move(id); }
  const InferRequest& request() const override { return request_; }
  bool cancelled() const override { return cancelled_.load(); }
  void Cancel() { cancelled_.store(true); }
  Status Send(StatusOr<std::unique_ptr<InferResponse>> response, bool final) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (final_) return FailedPrecondition("after the final");
    if (response.ok() && *response != nullptr) {
      std::string text;
      for (const Tensor& t : (*response)->outputs) text += t.name + "=" + Bytes(t) + ";";
      log_.push_back(text);
    } else if (!response.ok()) {
      log_.push_back("error:" + response.status().message());
    } else {
      log_.push_back("final-alone");
    }
    final_ = final;
    cv_.notify_all();
    return OkStatus();
  }
  std::vector<std::string> WaitFinal() {
    std::unique_lock<std::mutex> lock(mu_);
    EXPECT_TRUE(cv_.wait_for(lock, std::chrono::seconds(10), [&] { return final_; }));
    return log_;
  }

 private:
  InferRequest request_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> log_;
  bool final_ = false;
  std::atomic<bool> cancelled_{false};
};

class CallChannelTest : public ::testing::Test {
 protected:
  void SetUp() override { Connect(host_); }
  // The hub first: no handler runs after its thread is gone.
  void TearDown() override { hub_->Stop(); }

  void Connect(std::shared_ptr<ModelHost> host, CallHub::Limits limits = {}) {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    auto hub = CallHub::Create(limits);
    ASSERT_TRUE(hub.ok());
    if (hub_ != nullptr) hub_->Stop();
    hub_ = *hub;
    server_ = std::make_shared<WorkerCallServer>("model 'caller' version 1", "caller",
                                                 std::move(host), [this](const Status& why) {
                                                   std::lock_guard<std::mutex> lock(mu_);
                                                   cut_.push_back(why);
                                                   cv_.notify_all();
                                                 });
    auto connection = hub_->Add(OwnedFd(fds[0]), server_);
    ASSERT_TRUE(connection.ok());
    connection_ = *connection;
    server_->Attach(connection_);
    worker_fd_ = fds[1];
    worker_ = std::make_shared<WorkerModelHost>(OwnedFd(fds[1]), "worker 1");
  }

  Status WaitCut() {
    std::unique_lock<std::mutex> lock(mu_);
    EXPECT_TRUE(cv_.wait_for(lock, std::chrono::seconds(10), [&] { return !cut_.empty(); }));
    return cut_.empty() ? OkStatus() : cut_.front();
  }

  std::shared_ptr<FakeModelHost> host_ = std::make_shared<FakeModelHost>();
  std::shared_ptr<CallHub> hub_;
  std::shared_ptr<WorkerCallServer> server_;
  std::shared_ptr<CallConnection> connection_;
  std::shared_ptr<WorkerModelHost> worker_;
  int worker_fd_ = -1;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Status> cut_;
};

TEST_F(CallChannelTest, BlsInferCarriesTensorsBothWays) {
  const std::string floats = std::string("\0\0\x80\x3f\0\0\0\x40", 8);  // 1.0f, 2.0f
  const std::string text = Serialized({"hello", "", "world"});
  auto request = std::make_unique<InferRequest>();
  request->model_name = "callee";
  request->model_version = "1";
  request->id = "bls-1";
  request->parameters["timeout"] = int64_t{5000};
  request->inputs.resize(2);
  request->inputs[0] = Tensor{"X", DataType::kFp32, {2}, AsBytesOf(floats), nullptr, {}};
  request->inputs[1] = Tensor{"TEXT", DataType::kBytes, {3}, AsBytesOf(text), nullptr, {}};
  request->outputs.push_back({"OUT_X", {}});
  Heard heard;
  worker_->Infer(std::move(request), heard.Callback());
  heard.Wait();
  ASSERT_EQ(heard.responses.size(), 1u);
  ASSERT_TRUE(heard.responses[0].ok()) << heard.responses[0].status().message();
  const InferResponse& response = **heard.responses[0];
  ASSERT_EQ(response.outputs.size(), 2u);
  EXPECT_EQ(response.outputs[0].name, "OUT_X");
  EXPECT_EQ(response.outputs[0].dtype, DataType::kFp32);
  EXPECT_EQ(Bytes(response.outputs[0]), floats);
  EXPECT_EQ(response.outputs[1].dtype, DataType::kBytes);
  EXPECT_EQ(response.outputs[1].shape, (Shape{3}));
  EXPECT_EQ(Bytes(response.outputs[1]), text);
  EXPECT_NE(response.outputs[0].owner, nullptr);

  auto seen = host_->requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].model_name, "callee");
  EXPECT_EQ(seen[0].model_version, "1");
  EXPECT_EQ(seen[0].id, "bls-1");
  EXPECT_EQ(std::get<int64_t>(seen[0].parameters.at("timeout")), 5000);
  EXPECT_EQ(seen[0].inputs[1].second, text);
  EXPECT_EQ(seen[0].outputs, std::vector<std::string>{"OUT_X"});
  EXPECT_EQ(server_->calls_in_flight(), 0u);
}

TEST_F(CallChannelTest, LargeTensorsCrossInPiecesBothWays) {
  // 8 MiB each way: more than a socket buffer, so the server's write of the
  // response waits for the worker to read (queued, then written as the socket
  // drains), and several calls' frames interleave on one socket.
  std::string big(8u << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 % 251);
  std::vector<std::unique_ptr<Heard>> heard;
  for (int call = 0; call < 3; ++call) {
    auto request = std::make_unique<InferRequest>();
    request->model_name = "echo";
    request->inputs.push_back(Tensor{
        "B", DataType::kUint8, {static_cast<int64_t>(big.size())}, AsBytesOf(big), nullptr, {}});
    heard.push_back(std::make_unique<Heard>());
    worker_->Infer(std::move(request), heard.back()->Callback());
  }
  for (auto& h : heard) {
    h->Wait();
    ASSERT_TRUE(h->responses[0].ok()) << h->responses[0].status().message();
    EXPECT_TRUE(Bytes((*h->responses[0])->outputs[0]) == big);
  }
}

TEST_F(CallChannelTest, ADecoupledCalleeAnswersManyTimesThenFinal) {
  std::mutex answering_mu;
  std::thread answering;
  host_->on_infer = [&](std::unique_ptr<InferRequest> request, HostInferCallback done) {
    // Answered later, from another thread, as a decoupled model does.
    std::lock_guard<std::mutex> lock(answering_mu);
    answering = std::thread([request = std::move(request), done = std::move(done)] {
      for (int i = 0; i < 3; ++i) done(FakeModelHost::Echo(*request), false);
      done(NotFound("one failed response"), false);
      done(std::unique_ptr<InferResponse>(), true);  // the final flag alone
    });
  };
  auto request = std::make_unique<InferRequest>();
  request->model_name = "stream";
  const std::string token = Serialized({"tok"});
  request->inputs.push_back(Tensor{"IN", DataType::kBytes, {1}, AsBytesOf(token), nullptr, {}});
  Heard heard;
  worker_->Infer(std::move(request), heard.Callback());
  heard.Wait();
  {
    std::lock_guard<std::mutex> lock(answering_mu);
    answering.join();
  }
  ASSERT_EQ(heard.responses.size(), 5u);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(heard.responses[i].ok());
    EXPECT_EQ(Bytes((*heard.responses[i])->outputs[0]), token);
  }
  EXPECT_EQ(heard.responses[3].status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(heard.responses[4].ok());
  EXPECT_EQ(*heard.responses[4], nullptr);
}

TEST_F(CallChannelTest, ModelReadyAndMetricsGoToTheServersHost) {
  host_->ready = {"there"};
  EXPECT_TRUE(worker_->ModelReady("there", ""));
  EXPECT_FALSE(worker_->ModelReady("elsewhere", "1"));

  MetricSpec spec;
  spec.family = "things_total";
  spec.description = "Things";
  spec.kind = MetricKind::kCounter;
  spec.labels = {{"kind", "a"}};
  auto id = worker_->CreateMetric(spec);
  ASSERT_TRUE(id.ok()) << id.status().message();
  EXPECT_EQ(host_->family_of(*id), "things_total");
  ASSERT_TRUE(worker_->UpdateMetric(*id, MetricOp::kIncrement, 2).ok());
  ASSERT_TRUE(worker_->UpdateMetric(*id, MetricOp::kIncrement, 3).ok());
  // Updates have no reply; a value call comes after them on the same socket.
  auto value = worker_->MetricValue(*id);
  ASSERT_TRUE(value.ok()) << value.status().message();
  EXPECT_EQ(*value, 5);

  // Checked in the worker: a counter does not go down, nor take a set.
  EXPECT_EQ(worker_->UpdateMetric(*id, MetricOp::kIncrement, -1).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(worker_->UpdateMetric(*id, MetricOp::kSet, 1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(worker_->UpdateMetric(*id + 100, MetricOp::kIncrement, 1).code(),
            StatusCode::kNotFound);
  // The host's own refusal comes back as it said it.
  spec.family = "0bad";
  auto bad = worker_->CreateMetric(spec);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'0bad'"), std::string::npos);

  worker_->ReleaseMetric(*id);
  EXPECT_EQ(worker_->MetricValue(*id).status().code(), StatusCode::kNotFound);
  // (The release reached the host: a call after it on the same socket came back.)
  EXPECT_FALSE(worker_->ModelReady("elsewhere", ""));
  EXPECT_EQ(host_->released(), std::vector<uint64_t>{*id});
}

TEST_F(CallChannelTest, AWorkersMetricsAreReleasedWhenItGoes) {
  MetricSpec spec;
  spec.family = "g";
  spec.kind = MetricKind::kGauge;
  auto id = worker_->CreateMetric(spec);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(host_->metric_count(), 1u);
  server_->Shutdown(Unavailable("worker gone"));
  EXPECT_EQ(host_->metric_count(), 0u);
}

TEST_F(CallChannelTest, WithoutAHostEveryCallIsUnavailableSayingSo) {
  Connect(nullptr);
  auto request = std::make_unique<InferRequest>();
  request->model_name = "callee";
  Heard heard;
  worker_->Infer(std::move(request), heard.Callback());
  heard.Wait();
  ASSERT_EQ(heard.responses.size(), 1u);
  EXPECT_EQ(heard.responses[0].status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(heard.responses[0].status().message(),
            "model 'caller': this server does not host BLS calls or custom metrics");
  MetricSpec spec;
  spec.family = "x";
  auto id = worker_->CreateMetric(spec);
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().message(),
            "model 'caller': this server does not host BLS calls or custom metrics");
  EXPECT_FALSE(worker_->ModelReady("callee", ""));
}

TEST_F(CallChannelTest, DecoupledResponsesReachTheirSenders) {
  auto a = std::make_shared<RecordingSender>("a");
  auto b = std::make_shared<RecordingSender>("b");
  std::vector<std::shared_ptr<ResponseSender>> senders{a, b};
  const uint64_t token = server_->BeginDecoupled(senders);
  ASSERT_NE(token, 0u);
  EXPECT_EQ(server_->open_senders(), 2u);
  const std::string one = "1111";
  auto response = std::make_unique<InferResponse>();
  response->outputs.push_back(Tensor{"T", DataType::kInt32, {1}, AsBytesOf(one), nullptr, {}});
  ASSERT_TRUE(worker_->Respond(token, 1, false, std::move(response)).ok());
  ASSERT_TRUE(worker_->Respond(token, 0, true, NotFound("a's error")).ok());
  ASSERT_TRUE(worker_->Respond(token, 1, true, std::unique_ptr<InferResponse>()).ok());
  EXPECT_EQ(a->WaitFinal(), std::vector<std::string>{"error:a's error"});
  EXPECT_EQ(b->WaitFinal(), (std::vector<std::string>{"T=1111;", "final-alone"}));
  EXPECT_EQ(server_->open_senders(), 0u);
}

TEST_F(CallChannelTest, AWorkerAsksWhetherItsRequestsClientWentAway) {
  auto a = std::make_shared<RecordingSender>("a");
  std::vector<std::shared_ptr<ResponseSender>> senders{a};
  const uint64_t token = server_->BeginDecoupled(senders);
  EXPECT_FALSE(worker_->IsCancelled(token, 0));
  a->Cancel();
  EXPECT_TRUE(worker_->IsCancelled(token, 0));
  EXPECT_FALSE(worker_->IsCancelled(token, 5));  // no such request: not cancelled
  ASSERT_TRUE(worker_->Respond(token, 0, true, Cancelled("client gone")).ok());
  a->WaitFinal();
  EXPECT_FALSE(worker_->IsCancelled(token, 0));  // completed
  // A token no Execute carried is a broken worker.
  EXPECT_FALSE(worker_->IsCancelled(token + 1, 0));
  EXPECT_NE(WaitCut().message().find("IsCancelled for token"), std::string::npos);
}

TEST_F(CallChannelTest, ADeadWorkersLastResponsesAreReadBeforeItsRequestsEnd) {
  auto a = std::make_shared<RecordingSender>("a");
  std::vector<std::shared_ptr<ResponseSender>> senders{a};
  const uint64_t token = server_->BeginDecoupled(senders);
  // The worker's exit is seen before what it wrote last is read.
  server_->WorkerGone(Unavailable("worker killed by signal 9"));
  const std::string one = "1111";
  auto response = std::make_unique<InferResponse>();
  response->outputs.push_back(Tensor{"T", DataType::kInt32, {1}, AsBytesOf(one), nullptr, {}});
  ASSERT_TRUE(worker_->Respond(token, 0, false, std::move(response)).ok());
  worker_.reset();  // its end closes: the server reads to it, then ends the request
  EXPECT_EQ(a->WaitFinal(),
            (std::vector<std::string>{"T=1111;", "error:worker killed by signal 9"}));
  EXPECT_EQ(server_->open_senders(), 0u);
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_TRUE(cut_.empty());  // a death, not a cut
}

TEST_F(CallChannelTest, OpenSendersCompleteWithTheCauseWhenTheWorkerGoes) {
  auto a = std::make_shared<RecordingSender>("a");
  std::vector<std::shared_ptr<ResponseSender>> senders{a};
  const uint64_t token = server_->BeginDecoupled(senders);
  ASSERT_NE(token, 0u);
  server_->Shutdown(Unavailable("model 'caller' version 1 worker killed by signal 11"));
  EXPECT_EQ(a->WaitFinal(),
            std::vector<std::string>{"error:model 'caller' version 1 worker killed by signal 11"});
  EXPECT_EQ(server_->BeginDecoupled(senders), 0u);
}

TEST_F(CallChannelTest, ARespondAfterTheFinalOrForAnUnknownTokenCutsTheWorker) {
  auto a = std::make_shared<RecordingSender>("a");
  std::vector<std::shared_ptr<ResponseSender>> senders{a, std::make_shared<RecordingSender>("b")};
  const uint64_t token = server_->BeginDecoupled(senders);
  ASSERT_TRUE(worker_->Respond(token, 0, true, std::unique_ptr<InferResponse>()).ok());
  ASSERT_TRUE(worker_->Respond(token, 0, true, std::unique_ptr<InferResponse>()).ok());
  Status cut = WaitCut();
  EXPECT_EQ(cut.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(cut.message().find("after its final response"), std::string::npos) << cut.message();
  EXPECT_TRUE(connection_->closed());

  Connect(host_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    cut_.clear();
  }
  ASSERT_TRUE(worker_->Respond(77, 0, true, std::unique_ptr<InferResponse>()).ok());
  cut = WaitCut();
  EXPECT_NE(cut.message().find("token 77, which no Execute carried"), std::string::npos);
}

TEST_F(CallChannelTest, AMalformedFrameCutsTheWorkerAndNothingElse) {
  // A second worker on the same hub keeps working.
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  auto other_server = std::make_shared<WorkerCallServer>("other", "other", host_, nullptr);
  auto other_connection = hub_->Add(OwnedFd(fds[0]), other_server);
  ASSERT_TRUE(other_connection.ok());
  other_server->Attach(*other_connection);
  WorkerModelHost other(OwnedFd(fds[1]), "worker 2");

  std::string frame = Frame(WorkerMessageType::kModelReady, 1, std::string(3, '\xff'));
  ASSERT_EQ(::write(worker_fd_, frame.data(), frame.size()), static_cast<ssize_t>(frame.size()));
  Status cut = WaitCut();
  EXPECT_EQ(cut.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(cut.message().find("worker message ModelReady"), std::string::npos) << cut.message();

  // Frames a worker never sends are refused too (on a fresh channel).
  host_->ready = {"m"};
  EXPECT_TRUE(other.ModelReady("m", ""));
  EXPECT_EQ(hub_->connections(), 1u);
}

TEST_F(CallChannelTest, AFrameAWorkerDoesNotSendCutsIt) {
  std::string frame = Frame(WorkerMessageType::kLoad, 1, "");
  ASSERT_EQ(::write(worker_fd_, frame.data(), frame.size()), static_cast<ssize_t>(frame.size()));
  Status cut = WaitCut();
  EXPECT_NE(cut.message().find("a Load frame on the call socket"), std::string::npos)
      << cut.message();
}

TEST_F(CallChannelTest, TooManyCallsInFlightCutTheWorker) {
  std::vector<HostInferCallback> held;
  std::mutex held_mu;
  host_->on_infer = [&](std::unique_ptr<InferRequest>, HostInferCallback done) {
    std::lock_guard<std::mutex> lock(held_mu);
    held.push_back(std::move(done));  // never answered (until the end)
  };
  // The worker's own host refuses past its bound...
  std::vector<std::unique_ptr<Heard>> heard;
  for (size_t i = 0; i <= WorkerModelHost::kMaxCallsInFlight; ++i) {
    auto request = std::make_unique<InferRequest>();
    request->model_name = "slow";
    heard.push_back(std::make_unique<Heard>());
    worker_->Infer(std::move(request), heard.back()->Callback());
  }
  heard.back()->Wait();
  EXPECT_EQ(heard.back()->responses[0].status().code(), StatusCode::kResourceExhausted);
  // ...and a worker that goes past the server's (writing frames itself) is cut.
  for (uint32_t i = 0; i < 2; ++i) {
    WireParts parts;
    InferCallMessage m;
    m.model_name = "slow";
    EncodeInferCall(m, parts);
    ASSERT_TRUE(
        WriteWorkerFrameParts(worker_fd_, WorkerMessageType::kInfer, 100000 + i, parts).ok());
  }
  Status cut = WaitCut();
  EXPECT_EQ(cut.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(cut.message().find("BLS calls in flight"), std::string::npos) << cut.message();
  // The calls answered after the worker was cut go nowhere, harmlessly.
  std::lock_guard<std::mutex> lock(held_mu);
  for (auto& done : held) done(std::unique_ptr<InferResponse>(), true);
  EXPECT_EQ(server_->calls_in_flight(), 0u);
  worker_.reset();  // its reader, failing the calls it had, is done before `heard` goes
}

TEST_F(CallChannelTest, AWorkerThatDoesNotReadIsCutOff) {
  Connect(host_, CallHub::Limits{64 << 10});
  // Answers of 16 KiB each to a worker that never reads (the test plays
  // the worker on a raw socket).
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  int size = 4096;
  ::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  ::setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  auto server = std::make_shared<WorkerCallServer>("m", "m", host_, [this](const Status& why) {
    std::lock_guard<std::mutex> lock(mu_);
    cut_.push_back(why);
    cv_.notify_all();
  });
  auto connection = hub_->Add(OwnedFd(fds[0]), server);
  ASSERT_TRUE(connection.ok());
  server->Attach(*connection);
  OwnedFd raw(fds[1]);
  const std::string big(16 << 10, 'b');
  for (uint32_t i = 1; i <= 64 && !(*connection)->closed(); ++i) {
    InferCallMessage m;
    m.model_name = "echo";
    m.inputs = {
        CallTensor{"B", DataType::kUint8, {static_cast<int64_t>(big.size())}, AsBytesOf(big)}};
    WireParts parts;
    EncodeInferCall(m, parts);
    // (The call socket's send side never blocks: the hub reads everything.)
    if (!WriteWorkerFrameParts(raw.get(), WorkerMessageType::kInfer, i, parts).ok()) break;
  }
  Status cut = WaitCut();
  EXPECT_EQ(cut.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(cut.message().find("does not read its call socket"), std::string::npos)
      << cut.message();
}

TEST_F(CallChannelTest, WhenTheServerGoesCallsFailUnavailable) {
  std::vector<HostInferCallback> held;
  host_->on_infer = [&](std::unique_ptr<InferRequest>, HostInferCallback done) {
    held.push_back(std::move(done));
  };
  auto request = std::make_unique<InferRequest>();
  request->model_name = "slow";
  Heard heard;
  worker_->Infer(std::move(request), heard.Callback());
  // The call reached the server before it goes.
  EXPECT_FALSE(worker_->ModelReady("x", ""));
  server_->Shutdown(Unavailable("the worker restarts"));
  heard.Wait();
  ASSERT_EQ(heard.responses.size(), 1u);
  EXPECT_EQ(heard.responses[0].status().code(), StatusCode::kUnavailable);
  EXPECT_NE(heard.responses[0].status().message().find("call channel is gone"), std::string::npos);
  // Later calls fail at once; the late answer on the server side does nothing.
  EXPECT_EQ(worker_->CreateMetric(MetricSpec{"f", "", MetricKind::kGauge, {}, {}}).status().code(),
            StatusCode::kUnavailable);
  EXPECT_EQ(worker_->Respond(1, 0, true, std::unique_ptr<InferResponse>()).code(),
            StatusCode::kUnavailable);
  for (auto& done : held) done(std::unique_ptr<InferResponse>(), true);
}

TEST_F(CallChannelTest, WhenTheWorkerGoesTheServerHearsIt) {
  worker_.reset();  // closes its end of the socket
  Status cut = WaitCut();
  EXPECT_EQ(cut.code(), StatusCode::kUnavailable);
  EXPECT_NE(cut.message().find("the worker closed its call socket"), std::string::npos);
  EXPECT_EQ(hub_->connections(), 0u);
}

}  // namespace
}  // namespace mm
