// The Python backend in-process (the interpreter starts once per test
// process, at the first Load, and serves every test after it; each test
// writes its own model folder).
#include "backends/python/python_backend.h"

#include <Python.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <fstream>

#include "backends/registry.h"
#include "core/bytes_tensor.h"
#include "repository/model_config.h"

namespace mm {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

fs::path TempDir() {
  static std::atomic<int> n{0};
  fs::path dir =
      fs::temp_directory_path() /
      ("mmserve_python_backend_test_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void WriteFile(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

constexpr char kIdentityConfig[] = R"(
name: "m"
backend: "python"
input [{ name: "IN" data_type: TYPE_FP32 dims: [ -1 ] }]
output [{ name: "OUT" data_type: TYPE_FP32 dims: [ -1 ] }]
)";

// Loads `model_py` as model 'm' version 1 with config text `config` (none
// when empty) in a fresh folder.
StatusOr<std::unique_ptr<LoadedModel>> LoadModel(const std::string& model_py,
                                                 const std::string& config_text,
                                                 fs::path* dir_out = nullptr) {
  const fs::path dir = TempDir() / "m";
  WriteFile(dir / "1" / "model.py", model_py);
  LoadSpec spec;
  spec.model_name = "m";
  spec.version = 1;
  spec.model_dir = dir;
  spec.version_dir = dir / "1";
  if (!config_text.empty()) {
    auto parsed = ParseModelConfig(config_text, "m", nullptr);
    if (!parsed.ok()) return parsed.status();
    spec.config = *parsed;
    spec.has_config = true;
  }
  spec.config.set_name("m");
  if (dir_out != nullptr) *dir_out = dir;
  auto backend = PythonBackend::Create({});
  if (!backend.ok()) return backend.status();
  static std::vector<std::unique_ptr<Backend>> keep;  // backends hold nothing per model
  keep.push_back(std::move(*backend));
  return keep.back()->Load(spec);
}

Tensor Fp32(const std::string& name, std::vector<float>& values) {
  Tensor t;
  t.name = name;
  t.dtype = DataType::kFp32;
  t.shape = {static_cast<int64_t>(values.size())};
  t.data = std::as_bytes(std::span<const float>(values));
  return t;
}

std::vector<float> AsFloats(const Tensor& t) {
  auto v = t.as<float>();
  return {v.begin(), v.end()};
}

TEST(PythonBackendTest, RegistersAsTritonsPythonBackendRunningOnlyInWorkers) {
  BackendRegistry registry;
  ASSERT_TRUE(RegisterPythonBackend(registry).ok());
  auto found = registry.Find("python");
  ASSERT_TRUE(found.ok()) << found.status().message();
  EXPECT_TRUE(found->registration->platforms.empty());
  EXPECT_EQ(found->registration->default_model_file, "model.py");
  EXPECT_TRUE(found->registration->process_only);
  EXPECT_EQ(found->platform, "python");
}

TEST(PythonBackendTest, SettingsKnowEnvAndCacheDirAndRefuseOthers) {
  EXPECT_TRUE(PythonBackend::Create({{"env", "/"}, {"env-cache-dir", "/tmp/c"}}).ok());
  // A missing environment stops the server as it starts (CreateAll), not at a load.
  auto missing = PythonBackend::Create({{"env", "/nonexistent/venv"}});
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("'/nonexistent/venv': no such folder"));
  auto bad = PythonBackend::Create({{"shm-default-byte-size", "1"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("'shm-default-byte-size'"));
  EXPECT_THAT(bad.status().message(), HasSubstr("env, env-cache-dir"));
}

TEST(PythonBackendDeathTest, CreatingTheBackendStartsNoInterpreter) {
  // In a child process, whatever earlier tests of this process started.
  EXPECT_EXIT(
      {
        BackendRegistry registry;
        if (!RegisterPythonBackend(registry).ok() || !registry.CreateAll().ok()) std::_Exit(2);
        std::_Exit(Py_IsInitialized() ? 1 : 0);
      },
      ::testing::ExitedWithCode(0), "");
}

constexpr char kEcho[] = R"(
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "IN").as_numpy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", x * 2)]))
        return out
)";

TEST(PythonBackendTest, ExecutesAModel) {
  auto model = LoadModel(kEcho, kIdentityConfig);
  ASSERT_TRUE(model.ok()) << model.status().message();
  EXPECT_EQ((*model)->config.backend(), "python");
  EXPECT_FALSE((*model)->batch_as_list);
  ASSERT_EQ((*model)->instances.size(), 1u);
  std::vector<float> in = {1, 2, 3};
  InferRequest request;
  request.inputs.push_back(Fp32("IN", in));
  InferResponse response;
  Status s = (*model)->instances[0]->Execute(request, response);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(response.outputs.size(), 1u);
  EXPECT_EQ(response.outputs[0].name, "OUT");
  EXPECT_EQ(response.outputs[0].shape, Shape({3}));
  EXPECT_EQ(AsFloats(response.outputs[0]), std::vector<float>({2, 4, 6}));
  // The output outlives the Python objects of the execution (held by owner).
  model->reset();
  EXPECT_EQ(AsFloats(response.outputs[0]), std::vector<float>({2, 4, 6}));
}

TEST(PythonBackendTest, InputsAreViewsOfTheRequestBytes) {
  // The model answers the address its input array's data is at.
  auto model = LoadModel(R"(
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        x = pb_utils.get_input_tensor_by_name(requests[0], "IN").as_numpy()
        address = np.array([x.ctypes.data], dtype=np.uint64).view(np.float32)
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUT", address)])]
)",
                         kIdentityConfig);
  ASSERT_TRUE(model.ok()) << model.status().message();
  std::vector<float> in = {1, 2, 3, 4};
  InferRequest request;
  request.inputs.push_back(Fp32("IN", in));
  InferResponse response;
  ASSERT_TRUE((*model)->instances[0]->Execute(request, response).ok());
  uint64_t address = 0;
  ASSERT_EQ(response.outputs[0].data.size(), sizeof(address));
  std::memcpy(&address, response.outputs[0].data.data(), sizeof(address));
  EXPECT_EQ(address, reinterpret_cast<uintptr_t>(in.data()));
}

TEST(PythonBackendTest, BytesTensorsAreObjectArraysBothWays) {
  auto model = LoadModel(R"(
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        x = pb_utils.get_input_tensor_by_name(requests[0], "IN").as_numpy()
        assert x.dtype == np.object_ and x.shape == (2,), (x.dtype, x.shape)
        assert all(isinstance(v, bytes) for v in x)
        out = np.array([v[::-1] for v in x] , dtype=np.object_)
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUT", out)])]
)",
                         R"(
name: "m"
backend: "python"
input [{ name: "IN" data_type: TYPE_STRING dims: [ 2 ] }]
output [{ name: "OUT" data_type: TYPE_STRING dims: [ 2 ] }]
)");
  ASSERT_TRUE(model.ok()) << model.status().message();
  std::string bytes;
  AppendBytesElement("abc", bytes);
  AppendBytesElement(std::string("\0x", 2), bytes);
  InferRequest request;
  Tensor t;
  t.name = "IN";
  t.dtype = DataType::kBytes;
  t.shape = {2};
  t.data = std::as_bytes(std::span<const char>(bytes));
  request.inputs.push_back(t);
  InferResponse response;
  Status s = (*model)->instances[0]->Execute(request, response);
  ASSERT_TRUE(s.ok()) << s.message();
  auto items = SplitBytesTensor(response.outputs[0].data, 2, "OUT");
  ASSERT_TRUE(items.ok());
  EXPECT_EQ((*items)[0], "cba");
  EXPECT_EQ((*items)[1], std::string("x\0", 2));
}

TEST(PythonBackendTest, DynamicBatchingHandsExecuteTheListOfRequests) {
  auto model = LoadModel(R"(
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        n = len(requests)
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "IN").as_numpy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", x + n)]))
        if n == 3:
            out[1] = pb_utils.InferenceResponse(error=pb_utils.TritonError(
                "second is bad", pb_utils.TritonError.INVALID_ARG))
        return out
)",
                         R"(
name: "m"
backend: "python"
max_batch_size: 8
dynamic_batching {}
input [{ name: "IN" data_type: TYPE_FP32 dims: [ 1 ] }]
output [{ name: "OUT" data_type: TYPE_FP32 dims: [ 1 ] }]
)");
  ASSERT_TRUE(model.ok()) << model.status().message();
  EXPECT_TRUE((*model)->batch_as_list);
  std::vector<float> v[3] = {{1}, {2}, {3}};
  InferRequest requests[3];
  InferResponse responses[3];
  for (int i = 0; i < 3; ++i) {
    Tensor t = Fp32("IN", v[i]);
    t.shape = {1, 1};
    requests[i].inputs.push_back(t);
  }
  const InferRequest* rp[] = {&requests[0], &requests[1], &requests[2]};
  InferResponse* sp[] = {&responses[0], &responses[1], &responses[2]};
  Status results[3];
  ASSERT_TRUE((*model)->instances[0]->ExecuteList(rp, sp, results).ok());
  ASSERT_TRUE(results[0].ok()) << results[0].message();
  EXPECT_EQ(AsFloats(responses[0].outputs[0]), std::vector<float>({4}));
  EXPECT_EQ(results[1].code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(results[1].message(), HasSubstr("second is bad"));
  ASSERT_TRUE(results[2].ok());
  EXPECT_EQ(AsFloats(responses[2].outputs[0]), std::vector<float>({6}));
}

TEST(PythonBackendTest, ExecuteErrorsFailTheRequestAndTheInstanceKeepsServing) {
  auto model = LoadModel(R"(
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        x = pb_utils.get_input_tensor_by_name(requests[0], "IN").as_numpy()
        if x[0] == 1:
            raise ValueError("bad value one")
        if x[0] == 2:
            return []
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUT", x)])]
)",
                         kIdentityConfig);
  ASSERT_TRUE(model.ok()) << model.status().message();
  auto run = [&](float first) {
    std::vector<float> in = {first};
    InferRequest request;
    request.inputs.push_back(Fp32("IN", in));
    InferResponse response;
    return (*model)->instances[0]->Execute(request, response);
  };
  Status s = run(1);
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_THAT(s.message(), HasSubstr("ValueError: bad value one"));
  EXPECT_THAT(s.message(), HasSubstr("model.py:9 in execute"));
  s = run(2);
  EXPECT_THAT(s.message(), HasSubstr("execute returned 0 responses for 1 requests"));
  EXPECT_TRUE(run(3).ok());
}

TEST(PythonBackendTest, AutoCompleteConfigCompletesTheConfig) {
  auto model = LoadModel(R"(
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    @staticmethod
    def auto_complete_config(auto_complete_model_config):
        auto_complete_model_config.add_input({"name": "A", "data_type": "TYPE_INT32", "dims": [3]})
        auto_complete_model_config.add_output({"name": "B", "data_type": "TYPE_STRING", "dims": [-1]})
        auto_complete_model_config.set_max_batch_size(4)
        auto_complete_model_config.set_dynamic_batching()
        auto_complete_model_config.set_model_transaction_policy(dict(decoupled=False))
        return auto_complete_model_config

    def execute(self, requests):
        return []
)",
                         "");
  ASSERT_TRUE(model.ok()) << model.status().message();
  const auto& config = (*model)->config;
  EXPECT_EQ(config.name(), "m");
  EXPECT_EQ(config.backend(), "python");
  EXPECT_EQ(config.max_batch_size(), 4);
  ASSERT_EQ(config.input_size(), 1);
  EXPECT_EQ(config.input(0).name(), "A");
  EXPECT_EQ(config.input(0).data_type(), inference::TYPE_INT32);
  ASSERT_EQ(config.output_size(), 1);
  EXPECT_EQ(config.output(0).data_type(), inference::TYPE_STRING);
  EXPECT_TRUE(config.has_dynamic_batching());
  EXPECT_TRUE((*model)->batch_as_list);
}

TEST(PythonBackendTest, AutoCompleteCannotContradictTheConfig) {
  auto model = LoadModel(R"(
class TritonPythonModel:
    @staticmethod
    def auto_complete_config(auto_complete_model_config):
        auto_complete_model_config.add_input({"name": "IN", "data_type": "TYPE_INT32", "dims": [-1]})
        return auto_complete_model_config

    def execute(self, requests):
        return []
)",
                         kIdentityConfig);
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(model.status().message(), HasSubstr("auto_complete_config failed"));
  EXPECT_THAT(model.status().message(), HasSubstr("unable to modify the data_type"));
}

TEST(PythonBackendTest, LoadErrorsNameTheExceptionAndItsFrames) {
  auto syntax = LoadModel("class TritonPythonModel:\n    def execute(self, requests)\n", "");
  ASSERT_FALSE(syntax.ok());
  EXPECT_EQ(syntax.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(syntax.status().message(), HasSubstr("model 'm' version 1: cannot import model.py"));
  EXPECT_THAT(syntax.status().message(), HasSubstr("SyntaxError"));

  auto init = LoadModel(R"(
class TritonPythonModel:
    def initialize(self, args):
        raise KeyError(args["model_name"])

    def execute(self, requests):
        return []
)",
                        kIdentityConfig);
  ASSERT_FALSE(init.ok());
  EXPECT_THAT(init.status().message(), HasSubstr("initialize failed: KeyError: 'm'"));
  EXPECT_THAT(init.status().message(), HasSubstr("in initialize"));

  auto none = LoadModel("x = 1\n", kIdentityConfig);
  ASSERT_FALSE(none.ok());
  EXPECT_THAT(none.status().message(), HasSubstr("defines no class TritonPythonModel"));
}

TEST(PythonBackendTest, FinalizeRunsWhenTheModelIsUnloaded) {
  fs::path dir;
  auto model = LoadModel(R"(
import os

class TritonPythonModel:
    def initialize(self, args):
        self.marker = os.path.join(args["model_repository"], "finalized")

    def execute(self, requests):
        return []

    def finalize(self):
        open(self.marker, "w").write("yes")
)",
                         kIdentityConfig, &dir);
  ASSERT_TRUE(model.ok()) << model.status().message();
  EXPECT_FALSE(fs::exists(dir / "finalized"));
  model->reset();
  EXPECT_TRUE(fs::exists(dir / "finalized"));
}

TEST(PythonBackendTest, TritonsRestOfTheModelApiIsThereOrRefusedClearly) {
  // Every check runs in the model; a failed one fails the request with its
  // assertion's message.
  auto model = LoadModel(R"(
import json
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
        config = json.loads(args["model_config"])
        assert pb_utils.using_decoupled_model_transaction_policy(config) is False
        assert pb_utils.using_decoupled_model_transaction_policy(
            {"model_transaction_policy": {"decoupled": True}}) is True
        assert pb_utils.TRITONSERVER_REQUEST_FLAG_SEQUENCE_START == 1
        assert pb_utils.TRITONSERVER_REQUEST_FLAG_SEQUENCE_END == 2
        refused(lambda: pb_utils.is_model_ready("other"), "is_model_ready")
        refused(lambda: pb_utils.load_model("other"), "load_model")
        refused(lambda: pb_utils.unload_model("other"), "unload_model")
        refused(lambda: pb_utils.MetricFamily("c", "d", pb_utils.MetricFamily.COUNTER),
                "custom metrics")
        refused(lambda: pb_utils.InferenceRequest(model_name="other", inputs=[],
                                                  requested_output_names=["OUT"]).exec(),
                "BLS calls")

    def execute(self, requests):
        out = []
        for r in requests:
            assert r.is_cancelled() is False
            refused(lambda: r.set_release_flags(pb_utils.TRITONSERVER_REQUEST_RELEASE_RESCHEDULE),
                    "rescheduling")
            response = pb_utils.InferenceResponse(
                [pb_utils.Tensor("OUT", r.inputs()[0].as_numpy() + 1)], parameters={"k": 1})
            assert json.loads(response.parameters()) == {"k": 1}
            out.append(response)
        return out
)",
                         kIdentityConfig);
  ASSERT_TRUE(model.ok()) << model.status().message();
  std::vector<float> in = {1, 2};
  InferRequest request;
  request.inputs.push_back(Fp32("IN", in));
  InferResponse response;
  Status s = (*model)->instances[0]->Execute(request, response);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(response.outputs.size(), 1u);
  EXPECT_EQ(AsFloats(response.outputs[0]), std::vector<float>({2, 3}));
}

}  // namespace
}  // namespace mm
