#include "backends/pytorch/torch_backend.h"
#include "backends/pytorch/torch_sandbox.h"

#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>
#include <torch/csrc/jit/runtime/operator.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "backends/pytorch/torch_device.h"
#include "backends/pytorch/torch_instance.h"
#include "torch_test_util.h"

namespace mm {
namespace {

using namespace torch_test;  // NOLINT

const char* kSubtract = R"(
def forward(self, a: Tensor, b: Tensor) -> Tensor:
    return a - b
)";

const char* kTwoInputsConfig = R"(
    input [ { name: "%s" data_type: TYPE_FP32 dims: [ 2 ] },
            { name: "%s" data_type: TYPE_FP32 dims: [ 2 ] } ]
    output [ { name: "out" data_type: TYPE_FP32 dims: [ 2 ] } ])";

std::string TwoInputs(const std::string& first, const std::string& second) {
  char buffer[512];
  std::snprintf(buffer, sizeof(buffer), kTwoInputsConfig, first.c_str(), second.c_str());
  return buffer;
}

// a - b with a = {10, 20}, b = {1, 2}, whatever the names: the convention
// decides which config input is a.
std::vector<float> Subtract(const std::string& first, const std::string& second,
                            const std::vector<float>& first_values,
                            const std::vector<float>& second_values) {
  TempDir dir;
  auto module = MakeModule(kSubtract);
  const std::string config = TwoInputs(first, second);
  auto model = MustLoad(SaveModel(dir, "sub", module, config.c_str()));
  if (!model) return {};
  InferRequest request;
  request.inputs.push_back(View("" + first, DataType::kFp32, {2}, first_values));
  request.inputs.push_back(View("" + second, DataType::kFp32, {2}, second_values));
  InferResponse response = MustRun(*model, request);
  if (response.outputs.size() != 1) return {};
  return Values<float>(response.outputs[0]);
}

// ------------------------------------------------------------ conventions

TEST(TorchBackendTest, InputsByForwardArgumentName) {
  // Config order b, a: the names decide.
  EXPECT_EQ(Subtract("b", "a", {1, 2}, {10, 20}), (std::vector<float>{9, 18}));
}

TEST(TorchBackendTest, InputsByNamedIndex) {
  EXPECT_EQ(Subtract("INPUT__1", "INPUT__0", {1, 2}, {10, 20}), (std::vector<float>{9, 18}));
}

TEST(TorchBackendTest, InputsFallBackToConfigOrder) {
  EXPECT_EQ(Subtract("x", "y", {10, 20}, {1, 2}), (std::vector<float>{9, 18}));
}

TEST(TorchBackendTest, DictInput) {
  TempDir dir;
  auto module = MakeModule(R"(
def forward(self, inputs: Dict[str, Tensor]) -> Tensor:
    return inputs["a"] - inputs["b"]
)");
  auto model = MustLoad(SaveModel(dir, "dict_in", module, TwoInputs("b", "a").c_str()));
  ASSERT_NE(model, nullptr);
  std::vector<float> a{10, 20}, b{1, 2};
  InferRequest request;
  request.inputs.push_back(View("b", DataType::kFp32, {2}, b));
  request.inputs.push_back(View("a", DataType::kFp32, {2}, a));
  InferResponse response = MustRun(*model, request);
  ASSERT_EQ(response.outputs.size(), 1u);
  EXPECT_EQ(Values<float>(response.outputs[0]), (std::vector<float>{9, 18}));
}

// ------------------------------------------------------------ outputs

const char* kOneInput = R"(
    input [ { name: "x" data_type: TYPE_FP32 dims: [ 2 ] } ]
)";

struct OutputCase {
  const char* source;
  const char* outputs;
};

InferResponse RunOneInput(const OutputCase& c, std::vector<std::string> requested = {}) {
  TempDir dir;
  auto module = MakeModule(c.source);
  const std::string config = std::string(kOneInput) + c.outputs;
  auto model = MustLoad(SaveModel(dir, "outs", module, config.c_str()));
  if (!model) return {};
  static const std::vector<float> x{1, 2};
  InferRequest request;
  request.inputs.push_back(View("x", DataType::kFp32, {2}, x));
  for (auto& name : requested) request.outputs.push_back({name, {}});
  return MustRun(*model, request);
}

TEST(TorchBackendTest, TupleOutputsByNamedIndex) {
  InferResponse r = RunOneInput({R"(
def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
    return x + 1, x * 10
)",
                                 R"(output [ { name: "TIMES__1" data_type: TYPE_FP32 dims: [ 2 ] },
                                             { name: "PLUS__0" data_type: TYPE_FP32 dims: [ 2 ] } ])"});
  ASSERT_EQ(r.outputs.size(), 2u);
  EXPECT_EQ(r.outputs[0].name, "TIMES__1");
  EXPECT_EQ(Values<float>(*FindOutput(r, "TIMES__1")), (std::vector<float>{10, 20}));
  EXPECT_EQ(Values<float>(*FindOutput(r, "PLUS__0")), (std::vector<float>{2, 3}));
}

TEST(TorchBackendTest, ListOutputsInConfigOrder) {
  InferResponse r = RunOneInput({R"(
def forward(self, x: Tensor) -> List[Tensor]:
    return [x + 1, x * 10]
)",
                                 R"(output [ { name: "plus" data_type: TYPE_FP32 dims: [ 2 ] },
                                             { name: "times" data_type: TYPE_FP32 dims: [ 2 ] } ])"});
  ASSERT_EQ(r.outputs.size(), 2u);
  EXPECT_EQ(Values<float>(*FindOutput(r, "plus")), (std::vector<float>{2, 3}));
  EXPECT_EQ(Values<float>(*FindOutput(r, "times")), (std::vector<float>{10, 20}));
}

TEST(TorchBackendTest, DictOutputsByKey) {
  InferResponse r = RunOneInput({R"(
def forward(self, x: Tensor) -> Dict[str, Tensor]:
    return {"times": x * 10, "plus": x + 1}
)",
                                 R"(output [ { name: "plus" data_type: TYPE_FP32 dims: [ 2 ] },
                                             { name: "times" data_type: TYPE_FP32 dims: [ 2 ] } ])"});
  ASSERT_EQ(r.outputs.size(), 2u);
  EXPECT_EQ(Values<float>(*FindOutput(r, "plus")), (std::vector<float>{2, 3}));
  EXPECT_EQ(Values<float>(*FindOutput(r, "times")), (std::vector<float>{10, 20}));
}

TEST(TorchBackendTest, DictOutputMissingKeyNamesTheKeys) {
  TempDir dir;
  auto module = MakeModule(R"(
def forward(self, x: Tensor) -> Dict[str, Tensor]:
    return {"plus": x + 1}
)");
  const std::string config =
      std::string(kOneInput) + R"(output [ { name: "times" data_type: TYPE_FP32 dims: [ 2 ] } ])";
  auto model = MustLoad(SaveModel(dir, "dict_out", module, config.c_str()));
  ASSERT_NE(model, nullptr);
  std::vector<float> x{1, 2};
  InferRequest request;
  request.inputs.push_back(View("x", DataType::kFp32, {2}, x));
  auto response = Execute(*model, request);
  ASSERT_FALSE(response.ok());
  EXPECT_NE(response.status().message().find("output 'times' is not a key of the dict forward "
                                             "returned (its keys: plus)"),
            std::string::npos)
      << response.status().message();
}

TEST(TorchBackendTest, RequestedOutputsOnly) {
  InferResponse r = RunOneInput({R"(
def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
    return x + 1, x * 10
)",
                                 R"(output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 2 ] },
                                             { name: "OUTPUT__1" data_type: TYPE_FP32 dims: [ 2 ] } ])"},
                                {"OUTPUT__1"});
  ASSERT_EQ(r.outputs.size(), 1u);
  EXPECT_EQ(r.outputs[0].name, "OUTPUT__1");
  EXPECT_EQ(Values<float>(r.outputs[0]), (std::vector<float>{10, 20}));
}

TEST(TorchBackendTest, OnlyLoopsTheInputsValuesDriveKeepAModelOffTheInlinePath) {
  TempDir dir;
  const char* config = R"(
    input [ { name: "x" data_type: TYPE_INT64 dims: [ 2 ] } ]
    output [ { name: "y" data_type: TYPE_INT64 dims: [ 2 ] } ])";
  struct Case {
    const char* name;
    const char* source;
    bool inline_safe;
  };
  const Case cases[] = {
      {"dims", R"(
def forward(self, x: Tensor) -> Tensor:
    for i in range(x.dim() - 1):
        x = x + i
    return x
)",
       true},
      {"constant", R"(
def forward(self, x: Tensor) -> Tensor:
    for i in range(3):
        x = x * 2
    return x
)",
       true},
      {"by_value", R"(
def forward(self, x: Tensor) -> Tensor:
    for i in range(int(x[0])):
        x = x + 1
    return x
)",
       false},
      {"while", R"(
def forward(self, x: Tensor) -> Tensor:
    while bool(x[0] > 0):
        x = x - 1
    return x
)",
       false},
  };
  for (const Case& c : cases) {
    auto module = MakeModule(c.source);
    auto model = MustLoad(SaveModel(dir, c.name, module, config));
    ASSERT_NE(model, nullptr) << c.name;
    EXPECT_EQ(model->inline_safe, c.inline_safe) << c.name;
  }
}

TEST(TorchBackendTest, StringsInAndOut) {
  TempDir dir;
  auto module = MakeModule(R"(
def forward(self, words: List[str], x: Tensor) -> Tuple[List[str], Tensor]:
    out: List[str] = []
    for w in words:
        out.append(w.upper())
    return out, x * 2
)");
  auto spec = SaveModel(dir, "strings", module, R"(
    max_batch_size: 4
    input [ { name: "words" data_type: TYPE_STRING dims: [ 1 ] reshape: { shape: [ ] } },
            { name: "x" data_type: TYPE_INT32 dims: [ 1 ] } ]
    output [ { name: "OUT__0" data_type: TYPE_STRING dims: [ 1 ] reshape: { shape: [ ] } },
             { name: "OUT__1" data_type: TYPE_INT32 dims: [ 1 ] } ])");
  auto model = MustLoad(spec);
  ASSERT_NE(model, nullptr);
  EXPECT_TRUE(model->inline_safe);  // its loop runs once per input string: bounded by size
  const std::string words = Serialize({"ab", "", "c\0d"});
  std::vector<int32_t> x{1, 2, 3};
  InferRequest request;
  request.inputs.push_back(BytesView("words", {3, 1}, words));
  request.inputs.push_back(View("x", DataType::kInt32, {3, 1}, x));
  InferResponse r = MustRun(*model, request);
  const Tensor* out = FindOutput(r, "OUT__0");
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(out->dtype, DataType::kBytes);
  EXPECT_EQ(out->shape, (Shape{3, 1}));
  EXPECT_EQ(Deserialize(*out), (std::vector<std::string>{"AB", "", "C"}));
  EXPECT_EQ(Values<int32_t>(*FindOutput(r, "OUT__1")), (std::vector<int32_t>{2, 4, 6}));
}

// ------------------------------------------------------------ dtypes

template <typename T>
void ExpectRoundTrip(DataType dtype, const char* config_type, std::vector<T> values) {
  SCOPED_TRACE(config_type);
  TempDir dir;
  auto module = MakeModule(R"(
def forward(self, x: Tensor) -> Tensor:
    return x.clone()
)");
  const std::string config = std::string("input [ { name: \"x\" data_type: ") + config_type +
                             " dims: [ -1 ] } ]\noutput [ { name: \"y\" data_type: " + config_type +
                             " dims: [ -1 ] } ]";
  auto model = MustLoad(SaveModel(dir, "dtype", module, config.c_str()));
  ASSERT_NE(model, nullptr);
  InferRequest request;
  request.inputs.push_back(View("x", dtype, {static_cast<int64_t>(values.size())}, values));
  InferResponse r = MustRun(*model, request);
  ASSERT_EQ(r.outputs.size(), 1u);
  EXPECT_EQ(r.outputs[0].dtype, dtype);
  EXPECT_EQ(r.outputs[0].shape, (Shape{static_cast<int64_t>(values.size())}));
  ASSERT_EQ(r.outputs[0].data.size(), values.size() * sizeof(T));
  EXPECT_EQ(std::memcmp(r.outputs[0].data.data(), values.data(), values.size() * sizeof(T)), 0);
}

TEST(TorchBackendTest, EveryDtypeRoundTripsBitExactly) {
  ExpectRoundTrip<uint8_t>(DataType::kBool, "TYPE_BOOL", {0, 1, 1, 0});
  ExpectRoundTrip<uint8_t>(DataType::kUint8, "TYPE_UINT8", {0, 255, 7});
  ExpectRoundTrip<uint16_t>(DataType::kUint16, "TYPE_UINT16", {0, 65535, 300});
  ExpectRoundTrip<uint32_t>(DataType::kUint32, "TYPE_UINT32", {0, 4294967295u, 70000});
  ExpectRoundTrip<uint64_t>(DataType::kUint64, "TYPE_UINT64", {0, UINT64_MAX, 1ull << 40});
  ExpectRoundTrip<int8_t>(DataType::kInt8, "TYPE_INT8", {-128, 127, 0});
  ExpectRoundTrip<int16_t>(DataType::kInt16, "TYPE_INT16", {-32768, 32767});
  ExpectRoundTrip<int32_t>(DataType::kInt32, "TYPE_INT32", {INT32_MIN, INT32_MAX});
  ExpectRoundTrip<int64_t>(DataType::kInt64, "TYPE_INT64", {INT64_MIN, INT64_MAX});
  // FP16 / BF16 as raw bits: subnormals, infinities, a NaN payload, -0.
  ExpectRoundTrip<uint16_t>(DataType::kFp16, "TYPE_FP16", {0x0001, 0x3c00, 0x7c00, 0x7e01, 0x8000});
  ExpectRoundTrip<uint16_t>(DataType::kBf16, "TYPE_BF16", {0x0001, 0x3f80, 0x7f80, 0x7fc1, 0x8000});
  ExpectRoundTrip<float>(DataType::kFp32, "TYPE_FP32", {1.5f, -0.0f, 3.4e38f, 1e-45f});
  ExpectRoundTrip<double>(DataType::kFp64, "TYPE_FP64", {1.5, -0.0, 1.7e308, 5e-324});
}

TEST(TorchBackendTest, OutputDtypeMismatchIsARequestError) {
  TempDir dir;
  auto module = MakeModule(R"(
def forward(self, x: Tensor) -> Tensor:
    return x.double()
)");
  auto model = MustLoad(SaveModel(dir, "dt", module, R"(
    input [ { name: "x" data_type: TYPE_FP32 dims: [ 2 ] } ]
    output [ { name: "y" data_type: TYPE_FP32 dims: [ 2 ] } ])"));
  ASSERT_NE(model, nullptr);
  std::vector<float> x{1, 2};
  InferRequest request;
  request.inputs.push_back(View("x", DataType::kFp32, {2}, x));
  auto r = Execute(*model, request);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(
                "output 'y': configuration expects datatype TYPE_FP32, model provides TYPE_FP64"),
            std::string::npos)
      << r.status().message();
}

TEST(TorchBackendTest, ScalarOutputIsRefused) {
  TempDir dir;
  auto module = MakeModule(R"(
def forward(self, x: Tensor) -> Tensor:
    return x.sum()
)");
  auto model = MustLoad(SaveModel(dir, "scalar", module, R"(
    input [ { name: "x" data_type: TYPE_FP32 dims: [ 2 ] } ]
    output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ])"));
  ASSERT_NE(model, nullptr);
  std::vector<float> x{1, 2};
  InferRequest request;
  request.inputs.push_back(View("x", DataType::kFp32, {2}, x));
  auto r = Execute(*model, request);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("output 'y' is a scalar"), std::string::npos)
      << r.status().message();
}

// ------------------------------------------------------------ views and copies

TEST(TorchBackendTest, OutputAliasingTheInputIsCopied) {
  TempDir dir;
  auto module = MakeModule(R"(
def forward(self, x: Tensor) -> Tensor:
    return x
)");
  auto model = MustLoad(SaveModel(dir, "alias", module, R"(
    input [ { name: "x" data_type: TYPE_FP32 dims: [ 3 ] } ]
    output [ { name: "y" data_type: TYPE_FP32 dims: [ 3 ] } ])"));
  ASSERT_NE(model, nullptr);
  std::vector<float> x{1, 2, 3};
  InferRequest request;
  request.inputs.push_back(View("x", DataType::kFp32, {3}, x));
  InferResponse r = MustRun(*model, request);
  ASSERT_EQ(r.outputs.size(), 1u);
  const auto* out = reinterpret_cast<const float*>(r.outputs[0].data.data());
  EXPECT_TRUE(out + 3 <= x.data() || x.data() + 3 <= out) << "the output points into the input";
  EXPECT_NE(r.outputs[0].owner, nullptr);
  x.assign({7, 7, 7});
  EXPECT_EQ(Values<float>(r.outputs[0]), (std::vector<float>{1, 2, 3}));
}

TEST(TorchBackendTest, MisalignedInputAndInputWritingModel) {
  TempDir dir;
  auto module = MakeModule(R"(
def forward(self, x: Tensor) -> Tensor:
    x.mul_(2)
    return x + 1
)");
  auto model = MustLoad(SaveModel(dir, "writer", module, R"(
    input [ { name: "x" data_type: TYPE_FP32 dims: [ 2 ] } ]
    output [ { name: "y" data_type: TYPE_FP32 dims: [ 2 ] } ])"));
  ASSERT_NE(model, nullptr);
  // The floats at an odd address.
  std::vector<std::byte> bytes(1 + 2 * sizeof(float));
  const float values[2] = {1, 2};
  std::memcpy(bytes.data() + 1, values, sizeof(values));
  Tensor x;
  x.name = "x";
  x.dtype = DataType::kFp32;
  x.shape = {2};
  x.data = {bytes.data() + 1, 2 * sizeof(float)};
  InferRequest request;
  request.inputs.push_back(x);
  InferResponse r = MustRun(*model, request);
  ASSERT_EQ(r.outputs.size(), 1u);
  EXPECT_EQ(Values<float>(r.outputs[0]), (std::vector<float>{3, 5}));
  float after[2];
  std::memcpy(after, bytes.data() + 1, sizeof(after));
  EXPECT_EQ(after[0], 1);  // the request's bytes are never written
  EXPECT_EQ(after[1], 2);

  // An aligned input of the writing model is not written either.
  std::vector<float> aligned{1, 2};
  InferRequest request2;
  request2.inputs.push_back(View("x", DataType::kFp32, {2}, aligned));
  InferResponse r2 = MustRun(*model, request2);
  EXPECT_EQ(Values<float>(r2.outputs[0]), (std::vector<float>{3, 5}));
  EXPECT_EQ(aligned, (std::vector<float>{1, 2}));
}

// ------------------------------------------------------------ batching

const char* kRowwise = R"(
def forward(self, x: Tensor) -> Tensor:
    return torch.tanh(x * self.w + 0.5) * 3.0
)";

TEST(TorchBackendTest, BatchOfThreeEqualsThreeSinglesBitExactly) {
  TempDir dir;
  torch::jit::Module module("m");
  module.register_parameter("w", torch::linspace(-1.7, 2.3, 5), false);
  module.define(kRowwise);
  auto model = MustLoad(SaveModel(dir, "rows", module, R"(
    max_batch_size: 8
    input [ { name: "x" data_type: TYPE_FP32 dims: [ 5 ] } ]
    output [ { name: "y" data_type: TYPE_FP32 dims: [ 5 ] } ])"));
  ASSERT_NE(model, nullptr);
  EXPECT_TRUE(model->inline_safe);
  std::vector<float> batch(15);
  for (size_t i = 0; i < batch.size(); ++i) batch[i] = 0.37f * static_cast<float>(i) - 2.1f;
  InferRequest request;
  request.inputs.push_back(View("x", DataType::kFp32, {3, 5}, batch));
  InferResponse batched = MustRun(*model, request);
  ASSERT_EQ(batched.outputs.size(), 1u);
  EXPECT_EQ(batched.outputs[0].shape, (Shape{3, 5}));
  for (int row = 0; row < 3; ++row) {
    std::vector<float> single(batch.begin() + row * 5, batch.begin() + row * 5 + 5);
    InferRequest one;
    one.inputs.push_back(View("x", DataType::kFp32, {1, 5}, single));
    InferResponse r = MustRun(*model, one);
    ASSERT_EQ(r.outputs.size(), 1u);
    EXPECT_EQ(
        std::memcmp(r.outputs[0].data.data(),
                    batched.outputs[0].data.data() + row * 5 * sizeof(float), 5 * sizeof(float)),
        0)
        << "row " << row;
  }
}

TEST(TorchBackendTest, BatchedOutputWithoutTheBatchDimensionIsClear) {
  TempDir dir;
  auto module = MakeModule(R"(
def forward(self, x: Tensor) -> Tensor:
    return x.sum(0, keepdim=True)
)");
  auto model = MustLoad(SaveModel(dir, "sum0", module, R"(
    max_batch_size: 8
    input [ { name: "x" data_type: TYPE_FP32 dims: [ 2 ] } ]
    output [ { name: "y" data_type: TYPE_FP32 dims: [ 2 ] } ])"));
  ASSERT_NE(model, nullptr);
  std::vector<float> x{1, 2, 3, 4, 5, 6};
  InferRequest request;
  request.inputs.push_back(View("x", DataType::kFp32, {3, 2}, x));
  auto r = Execute(*model, request);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("its first dimension must be the batch size, 3"),
            std::string::npos)
      << r.status().message();
}

// ------------------------------------------------------------ errors

TEST(TorchBackendTest, RaisingModuleFailsThatRequestOnly) {
  TempDir dir;
  auto module = MakeModule(R"(
def forward(self, x: Tensor) -> Tensor:
    assert bool(x.sum() < 100.0), "the sum is too big"
    return x * 2
)");
  auto model = MustLoad(SaveModel(dir, "raiser", module, R"(
    input [ { name: "x" data_type: TYPE_FP32 dims: [ 2 ] } ]
    output [ { name: "y" data_type: TYPE_FP32 dims: [ 2 ] } ])"));
  ASSERT_NE(model, nullptr);
  std::vector<float> big{100, 200}, small{1, 2};
  InferRequest bad;
  bad.inputs.push_back(View("x", DataType::kFp32, {2}, big));
  auto r = Execute(*model, bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
  EXPECT_EQ(r.status().message().rfind("model 'raiser': PyTorch execute failure: ", 0), 0u)
      << r.status().message();
  // What was raised comes first, before the TorchScript traceback.
  EXPECT_EQ(r.status().message().find("model 'raiser': PyTorch execute failure: "
                                      "RuntimeError: AssertionError: the sum is too big\n"),
            0u)
      << r.status().message();
  EXPECT_LE(r.status().message().size(), kMaxTorchErrorBytes + 200);
  InferRequest good;
  good.inputs.push_back(View("x", DataType::kFp32, {2}, small));
  InferResponse ok = MustRun(*model, good);
  ASSERT_EQ(ok.outputs.size(), 1u);
  EXPECT_EQ(Values<float>(ok.outputs[0]), (std::vector<float>{2, 4}));
}

TEST(TorchBackendTest, MissingConfigShowsForward) {
  TempDir dir;
  auto module = MakeModule(R"(
def forward(self, x: Tensor) -> Tensor:
    return x
)");
  ExpectLoadError(SaveModel(dir, "noconfig", module, nullptr), StatusCode::kInvalidArgument,
                  "model 'noconfig' version 1 has no config.pbtxt; a TorchScript module carries "
                  "no shapes, so its config must list every input and output (name, data_type, "
                  "dims) for forward(Tensor x) -> Tensor");
}

TEST(TorchBackendTest, InputCountMismatchShowsForward) {
  TempDir dir;
  auto module = MakeModule(R"(
def forward(self, x: Tensor) -> Tensor:
    return x
)");
  ExpectLoadError(SaveModel(dir, "count", module, TwoInputs("x", "y").c_str()),
                  StatusCode::kInvalidArgument,
                  "model 'count' version 1: configuration expects 2 inputs, model provides 1: "
                  "forward(Tensor x) -> Tensor");
}

TEST(TorchBackendTest, CorruptFileNamesFileAndReason) {
  TempDir dir;
  auto module = MakeModule(kSubtract);
  LoadSpec spec = SaveModel(dir, "corrupt", module, TwoInputs("a", "b").c_str());
  {
    std::ofstream out(spec.version_dir / "model.pt", std::ios::binary | std::ios::trunc);
    out << "this is not a zip archive at all";
  }
  ExpectLoadError(spec, StatusCode::kInvalidArgument, "PytorchStreamReader failed");
  ExpectLoadError(
      spec, StatusCode::kInvalidArgument,
      "model 'corrupt' version 1: cannot load '" + (spec.version_dir / "model.pt").string() + "'");
}

TEST(TorchBackendTest, FileFromANewerPyTorchSaysSo) {
  TempDir dir;
  auto module = MakeModule(kSubtract);
  LoadSpec spec = SaveModel(dir, "newer", module, TwoInputs("a", "b").c_str());
  {
    // An archive whose format version is 99, as a far newer PyTorch would write.
    caffe2::serialize::PyTorchStreamWriter writer((spec.version_dir / "model.pt").string());
    writer.setMinVersion(99);
    const std::string data = "x";
    writer.writeRecord("data.pkl", data.data(), data.size());
    writer.writeEndOfFile();
  }
  ExpectLoadError(spec, StatusCode::kInvalidArgument,
                  "Attempted to read a PyTorch file with version 99");
  ExpectLoadError(spec, StatusCode::kInvalidArgument,
                  "the file comes from a newer PyTorch than this server's libtorch 2.15.0");
}

TEST(TorchBackendTest, ModuleReadingAServerFileIsRefused) {
  TempDir dir;
  // Not reached by forward, but in the archive: refused all the same.
  auto module = MakeModule(R"(
def steal(self, x: Tensor) -> Tensor:
    return torch.zeros_like(x)

def forward(self, x: Tensor) -> Tensor:
    return x
)");
  LoadSpec spec = SaveModel(dir, "thief", module, R"(
    input [ { name: "x" data_type: TYPE_FP32 dims: [ 2 ] } ]
    output [ { name: "y" data_type: TYPE_FP32 dims: [ 2 ] } ])");
  RewriteCode(spec.version_dir / "model.pt", "torch.zeros_like(x)",
              "torch.from_file(\"/etc/passwd\", False, 4)");
  ExpectLoadError(spec, StatusCode::kInvalidArgument,
                  "calls aten::from_file, which reads a file of the server's");
  ExpectLoadError(spec, StatusCode::kInvalidArgument, "reach outside the model");
}

TEST(TorchBackendTest, ModuleWritingAFileAtLoadIsRefusedBeforeItRuns) {
  TempDir dir;
  const fs::path written = dir.path() / "written_at_load";
  // __setstate__ runs inside torch::jit::load; `(torch).save` and a line
  // break inside the call are spellings no search of the code would catch.
  torch::jit::Module module("m");
  module.register_buffer("t", torch::zeros({1}));
  module.define(R"(
def __getstate__(self) -> Tensor:
    return self.t

def __setstate__(self, state: Tensor) -> None:
    print(torch.add(state, 1))
    self.t = state

def forward(self, x: Tensor) -> Tensor:
    return x
)");
  for (const std::string spelling :
       {"torch.save(state, \"", "(torch).save(\n    state, \"", "torch .save(state, \""}) {
    LoadSpec spec = SaveModel(dir, "writer", module, R"(
    input [ { name: "x" data_type: TYPE_FP32 dims: [ 2 ] } ]
    output [ { name: "y" data_type: TYPE_FP32 dims: [ 2 ] } ])");
    RewriteCode(spec.version_dir / "model.pt", "torch.add(state, 1)",
                spelling + written.string() + "\")");
    ExpectLoadError(spec, StatusCode::kInvalidArgument,
                    "calls aten::save, which writes a file on the server");
    EXPECT_FALSE(fs::exists(written)) << spelling;
  }
}

TEST(TorchBackendTest, TheOperatorsThatReachOutsideAreGoneFromLibtorch) {
  ASSERT_TRUE(TorchBackend::Create({}).ok());  // removes them, once per process
  for (const char* name : {"aten::save", "aten::from_file", "c10d::broadcast_"}) {
    EXPECT_TRUE(torch::jit::getAllOperatorsFor(c10::Symbol::fromQualString(name)).empty()) << name;
  }
  EXPECT_FALSE(torch::jit::getAllOperatorsFor(c10::Symbol::fromQualString("aten::add")).empty());
  EXPECT_EQ(RemoveOutsideReachingOperators(), 0);  // nothing left to remove
  EXPECT_EQ(OutsideReach("aten::save"), "writes a file on the server");
  EXPECT_EQ(OutsideReach("symm_mem::rendezvous"), "talks to other processes");
  EXPECT_FALSE(OutsideReach("aten::saved"));
  EXPECT_FALSE(OutsideReach("aten::add"));
  EXPECT_EQ(RemovedOperatorIn("\nUnknown builtin op: aten::from_file.\nCould not find"),
            "aten::from_file");
  EXPECT_FALSE(RemovedOperatorIn("Unknown builtin op: aten::frobnicate."));
  EXPECT_FALSE(RemovedOperatorIn("PytorchStreamReader failed"));
}

TEST(TorchBackendTest, MissingFileAndEscapingFilename) {
  TempDir dir;
  auto module = MakeModule(kSubtract);
  LoadSpec spec = SaveModel(dir, "missing", module, TwoInputs("a", "b").c_str());
  spec.config.set_default_model_filename("other.pt");
  ExpectLoadError(spec, StatusCode::kNotFound, "other.pt");
  spec.config.set_default_model_filename("../../x.pt");
  ExpectLoadError(spec, StatusCode::kInvalidArgument, "must name a file inside");
}

TEST(TorchBackendTest, KindGpuRefusedWithoutCuda) {
  if (CudaDeviceCount().ok()) GTEST_SKIP() << "this machine has CUDA";
  TempDir dir;
  auto module = MakeModule(kSubtract);
  std::string config =
      TwoInputs("a", "b") + "\ninstance_group [ { name: \"g\" kind: KIND_GPU count: 1 } ]";
  ExpectLoadError(SaveModel(dir, "gpu", module, config.c_str()), StatusCode::kUnavailable,
                  "instance_group 'g' asks for KIND_GPU, but ");
  ExpectLoadError(SaveModel(dir, "gpu", module, config.c_str()), StatusCode::kUnavailable,
                  "; use KIND_CPU");
}

TEST(TorchBackendTest, BadParameterFailsTheLoad) {
  TempDir dir;
  auto module = MakeModule(kSubtract);
  std::string config = TwoInputs("a", "b") +
                       "\nparameters: { key: \"ENABLE_WEIGHT_SHARING\" value: { string_value: "
                       "\"yes please\" } }";
  ExpectLoadError(SaveModel(dir, "param", module, config.c_str()), StatusCode::kInvalidArgument,
                  "model 'param' version 1: parameter 'ENABLE_WEIGHT_SHARING' must be a boolean "
                  "(true/on/1 or false/off/0), got 'yes please'");
}

TEST(TorchBackendTest, UnknownSettingIsRefused) {
  auto backend = TorchBackend::Create({{"color", "blue"}});
  ASSERT_FALSE(backend.ok());
  EXPECT_NE(backend.status().message().find("'color'"), std::string::npos);
}

// ------------------------------------------------------------ config and instances

TEST(TorchBackendTest, CompletesConfigAndMakesInstances) {
  TempDir dir;
  auto module = MakeModule(kSubtract);
  std::string config = TwoInputs("a", "b") + R"(
    instance_group [ { count: 2 kind: KIND_CPU } ]
    parameters: { key: "ENABLE_WEIGHT_SHARING" value: { string_value: "true" } }
    parameters: { key: "INFERENCE_MODE" value: { string_value: "false" } }
    parameters: { key: "DISABLE_OPTIMIZED_EXECUTION" value: { string_value: "true" } }
    parameters: { key: "INTRA_OP_THREAD_COUNT" value: { string_value: "2" } }
    parameters: { key: "SOMETHING_ELSE" value: { string_value: "1" } })";
  auto model = MustLoad(SaveModel(dir, "complete", module, config.c_str()));
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->config.platform(), "pytorch_libtorch");
  EXPECT_EQ(model->config.backend(), "pytorch");
  EXPECT_EQ(model->config.input(0).name(), "a");
  EXPECT_TRUE(model->inline_safe);
  ASSERT_EQ(model->instances.size(), 2u);
  std::vector<float> a{10, 20}, b{1, 2};
  InferRequest request;
  request.inputs.push_back(View("a", DataType::kFp32, {2}, a));
  request.inputs.push_back(View("b", DataType::kFp32, {2}, b));
  for (auto& instance : model->instances) {
    InferResponse response;
    ASSERT_TRUE(instance->Execute(request, response).ok());
    EXPECT_EQ(Values<float>(response.outputs.at(0)), (std::vector<float>{9, 18}));
  }
}

TEST(TorchBackendTest, InstancesSharingAModuleRunConcurrently) {
  TempDir dir;
  torch::jit::Module module("m");
  module.register_parameter("w", torch::linspace(-1.7, 2.3, 64), false);
  module.define(R"(
def forward(self, x: Tensor) -> Tensor:
    return torch.tanh(x * self.w).sum(1, keepdim=True)
)");
  auto model = MustLoad(SaveModel(dir, "shared", module, R"(
    max_batch_size: 4
    input [ { name: "x" data_type: TYPE_FP32 dims: [ 64 ] } ]
    output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]
    instance_group [ { count: 3 kind: KIND_CPU } ]
    parameters: { key: "ENABLE_WEIGHT_SHARING" value: { string_value: "true" } })"));
  ASSERT_NE(model, nullptr);
  ASSERT_EQ(model->instances.size(), 3u);
  std::vector<float> x(64, 0.25f);
  InferRequest request;
  request.inputs.push_back(View("x", DataType::kFp32, {1, 64}, x));
  const std::vector<float> expected = Values<float>(MustRun(*model, request).outputs.at(0));
  std::vector<int> mismatches(3, 0);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        InferResponse response;
        Status status = model->instances[t]->Execute(request, response);
        if (!status.ok() || response.outputs.size() != 1 ||
            Values<float>(response.outputs[0]) != expected) {
          ++mismatches[t];
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches, (std::vector<int>{0, 0, 0}));
}

}  // namespace
}  // namespace mm
