// pb_utils' BLS calls and custom metrics over the ModelHost a Python model's
// LoadSpec carries (python_host.h), in-process with a fake host: exec,
// exec(decoupled=True), async_exec with asyncio.gather in an `async def
// execute`, errors as response errors, the timeout and parameters passed
// on, BYTES both ways, is_model_ready, MetricFamily/Metric, and a clear
// TritonModelException without a host.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <thread>

#include "backends/python/python_backend.h"
#include "core/bytes_tensor.h"
#include "core/thread_annotations.h"
#include "observability/custom_metrics.h"
#include "repository/model_config.h"

namespace mm {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A host whose models are:
//   double   Y = X * 2 (FP32), answered on a thread of its own (as a worker's
//            channel would); the parameters, id and version of the last
//            request with an id are kept;
//   stream   decoupled: N = X[0] responses Y = [i], then the final flag alone;
//   words    BYTES: W echoed with "!" appended to each element;
//   anything else: NOT_FOUND.
class FakeHost final : public ModelHost {
 public:
  ~FakeHost() override {
    MutexLock lock(mu_);
    for (auto& t : threads_) t.join();
  }

  void Infer(std::unique_ptr<InferRequest> request, HostInferCallback on_response) override {
    {
      MutexLock lock(mu_);
      if (!request->id.empty()) {
        last_parameters_ = request->parameters;
        last_id_ = request->id;
        last_version_ = request->model_version;
      }
    }
    if (request->model_name == "double") {
      std::shared_ptr<InferRequest> r(std::move(request));
      MutexLock lock(mu_);
      threads_.emplace_back([r, on_response] {
        if (r->inputs.size() != 1 || r->inputs[0].dtype != DataType::kFp32) {
          return on_response(InvalidArgument("model 'double' expects one FP32 input 'X'"), true);
        }
        auto values = r->inputs[0].as<float>();
        auto out = std::make_shared<std::vector<float>>(values.begin(), values.end());
        for (float& v : *out) v *= 2;
        auto response = std::make_unique<InferResponse>();
        Tensor y;
        y.name = "Y";
        y.dtype = DataType::kFp32;
        y.shape = r->inputs[0].shape;
        y.data = std::as_bytes(std::span<const float>(*out));
        y.owner = out;
        response->outputs.push_back(std::move(y));
        on_response(std::move(response), true);
      });
      return;
    }
    if (request->model_name == "stream") {
      const int n = static_cast<int>(request->inputs.at(0).as<float>()[0]);
      MutexLock lock(mu_);
      threads_.emplace_back([n, on_response] {
        for (int i = 0; i < n; ++i) {
          auto value = std::make_shared<float>(static_cast<float>(i));
          auto response = std::make_unique<InferResponse>();
          Tensor y;
          y.name = "Y";
          y.dtype = DataType::kFp32;
          y.shape = {1};
          y.data = std::as_bytes(std::span<const float>(value.get(), 1));
          y.owner = value;
          response->outputs.push_back(std::move(y));
          on_response(std::move(response), false);
        }
        on_response(std::unique_ptr<InferResponse>(), true);
      });
      return;
    }
    if (request->model_name == "words") {
      const Tensor& w = request->inputs.at(0);
      auto count = ElementCount(w.shape, "W");
      auto elements = SplitBytesTensor(w.data, *count, "W");
      if (!elements.ok()) return on_response(elements.status(), true);
      auto bytes = std::make_shared<std::string>();
      for (const auto& e : *elements) {
        const std::string s = std::string(e.begin(), e.end()) + "!";
        const uint32_t len = static_cast<uint32_t>(s.size());
        bytes->append(reinterpret_cast<const char*>(&len), 4);
        bytes->append(s);
      }
      auto response = std::make_unique<InferResponse>();
      Tensor out;
      out.name = "W";
      out.dtype = DataType::kBytes;
      out.shape = w.shape;
      out.data = std::as_bytes(std::span<const char>(bytes->data(), bytes->size()));
      out.owner = bytes;
      response->outputs.push_back(std::move(out));
      return on_response(std::move(response), true);
    }
    on_response(NotFound("model '" + request->model_name + "' is not found"), true);
  }

  bool ModelReady(std::string_view name, std::string_view version) override {
    return name == "double" && (version.empty() || version == "1");
  }

  StatusOr<uint64_t> CreateMetric(const MetricSpec& spec) override {
    CustomMetricSpec s{spec.family, spec.description, static_cast<CustomMetricKind>(spec.kind),
                       spec.labels, spec.buckets};
    return owner_->Create(s);
  }
  Status UpdateMetric(uint64_t id, MetricOp op, double value) override {
    return owner_->Update(id, static_cast<CustomMetricOp>(op), value);
  }
  StatusOr<double> MetricValue(uint64_t id) override { return owner_->Value(id); }
  void ReleaseMetric(uint64_t id) override { owner_->Release(id); }

  Parameters last_parameters() {
    MutexLock lock(mu_);
    return last_parameters_;
  }
  std::string last_id() {
    MutexLock lock(mu_);
    return last_id_;
  }
  std::string last_version() {
    MutexLock lock(mu_);
    return last_version_;
  }
  CustomMetrics& metrics() { return metrics_; }

 private:
  CustomMetrics metrics_;
  std::unique_ptr<CustomMetrics::Owner> owner_ = metrics_.ForModel("m", "1");
  Mutex mu_;
  std::vector<std::thread> threads_ MM_GUARDED_BY(mu_);
  Parameters last_parameters_ MM_GUARDED_BY(mu_);
  std::string last_id_ MM_GUARDED_BY(mu_);
  std::string last_version_ MM_GUARDED_BY(mu_);
};

fs::path TempDir() {
  static std::atomic<int> n{0};
  fs::path dir =
      fs::temp_directory_path() /
      ("mmserve_python_host_test_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

constexpr char kConfig[] = R"(
name: "m"
backend: "python"
input [{ name: "IN" data_type: TYPE_FP32 dims: [ -1 ] }]
output [{ name: "OUT" data_type: TYPE_FP32 dims: [ -1 ] }]
)";

StatusOr<std::unique_ptr<LoadedModel>> LoadModel(const std::string& model_py,
                                                 std::shared_ptr<ModelHost> host) {
  const fs::path dir = TempDir() / "m";
  fs::create_directories(dir / "1");
  std::ofstream(dir / "1" / "model.py") << model_py;
  LoadSpec spec;
  spec.model_name = "m";
  spec.version = 1;
  spec.model_dir = dir;
  spec.version_dir = dir / "1";
  auto parsed = ParseModelConfig(kConfig, "m", nullptr);
  if (!parsed.ok()) return parsed.status();
  spec.config = *parsed;
  spec.has_config = true;
  spec.host = std::move(host);
  auto backend = PythonBackend::Create({});
  if (!backend.ok()) return backend.status();
  static std::vector<std::unique_ptr<Backend>> keep;
  keep.push_back(std::move(*backend));
  return keep.back()->Load(spec);
}

// Runs the model once on IN = `in`; OUT's values, or the error.
StatusOr<std::vector<float>> RunOnce(LoadedModel& model, std::vector<float> in) {
  InferRequest request;
  Tensor t;
  t.name = "IN";
  t.dtype = DataType::kFp32;
  t.shape = {static_cast<int64_t>(in.size())};
  t.data = std::as_bytes(std::span<const float>(in));
  request.inputs.push_back(std::move(t));
  InferResponse response;
  Status s = model.instances[0]->Execute(request, response);
  if (!s.ok()) return s;
  if (response.outputs.size() != 1) return Internal("expected one output");
  auto v = response.outputs[0].as<float>();
  return std::vector<float>(v.begin(), v.end());
}

TEST(PythonHostTest, ExecRunsACallAndReturnsItsResponseOrItsError) {
  auto host = std::make_shared<FakeHost>();
  auto model = LoadModel(R"(
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "IN").as_numpy()
            call = pb_utils.InferenceRequest(
                model_name="double", requested_output_names=["Y"],
                inputs=[pb_utils.Tensor("X", x)], request_id="bls-1", model_version=1,
                timeout=250, parameters={"priority": 2, "note": "n"})
            response = call.exec()
            assert not response.has_error(), response.error().message()
            y = pb_utils.get_output_tensor_by_name(response, "Y").as_numpy()
            missing = pb_utils.InferenceRequest(
                model_name="nope", requested_output_names=["Y"],
                inputs=[pb_utils.Tensor("X", x)]).exec()
            assert missing.has_error()
            assert missing.error().code() == pb_utils.TritonError.NOT_FOUND
            assert "nope" in missing.error().message()
            wrong = pb_utils.InferenceRequest(
                model_name="double", requested_output_names=["Y"],
                inputs=[pb_utils.Tensor("X", x.astype(np.int32))]).exec()
            assert wrong.has_error() and wrong.error().code() == pb_utils.TritonError.INVALID_ARG
            words = pb_utils.InferenceRequest(
                model_name="words", requested_output_names=["W"],
                inputs=[pb_utils.Tensor("W", np.array([b"a", b"bc"], dtype=np.object_))]).exec()
            w = pb_utils.get_output_tensor_by_name(words, "W").as_numpy()
            assert list(w) == [b"a!", b"bc!"], w
            assert pb_utils.is_model_ready("double")
            assert pb_utils.is_model_ready("double", "1")
            assert not pb_utils.is_model_ready("double", "2")
            assert not pb_utils.is_model_ready("nope")
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", y.copy())]))
        return out
)",
                         host);
  ASSERT_TRUE(model.ok()) << model.status().message();
  auto out = RunOnce(**model, {1, 2, 3});
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(*out, (std::vector<float>{2, 4, 6}));
  // The timeout (µs) and the model's parameters travel as request parameters.
  EXPECT_EQ(host->last_id(), "bls-1");
  EXPECT_EQ(host->last_version(), "1");
  Parameters p = host->last_parameters();
  EXPECT_EQ(std::get<int64_t>(p.at("timeout")), 250);
  EXPECT_EQ(std::get<int64_t>(p.at("priority")), 2);
  EXPECT_EQ(std::get<std::string>(p.at("note")), "n");
}

TEST(PythonHostTest, ExecDecoupledIteratesTheResponsesAsTheyCome) {
  auto host = std::make_shared<FakeHost>();
  auto model = LoadModel(R"(
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            n = pb_utils.get_input_tensor_by_name(r, "IN").as_numpy()[:1]
            values = []
            for response in pb_utils.InferenceRequest(
                    model_name="stream", requested_output_names=["Y"],
                    inputs=[pb_utils.Tensor("X", n)]).exec(decoupled=True):
                assert not response.has_error()
                if len(response.output_tensors()) > 0:
                    values.append(float(response.output_tensors()[0].as_numpy()[0]))
            # Several responses where one was expected: an error response.
            single = pb_utils.InferenceRequest(
                model_name="stream", requested_output_names=["Y"],
                inputs=[pb_utils.Tensor("X", n)]).exec()
            assert single.has_error() and "decoupled=True" in single.error().message()
            out.append(pb_utils.InferenceResponse(
                [pb_utils.Tensor("OUT", np.array(values, dtype=np.float32))]))
        return out
)",
                         host);
  ASSERT_TRUE(model.ok()) << model.status().message();
  auto out = RunOnce(**model, {4});
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(*out, (std::vector<float>{0, 1, 2, 3}));
}

TEST(PythonHostTest, AsyncExecuteGathersSeveralCalls) {
  auto host = std::make_shared<FakeHost>();
  auto model = LoadModel(R"(
import asyncio
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    async def execute(self, requests):
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "IN").as_numpy()
            calls = [pb_utils.InferenceRequest(
                model_name="double", requested_output_names=["Y"],
                inputs=[pb_utils.Tensor("X", x + i)]).async_exec() for i in range(8)]
            responses = await asyncio.gather(*calls)
            total = sum(pb_utils.get_output_tensor_by_name(resp, "Y").as_numpy()
                        for resp in responses)
            streamed = await pb_utils.InferenceRequest(
                model_name="stream", requested_output_names=["Y"],
                inputs=[pb_utils.Tensor("X", np.array([3], dtype=np.float32))]).async_exec(
                    decoupled=True)
            count = sum(1 for s in streamed if len(s.output_tensors()) > 0)
            out.append(pb_utils.InferenceResponse(
                [pb_utils.Tensor("OUT", (total + count).astype(np.float32))]))
        return out
)",
                         host);
  ASSERT_TRUE(model.ok()) << model.status().message();
  for (int round = 0; round < 3; ++round) {  // the thread's event loop is reused
    auto out = RunOnce(**model, {1, 2});
    ASSERT_TRUE(out.ok()) << out.status().message();
    // sum over i of 2 * (x + i) = 16x + 56, plus 3 streamed responses.
    EXPECT_EQ(*out, (std::vector<float>{16 + 56 + 3, 32 + 56 + 3}));
  }
}

TEST(PythonHostTest, AnAsyncExecuteThatRaisesFailsItsRequests) {
  auto host = std::make_shared<FakeHost>();
  auto model = LoadModel(R"(
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    async def execute(self, requests):
        raise ValueError("async-boom")
)",
                         host);
  ASSERT_TRUE(model.ok()) << model.status().message();
  auto out = RunOnce(**model, {1});
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(), HasSubstr("execute raised ValueError: async-boom"));
}

TEST(PythonHostTest, MetricFamiliesAndMetricsReachTheHost) {
  auto host = std::make_shared<FakeHost>();
  auto model = LoadModel(R"(
import numpy as np
import triton_python_backend_utils as pb_utils

def refused(call, words):
    try:
        call()
    except pb_utils.TritonModelException as e:
        assert words in e.message(), e.message()
        return
    raise AssertionError("no TritonModelException for " + words)

class TritonPythonModel:
    def initialize(self, args):
        family = pb_utils.MetricFamily(name="requests_by_kind_total",
                                       description="requests by kind",
                                       kind=pb_utils.MetricFamily.COUNTER)
        self.counter = family.Metric(labels={"kind": "a"})
        self.gauge = pb_utils.MetricFamily("queue_items", "queued",
                                           pb_utils.MetricFamily.GAUGE).Metric()
        self.histogram = pb_utils.MetricFamily(
            "latency_ms", "latency", pb_utils.MetricFamily.HISTOGRAM).Metric(
                labels={}, buckets=[1, 10, 100])
        refused(lambda: pb_utils.MetricFamily("bad-name", "d", pb_utils.MetricFamily.GAUGE)
                .Metric(), "not a Prometheus metric name")
        refused(lambda: pb_utils.MetricFamily("k", "d", 7), "kind")
        refused(lambda: family.Metric(labels={"__x": "1"}), "__")
        refused(lambda: self.counter.increment(-1), "counter")
        refused(lambda: self.counter.set(1), "gauge")

    def execute(self, requests):
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "IN").as_numpy()
            self.counter.increment(float(x.sum()))
            self.gauge.set(float(len(x)))
            self.histogram.observe(5)
        values = np.array([self.counter.value(), self.gauge.value(), self.histogram.value()],
                          dtype=np.float32)
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUT", values)]) for r in requests]
)",
                         host);
  ASSERT_TRUE(model.ok()) << model.status().message();
  auto out = RunOnce(**model, {1, 2, 3});
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(*out, (std::vector<float>{6, 3, 5}));
  out = RunOnce(**model, {1});
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(*out, (std::vector<float>{7, 1, 10}));
  MetricFamilies families;
  host->metrics().Collect(families);
  EXPECT_EQ(families.size(), 3u);
}

TEST(PythonHostTest, WithoutAHostEachCallIsATritonModelException) {
  auto model = LoadModel(R"(
import numpy as np
import triton_python_backend_utils as pb_utils

def refused(call, words):
    try:
        call()
    except pb_utils.TritonModelException as e:
        assert words in e.message(), e.message()
        return
    raise AssertionError("no TritonModelException for " + words)

class TritonPythonModel:
    def execute(self, requests):
        x = np.zeros(1, dtype=np.float32)
        refused(lambda: pb_utils.InferenceRequest(
            model_name="double", requested_output_names=["Y"],
            inputs=[pb_utils.Tensor("X", x)]).exec(), "hosts no such calls")
        refused(lambda: pb_utils.is_model_ready("double"), "hosts no such calls")
        refused(lambda: pb_utils.MetricFamily("c", "d", pb_utils.MetricFamily.COUNTER),
                "hosts no such calls")
        refused(lambda: pb_utils.load_model("x"), "repository API")
        refused(lambda: pb_utils.InferenceRequest(model_name="double", inputs=[1]), "Tensor")
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUT", x)]) for r in requests]
)",
                         nullptr);
  ASSERT_TRUE(model.ok()) << model.status().message();
  auto out = RunOnce(**model, {1});
  ASSERT_TRUE(out.ok()) << out.status().message();
}

}  // namespace
}  // namespace mm
