// ProcessBackend with real worker processes: this test binary started again
// as a worker (the server starts `mmserve --worker MODEL`; these tests start
// themselves with kWorkerFlag MODEL), serving the fake backend over its
// control socket. A worker that is started, executes, crashes (the batch
// fails UNAVAILABLE naming the cause, on_health hears it) and restarts;
// load errors; a hung batch past the execution timeout; shutdown. Every wait
// is on an event (a reply, a health report), never a sleep.
#include "isolation/process_backend.h"

#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "fake_backend.h"
#include "isolation/worker_main.h"
#include "isolation/worker_process.h"
#include "model_config.pb.h"

namespace mm {
namespace {

namespace fs = std::filesystem;

constexpr char kWorkerFlag[] = "--process-backend-test-worker";
// What the worker's model does with the first value of its input x.
constexpr float kCrash = -1;  // the worker kills itself (SIGKILL)
constexpr float kHang = -2;   // the worker never answers

// In a worker started by these tests: serves its control socket with the
// fake backend, then exits, before any test runs. Elsewhere: nothing.
int RunAsWorkerIfAsked() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t first = cmdline.find('\0');
  if (first == std::string::npos || cmdline.compare(first + 1, std::strlen(kWorkerFlag) + 1,
                                                    std::string(kWorkerFlag) + '\0') != 0) {
    return 0;
  }
  fakes::FakeBackend backend([](const LoadSpec& spec, size_t) -> std::unique_ptr<ModelInstance> {
    const auto add = fakes::AddToInput("y", static_cast<float>(spec.version));
    fakes::FakeInstance::Options o;
    o.fail_id = "fail-me";  // fails that request alone
    o.handler = [add](const InferRequest& request, InferResponse& response) {
      const float first = request.inputs.empty() || request.inputs[0].as<float>().empty()
                              ? 0
                              : request.inputs[0].as<float>()[0];
      if (first == kCrash) ::raise(SIGKILL);
      if (first == kHang) {
        for (;;) ::pause();
      }
      MM_RETURN_IF_ERROR(add(request, response));
      // A request parameter "plus" (int64) is added too: parameters travel.
      auto plus = request.parameters.find("plus");
      if (plus != request.parameters.end()) {
        auto y = response.outputs[0].as<float>();
        auto values = std::make_shared<std::vector<float>>(y.begin(), y.end());
        for (float& v : *values) v += static_cast<float>(std::get<int64_t>(plus->second));
        response.outputs[0].data = std::as_bytes(std::span<const float>(*values));
        response.outputs[0].owner = values;
      }
      // The id travels: an output named after it.
      if (!request.id.empty()) response.outputs[0].name = "y_" + request.id;
      return OkStatus();
    };
    return std::make_unique<fakes::FakeInstance>(std::move(o));
  });
  BackendRegistry backends;
  if (!fakes::RegisterFakeBackend(backends, &backend).ok()) std::_Exit(3);
  std::_Exit(RunWorker(WorkerProcess::kWorkerSocketFd, backends));
}
[[maybe_unused]] const int kRunAsWorker = RunAsWorkerIfAsked();

std::string SelfPath() {
  std::error_code ec;
  return fs::read_symlink("/proc/self/exe", ec).string();
}

// What on_health heard, in order; waits for a report on it.
class HealthLog {
 public:
  std::function<void(const Status&)> Listener() {
    return [this](const Status& s) {
      std::lock_guard<std::mutex> lock(mu_);
      reports_.push_back(s);
      cv_.notify_all();
    };
  }
  // The first report from `from` on that `pred` accepts (waits for it).
  Status Await(size_t from, const std::function<bool(const Status&)>& pred) {
    std::unique_lock<std::mutex> lock(mu_);
    for (size_t i = from;; ++i) {
      cv_.wait(lock, [&] { return reports_.size() > i; });
      if (pred(reports_[i])) return reports_[i];
    }
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return reports_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Status> reports_;
};

class ProcessBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("mm_process_backend_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fakes::WriteFakeModel(dir_, "m", {1});
  }
  void TearDown() override {
    model_.reset();  // workers stop before their backend
    backend_.reset();
    fs::remove_all(dir_);
  }

  ProcessBackend::Options Defaults() {
    ProcessBackend::Options o;
    o.worker_command = {SelfPath(), kWorkerFlag};
    o.restart_backoff = std::chrono::milliseconds(1);
    o.max_restart_backoff = std::chrono::milliseconds(1);
    o.load_nice = o.serve_nice = 0;  // nothing to raise: no warning
    return o;
  }
  void Create(ProcessBackend::Options o) {
    auto backend = ProcessBackend::Create(std::move(o));
    ASSERT_TRUE(backend.ok()) << backend.status().message();
    backend_ = std::move(*backend);
  }
  LoadSpec Spec(const std::string& name = "m") {
    LoadSpec spec;
    spec.model_name = name;
    spec.version = 1;
    spec.model_dir = dir_ / name;
    spec.version_dir = spec.model_dir / "1";
    spec.platform = fakes::kFakePlatform;
    spec.has_config = true;
    spec.config.set_name(name);
    spec.config.set_platform(fakes::kFakePlatform);
    auto* x = spec.config.add_input();
    x->set_name("x");
    x->set_data_type(inference::TYPE_FP32);
    x->add_dims(4);
    auto* y = spec.config.add_output();
    y->set_name("y");
    y->set_data_type(inference::TYPE_FP32);
    y->add_dims(4);
    spec.on_health = health_.Listener();
    return spec;
  }
  void Load(LoadSpec spec) {
    auto model = backend_->Load(spec);
    ASSERT_TRUE(model.ok()) << model.status().message();
    model_ = std::move(*model);
  }
  // Runs x = `values` on instance `i`.
  StatusOr<std::vector<float>> Run(std::vector<float> values, size_t i = 0) {
    InferRequest request;
    request.model_name = "m";
    Tensor x;
    x.name = "x";
    x.dtype = DataType::kFp32;
    x.shape = {static_cast<int64_t>(values.size())};
    x.data = std::as_bytes(std::span<const float>(values));
    request.inputs.push_back(std::move(x));
    InferResponse response;
    MM_RETURN_IF_ERROR(model_->instances[i]->Execute(request, response));
    if (response.outputs.size() != 1 || response.outputs[0].name != "y") {
      return Internal("expected one output y");
    }
    auto y = response.outputs[0].as<float>();
    return std::vector<float>(y.begin(), y.end());
  }

  fs::path dir_;
  HealthLog health_;
  std::unique_ptr<ProcessBackend> backend_;
  std::unique_ptr<LoadedModel> model_;
};

TEST_F(ProcessBackendTest, AListRunsAsOneExecuteWithIdsParametersAndItsOwnResults) {
  Create(Defaults());
  LoadSpec spec = Spec();
  (*spec.config.mutable_parameters())["batch_as_list"].set_string_value("true");
  Load(spec);
  EXPECT_TRUE(model_->batch_as_list);  // what the worker's backend said
  std::vector<float> a = {1, 2, 3, 4};
  std::vector<float> b = {5, 6, 7, 8};
  std::vector<InferRequest> requests(3);
  std::vector<InferResponse> responses(3);
  const char* ids[3] = {"a", "fail-me", "c"};
  for (size_t r = 0; r < 3; ++r) {
    requests[r].model_name = "m";
    requests[r].id = ids[r];
    Tensor x;
    x.name = "x";
    x.dtype = DataType::kFp32;
    x.shape = {4};
    x.data = std::as_bytes(std::span<const float>(r == 2 ? b : a));
    requests[r].inputs.push_back(std::move(x));
  }
  requests[2].parameters["plus"] = int64_t{100};
  std::vector<const InferRequest*> request_ptrs = {&requests[0], &requests[1], &requests[2]};
  std::vector<InferResponse*> response_ptrs = {&responses[0], &responses[1], &responses[2]};
  std::vector<Status> results(3);
  ASSERT_TRUE(model_->instances[0]->ExecuteList(request_ptrs, response_ptrs, results).ok());
  ASSERT_TRUE(results[0].ok()) << results[0].message();
  EXPECT_EQ(results[1].code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(results[1].message(), "asked to fail");
  ASSERT_TRUE(results[2].ok()) << results[2].message();
  ASSERT_EQ(responses[0].outputs.size(), 1u);
  EXPECT_EQ(responses[0].outputs[0].name, "y_a");
  auto y0 = responses[0].outputs[0].as<float>();
  EXPECT_EQ(std::vector<float>(y0.begin(), y0.end()), (std::vector<float>{2, 3, 4, 5}));
  EXPECT_TRUE(responses[1].outputs.empty());
  ASSERT_EQ(responses[2].outputs.size(), 1u);
  EXPECT_EQ(responses[2].outputs[0].name, "y_c");
  auto y2 = responses[2].outputs[0].as<float>();
  EXPECT_EQ(std::vector<float>(y2.begin(), y2.end()), (std::vector<float>{106, 107, 108, 109}));
  // A single request still runs, a list of one.
  EXPECT_EQ(*Run({0, 0, 0, 0}), (std::vector<float>{1, 1, 1, 1}));
}

TEST_F(ProcessBackendTest, AModelThatDoesNotBatchAsAListSaysSo) {
  Create(Defaults());
  Load(Spec());
  EXPECT_FALSE(model_->batch_as_list);
}

TEST_F(ProcessBackendTest, CreateRefusesBadOptions) {
  auto refused = [&](ProcessBackend::Options o, const std::string& words) {
    auto b = ProcessBackend::Create(std::move(o));
    ASSERT_FALSE(b.ok()) << words;
    EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(b.status().message().find(words), std::string::npos) << b.status().message();
  };
  auto o = Defaults();
  o.worker_command.clear();
  refused(o, "no worker command");
  o = Defaults();
  o.restart_backoff = std::chrono::milliseconds(0);
  refused(o, "restart backoff");
  o = Defaults();
  o.max_restart_backoff = std::chrono::milliseconds(0);  // below the backoff
  refused(o, "at least --worker-restart-backoff-ms");
  o = Defaults();
  o.start_timeout = std::chrono::milliseconds(0);
  refused(o, "start timeout");
  o = Defaults();
  o.mailbox_bytes = ProcessBackend::kMinMailboxBytes - 1;
  refused(o, "mailbox");
  o.mailbox_bytes = ProcessBackend::kMaxMailboxBytes + 1;
  refused(o, "mailbox");
}

TEST_F(ProcessBackendTest, LoadsInWorkersAndExecutes) {
  Create(Defaults());
  LoadSpec spec = Spec();
  spec.config.add_instance_group()->set_count(2);
  Load(spec);
  ASSERT_EQ(model_->instances.size(), 2u);  // one worker per instance
  EXPECT_EQ(model_->config.name(), "m");
  EXPECT_EQ(model_->config.input_size(), 1);
  EXPECT_EQ(model_->config.instance_group(0).count(), 2);  // the user's groups
  EXPECT_GT(model_->external_bytes, 0u);                   // the workers' resident memory
  EXPECT_FALSE(model_->inline_safe);                       // never on a transport's thread
  for (size_t i = 0; i < 2; ++i) {
    auto y = Run({1, 2, 3, 4}, i);
    ASSERT_TRUE(y.ok()) << y.status().message();
    EXPECT_EQ(*y, (std::vector<float>{2, 3, 4, 5}));  // x + version
  }
  EXPECT_EQ(health_.size(), 0u);  // nothing went down
}

TEST_F(ProcessBackendTest, LargeRequestsTravelOnTheSocket) {
  auto o = Defaults();
  o.mailbox_bytes = ProcessBackend::kMinMailboxBytes;  // every request too large for its slot
  o.initial_region_bytes = 4096;
  Create(o);
  Load(Spec());
  for (int i = 0; i < 3; ++i) {
    auto y = Run({0, 0, 0, static_cast<float>(i)});
    ASSERT_TRUE(y.ok()) << y.status().message();
    EXPECT_EQ((*y)[3], i + 1);
  }
}

TEST_F(ProcessBackendTest, ALoadErrorInTheWorkerFailsTheLoadNamingIt) {
  Create(Defaults());
  fs::remove(dir_ / "m" / "1" / "model.bin");
  auto missing = backend_->Load(Spec());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound) << missing.status().message();
  EXPECT_NE(missing.status().message().find("no model.bin"), std::string::npos)
      << missing.status().message();

  LoadSpec unknown = Spec();
  unknown.platform = "no_such_platform";
  auto refused = backend_->Load(unknown);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("platform 'no_such_platform' is not supported"),
            std::string::npos)
      << refused.status().message();
  EXPECT_EQ(health_.size(), 0u);  // a failed load restarts nothing
}

TEST_F(ProcessBackendTest, AWorkerThatCannotStartFailsTheLoadSayingHowItEnded) {
  auto o = Defaults();
  o.worker_command = {"/bin/false"};
  Create(o);
  auto failed = backend_->Load(Spec());
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable) << failed.status().message();
  EXPECT_NE(failed.status().message().find("model 'm' version 1 worker exited with status 1"),
            std::string::npos)
      << failed.status().message();
}

TEST_F(ProcessBackendTest, ACrashFailsItsBatchNamingTheCauseAndTheWorkerRestarts) {
  Create(Defaults());
  Load(Spec());
  ASSERT_TRUE(Run({1, 1, 1, 1}).ok());

  auto crashed = Run({kCrash, 0, 0, 0});
  ASSERT_FALSE(crashed.ok());
  EXPECT_EQ(crashed.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(crashed.status().message().find("model 'm' version 1 worker killed by signal 9"),
            std::string::npos)
      << crashed.status().message();

  // on_health hears the cause and the restart to come, then OK once it is back.
  Status down = health_.Await(0, [](const Status& s) { return !s.ok(); });
  EXPECT_EQ(down.code(), StatusCode::kUnavailable);
  EXPECT_NE(down.message().find("killed by signal 9"), std::string::npos) << down.message();
  EXPECT_NE(down.message().find("restart 1 in"), std::string::npos) << down.message();
  EXPECT_TRUE(health_.Await(0, [](const Status& s) { return s.ok(); }).ok());

  auto again = Run({1, 2, 3, 4});
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(*again, (std::vector<float>{2, 3, 4, 5}));

  // A second crash is the second restart.
  EXPECT_FALSE(Run({kCrash, 0, 0, 0}).ok());
  Status second = health_.Await(0, [](const Status& s) {
    return !s.ok() && s.message().find("restart 2 in") != std::string::npos;
  });
  EXPECT_NE(second.message().find("killed by signal 9"), std::string::npos);
}

TEST_F(ProcessBackendTest, AHungBatchIsKilledAtTheExecutionTimeout) {
  auto o = Defaults();
  o.execution_timeout = std::chrono::milliseconds(200);
  Create(o);
  Load(Spec());
  auto hung = Run({kHang, 0, 0, 0});  // never answers: only the timeout ends it
  ASSERT_FALSE(hung.ok());
  EXPECT_EQ(hung.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(hung.status().message().find("killed: execution exceeded the timeout of 200 ms"),
            std::string::npos)
      << hung.status().message();
  EXPECT_TRUE(health_.Await(0, [](const Status& s) { return s.ok(); }).ok());  // and it comes back
  EXPECT_TRUE(Run({1, 2, 3, 4}).ok());
}

TEST_F(ProcessBackendTest, ShutdownFailsLaterBatchesAndRestartsNothing) {
  Create(Defaults());
  Load(Spec());
  backend_->Shutdown("stopping for the test");
  auto after = Run({1, 2, 3, 4});
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(after.status().message().find("the server is stopping for the test"), std::string::npos)
      << after.status().message();
  // Nothing more starts.
  auto refused = backend_->Load(Spec());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace mm
