// ProcessBackend's call channel with real worker processes (this binary
// started again as a worker, as process_backend_test.cc does): a model in a
// worker makes BLS calls and keeps metrics through LoadSpec::host, served by
// the server's host (a FakeModelHost here, or none); a decoupled model
// answers through its senders, later and from other threads; a worker that
// dies mid-stream completes its open requests with the cause.
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fake_backend.h"
#include "fake_model_host.h"
#include "isolation/process_backend.h"
#include "isolation/worker_main.h"
#include "isolation/worker_process.h"

namespace mm {
namespace {

namespace fs = std::filesystem;

constexpr char kWorkerFlag[] = "--process-backend-calls-test-worker";

float First(const InferRequest& request) {
  return request.inputs.empty() || request.inputs[0].as<float>().empty()
             ? 0
             : request.inputs[0].as<float>()[0];
}

std::unique_ptr<InferResponse> Floats(std::vector<float> values) {
  auto response = std::make_unique<InferResponse>();
  Tensor t;
  t.name = "y";
  t.dtype = DataType::kFp32;
  t.shape = {static_cast<int64_t>(values.size())};
  auto held = std::make_shared<std::vector<float>>(std::move(values));
  t.data = std::as_bytes(std::span<const float>(*held));
  t.owner = held;
  response->outputs.push_back(std::move(t));
  return response;
}

// "bls": y = the output of a BLS call to model "callee" with the same x.
class BlsInstance final : public ModelInstance {
 public:
  explicit BlsInstance(std::shared_ptr<ModelHost> host) : host_(std::move(host)) {}
  Status Execute(const InferRequest& request, InferResponse& response) override {
    if (host_ == nullptr) return Internal("the worker gave the model no host");
    auto call = std::make_unique<InferRequest>();
    call->model_name = "callee";
    call->inputs = request.inputs;  // views: valid until the call returns below
    std::promise<StatusOr<std::unique_ptr<InferResponse>>> done;
    host_->Infer(std::move(call), [&done](StatusOr<std::unique_ptr<InferResponse>> r, bool final) {
      if (final) done.set_value(std::move(r));
    });
    auto r = done.get_future().get();
    MM_RETURN_IF_ERROR(r.status());
    if (*r == nullptr || (*r)->outputs.empty()) return Internal("the callee answered nothing");
    Tensor y = (*r)->outputs[0];
    y.name = "y";
    y.owner = std::shared_ptr<InferResponse>(std::move(*r));
    response.outputs.push_back(std::move(y));
    return OkStatus();
  }

 private:
  std::shared_ptr<ModelHost> host_;
};

// "stream": answers x[0] responses y = [i] from a thread of its own, after
// execute returned, then the final flag alone; x[0] < 0: one response, then
// the worker dies.
class StreamInstance final : public ModelInstance {
 public:
  ~StreamInstance() override {
    for (auto& t : threads_) t.join();
  }
  Status Execute(const InferRequest&, InferResponse&) override {
    return Internal("a decoupled model runs through ExecuteDecoupled");
  }
  Status ExecuteDecoupled(std::span<const std::shared_ptr<ResponseSender>> senders) override {
    for (const auto& sender : senders) {
      threads_.emplace_back([sender] {
        const float n = First(sender->request());
        if (n < 0) {
          (void)sender->Send(Floats({0}), false);
          ::usleep(50000);  // (the response is on its way before the death)
          ::raise(SIGKILL);
        }
        for (int i = 0; i < static_cast<int>(n); ++i) {
          Status s = sender->Send(Floats({static_cast<float>(i)}), false);
          if (!s.ok()) std::_Exit(5);
        }
        if (!sender->Send(std::unique_ptr<InferResponse>(), true).ok()) std::_Exit(6);
        // After the final: refused, nothing sent.
        if (sender->Send(Floats({9}), false).code() != StatusCode::kFailedPrecondition) {
          std::_Exit(7);
        }
      });
    }
    return OkStatus();
  }

 private:
  std::vector<std::thread> threads_;
};

// "metrics": creates a counter as it loads, increments it by 3 and reads it.
std::unique_ptr<ModelInstance> MetricsInstance(const LoadSpec& spec) {
  if (spec.host == nullptr) std::_Exit(8);
  MetricSpec metric;
  metric.family = "loads_total";
  metric.description = "Loads";
  metric.labels = {{"instance", "0"}};
  auto id = spec.host->CreateMetric(metric);
  if (!id.ok()) return nullptr;
  if (!spec.host->UpdateMetric(*id, MetricOp::kIncrement, 3).ok()) std::_Exit(9);
  auto value = spec.host->MetricValue(*id);
  if (!value.ok() || *value != 3) std::_Exit(10);
  return std::make_unique<fakes::FakeInstance>(fakes::FakeInstance::Options{});
}

// "finalize": its instance leaves a file "finalized" in the model's folder as
// it is destroyed (the worker unloads its model before it is killed).
class FinalizeInstance final : public ModelInstance {
 public:
  explicit FinalizeInstance(fs::path dir) : dir_(std::move(dir)) {}
  ~FinalizeInstance() override { std::ofstream(dir_ / "finalized") << "yes"; }
  Status Execute(const InferRequest&, InferResponse&) override { return OkStatus(); }

 private:
  fs::path dir_;
};

int RunAsWorkerIfAsked() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t first = cmdline.find('\0');
  if (first == std::string::npos || cmdline.compare(first + 1, std::strlen(kWorkerFlag) + 1,
                                                    std::string(kWorkerFlag) + '\0') != 0) {
    return 0;
  }
  fakes::FakeBackend backend([](const LoadSpec& spec, size_t) -> std::unique_ptr<ModelInstance> {
    if (spec.model_name == "bls") return std::make_unique<BlsInstance>(spec.host);
    if (spec.model_name == "stream") return std::make_unique<StreamInstance>();
    if (spec.model_name == "finalize") return std::make_unique<FinalizeInstance>(spec.model_dir);
    return MetricsInstance(spec);
  });
  BackendRegistry backends;
  if (!fakes::RegisterFakeBackend(backends, &backend).ok()) std::_Exit(3);
  std::_Exit(RunWorker(WorkerProcess::kWorkerSocketFd, backends));
}
[[maybe_unused]] const int kRunAsWorker = RunAsWorkerIfAsked();

class RecordingSender final : public ResponseSender {
 public:
  explicit RecordingSender(std::vector<float> x) : x_(std::move(x)) {
    request_.model_name = "stream";
    Tensor t;
    t.name = "x";
    t.dtype = DataType::kFp32;
    t.shape = {static_cast<int64_t>(x_.size())};
    t.data = std::as_bytes(std::span<const float>(x_));
    request_.inputs.push_back(std::move(t));
  }
  const InferRequest& request() const override { return request_; }
  bool cancelled() const override { return false; }
  Status Send(StatusOr<std::unique_ptr<InferResponse>> response, bool final) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (final_) return FailedPrecondition("after the final");
    if (!response.ok()) {
      log_.push_back("error: " + response.status().message());
    } else if (*response == nullptr) {
      log_.push_back("final");
    } else {
      log_.push_back(std::to_string(static_cast<int>((*response)->outputs[0].as<float>()[0])));
    }
    final_ = final;
    cv_.notify_all();
    return OkStatus();
  }
  std::vector<std::string> WaitFinal() {
    std::unique_lock<std::mutex> lock(mu_);
    EXPECT_TRUE(cv_.wait_for(lock, std::chrono::seconds(30), [&] { return final_; }));
    return log_;
  }

 private:
  std::vector<float> x_;
  InferRequest request_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> log_;
  bool final_ = false;
};

class ProcessBackendCallsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("mm_process_backend_calls_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    for (const char* name : {"bls", "stream", "metrics", "finalize"})
      fakes::WriteFakeModel(dir_, name, {1});
    ProcessBackend::Options o;
    o.worker_command = {fs::read_symlink("/proc/self/exe").string(), kWorkerFlag};
    o.restart_backoff = std::chrono::milliseconds(1);
    o.max_restart_backoff = std::chrono::milliseconds(1);
    o.load_nice = o.serve_nice = 0;
    auto backend = ProcessBackend::Create(std::move(o));
    ASSERT_TRUE(backend.ok()) << backend.status().message();
    backend_ = std::move(*backend);
  }
  void TearDown() override {
    model_.reset();
    backend_.reset();
    fs::remove_all(dir_);
  }
  StatusOr<std::unique_ptr<LoadedModel>> Load(const std::string& name,
                                              std::shared_ptr<ModelHost> host) {
    LoadSpec spec;
    spec.model_name = name;
    spec.version = 1;
    spec.model_dir = dir_ / name;
    spec.version_dir = spec.model_dir / "1";
    spec.platform = fakes::kFakePlatform;
    spec.config.set_name(name);
    spec.config.set_platform(fakes::kFakePlatform);
    spec.host = std::move(host);
    spec.on_health = [this](const Status& s) {
      std::lock_guard<std::mutex> lock(mu_);
      health_.push_back(s);
      cv_.notify_all();
    };
    return backend_->Load(spec);
  }
  StatusOr<float> RunBls(float x) {
    std::vector<float> values{x, 0, 0, 0};
    InferRequest request;
    request.model_name = "bls";
    Tensor t;
    t.name = "x";
    t.dtype = DataType::kFp32;
    t.shape = {4};
    t.data = std::as_bytes(std::span<const float>(values));
    request.inputs.push_back(std::move(t));
    InferResponse response;
    MM_RETURN_IF_ERROR(model_->instances[0]->Execute(request, response));
    return response.outputs.at(0).as<float>()[0];
  }
  void AwaitHealthy() {
    std::unique_lock<std::mutex> lock(mu_);
    ASSERT_TRUE(cv_.wait_for(lock, std::chrono::seconds(30),
                             [&] { return !health_.empty() && health_.back().ok(); }));
  }

  fs::path dir_;
  std::unique_ptr<ProcessBackend> backend_;
  std::unique_ptr<LoadedModel> model_;
  std::shared_ptr<FakeModelHost> host_ = std::make_shared<FakeModelHost>();
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Status> health_;
};

TEST_F(ProcessBackendCallsTest, AModelInAWorkerCallsAnotherThroughTheServersHost) {
  auto model = Load("bls", host_);
  ASSERT_TRUE(model.ok()) << model.status().message();
  model_ = std::move(*model);
  auto y = RunBls(4.5);
  ASSERT_TRUE(y.ok()) << y.status().message();
  EXPECT_EQ(*y, 4.5f);  // the fake host echoes the input
  auto seen = host_->requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].model_name, "callee");
  ASSERT_EQ(seen[0].inputs.size(), 1u);
  EXPECT_EQ(seen[0].inputs[0].first, "x");

  // The callee's error reaches the calling model as it was.
  host_->on_infer = [](std::unique_ptr<InferRequest> request, HostInferCallback done) {
    done(NotFound("model '" + request->model_name + "' is not found"), true);
  };
  y = RunBls(1);
  ASSERT_FALSE(y.ok());
  EXPECT_EQ(y.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(y.status().message(), "model 'callee' is not found");
}

TEST_F(ProcessBackendCallsTest, WithoutAHostACallIsUnavailableSayingSo) {
  auto model = Load("bls", nullptr);
  ASSERT_TRUE(model.ok()) << model.status().message();
  model_ = std::move(*model);
  auto y = RunBls(1);
  ASSERT_FALSE(y.ok());
  EXPECT_EQ(y.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(y.status().message(),
            "model 'bls': this server does not host BLS calls or custom metrics");
}

TEST_F(ProcessBackendCallsTest, AModelCreatesMetricsAsItLoads) {
  auto model = Load("metrics", host_);
  ASSERT_TRUE(model.ok()) << model.status().message();
  model_ = std::move(*model);
  ASSERT_EQ(host_->metric_count(), 1u);
  EXPECT_EQ(host_->family_of(1), "loads_total");
  EXPECT_EQ(*host_->MetricValue(1), 3);
  // Unloading releases what the worker created.
  model_.reset();
  EXPECT_EQ(host_->metric_count(), 0u);
}

TEST_F(ProcessBackendCallsTest, AnUnloadingModelIsUnloadedInItsWorkerBeforeTheKill) {
  auto model = Load("finalize", nullptr);
  ASSERT_TRUE(model.ok()) << model.status().message();
  model_ = std::move(*model);
  EXPECT_FALSE(fs::exists(dir_ / "finalize" / "finalized"));
  model_.reset();
  EXPECT_TRUE(fs::exists(dir_ / "finalize" / "finalized"));
}

TEST_F(ProcessBackendCallsTest, ADecoupledModelAnswersLaterFromItsOwnThreads) {
  auto model = Load("stream", nullptr);
  ASSERT_TRUE(model.ok()) << model.status().message();
  model_ = std::move(*model);
  auto five = std::make_shared<RecordingSender>(std::vector<float>{5});
  auto none = std::make_shared<RecordingSender>(std::vector<float>{0});
  std::vector<std::shared_ptr<ResponseSender>> senders{five, none};
  ASSERT_TRUE(model_->instances[0]->ExecuteDecoupled(senders).ok());
  EXPECT_EQ(five->WaitFinal(), (std::vector<std::string>{"0", "1", "2", "3", "4", "final"}));
  EXPECT_EQ(none->WaitFinal(), std::vector<std::string>{"final"});
  // And again: the instance takes its next batch.
  auto two = std::make_shared<RecordingSender>(std::vector<float>{2});
  std::vector<std::shared_ptr<ResponseSender>> again{two};
  ASSERT_TRUE(model_->instances[0]->ExecuteDecoupled(again).ok());
  EXPECT_EQ(two->WaitFinal(), (std::vector<std::string>{"0", "1", "final"}));
}

TEST_F(ProcessBackendCallsTest, AWorkerThatDiesMidStreamEndsItsRequestsNamingTheCause) {
  auto model = Load("stream", nullptr);
  ASSERT_TRUE(model.ok()) << model.status().message();
  model_ = std::move(*model);
  auto dying = std::make_shared<RecordingSender>(std::vector<float>{-1});
  std::vector<std::shared_ptr<ResponseSender>> senders{dying};
  ASSERT_TRUE(model_->instances[0]->ExecuteDecoupled(senders).ok());
  auto log = dying->WaitFinal();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0], "0");
  EXPECT_NE(log[1].find("error: model 'stream' version 1 worker killed by signal 9"),
            std::string::npos)
      << log[1];
  // The worker restarts and streams again.
  AwaitHealthy();
  auto three = std::make_shared<RecordingSender>(std::vector<float>{3});
  std::vector<std::shared_ptr<ResponseSender>> again{three};
  ASSERT_TRUE(model_->instances[0]->ExecuteDecoupled(again).ok());
  EXPECT_EQ(three->WaitFinal(), (std::vector<std::string>{"0", "1", "2", "final"}));
}

}  // namespace
}  // namespace mm
