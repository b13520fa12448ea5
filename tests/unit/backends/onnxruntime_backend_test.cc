#include "backends/onnxruntime/onnxruntime_backend.h"

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "backends/auto_complete.h"
#include "core/bytes_tensor.h"
#include "source_dir.h"

namespace mm {
namespace {

namespace fs = std::filesystem;

const fs::path kExamples = fs::path(MMSERVE_SOURCE_DIR) / "examples" / "models";
const fs::path kTestdata = fs::path(MMSERVE_SOURCE_DIR) / "tests" / "unit" / "testdata";

std::unique_ptr<Backend> MakeBackend() {
  auto backend = OnnxRuntimeBackend::Create({});
  EXPECT_TRUE(backend.ok()) << backend.status().ToString();
  return std::move(backend).value();
}

inference::ModelConfig ParseConfig(const std::string& text) {
  inference::ModelConfig config;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &config)) << text;
  return config;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A spec for examples/models/<name>, with its config.pbtxt when it has one.
LoadSpec ExampleSpec(const std::string& name) {
  LoadSpec spec;
  spec.model_name = name;
  spec.version = 1;
  spec.model_dir = kExamples / name;
  spec.version_dir = spec.model_dir / "1";
  if (fs::exists(spec.model_dir / "config.pbtxt")) {
    spec.config = ParseConfig(ReadFile(spec.model_dir / "config.pbtxt"));
    spec.has_config = true;
  }
  spec.config.set_name(name);
  return spec;
}

// A spec for tests/unit/testdata/<file> with `config_text` as the user config.
LoadSpec TestdataSpec(const std::string& name, const std::string& file,
                      const std::string& config_text = "") {
  LoadSpec spec;
  spec.model_name = name;
  spec.version = 1;
  spec.model_dir = kTestdata;
  spec.version_dir = kTestdata;
  spec.config = ParseConfig(config_text);
  spec.config.set_name(name);
  spec.config.set_default_model_filename(file);
  spec.has_config = !config_text.empty();
  return spec;
}

LoadSpec AddSubSpec(const std::string& config_text) {
  LoadSpec spec = ExampleSpec("add_sub");
  spec.config = ParseConfig(config_text);
  spec.config.set_name("add_sub");
  return spec;
}

template <typename T>
Tensor View(const std::string& name, DataType dtype, Shape shape, const std::vector<T>& values) {
  Tensor t;
  t.name = name;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.data = std::as_bytes(std::span<const T>(values));
  return t;
}

Tensor BytesView(const std::string& name, Shape shape, const std::string& serialized) {
  Tensor t;
  t.name = name;
  t.dtype = DataType::kBytes;
  t.shape = std::move(shape);
  t.data = std::as_bytes(std::span<const char>(serialized));
  return t;
}

std::string Serialize(const std::vector<std::string>& elements) {
  std::string out;
  for (const auto& e : elements) AppendBytesElement(e, out);
  return out;
}

std::vector<std::string> Deserialize(const Tensor& t) {
  int64_t count = 1;
  for (int64_t d : t.shape) count *= d;
  auto split = SplitBytesTensor(t.data, count, t.name);
  EXPECT_TRUE(split.ok()) << split.status().ToString();
  if (!split.ok()) return {};
  return {split->begin(), split->end()};
}

const Tensor* FindOutput(const InferResponse& response, const std::string& name) {
  for (const auto& t : response.outputs) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

StatusOr<std::unique_ptr<LoadedModel>> Load(const LoadSpec& spec) {
  return MakeBackend()->Load(spec);
}

std::unique_ptr<LoadedModel> MustLoad(const LoadSpec& spec) {
  auto model = Load(spec);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? std::move(model).value() : nullptr;
}

void ExpectLoadError(const LoadSpec& spec, StatusCode code, const std::string& needle) {
  auto model = Load(spec);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), code) << model.status().ToString();
  EXPECT_NE(model.status().message().find(needle), std::string::npos)
      << "'" << needle << "' not in: " << model.status().message();
}

// ------------------------------------------------------------ auto-complete

TEST(OnnxRuntimeBackendTest, AutoCompletesConfigFromModel) {
  LoadSpec spec = ExampleSpec("string_int");
  ASSERT_FALSE(spec.has_config);
  auto model = MustLoad(spec);
  ASSERT_NE(model, nullptr);
  const auto& c = model->config;
  EXPECT_EQ(c.name(), "string_int");
  EXPECT_EQ(c.platform(), "onnxruntime_onnx");
  EXPECT_EQ(c.backend(), "onnxruntime");
  EXPECT_EQ(c.max_batch_size(), 0);
  ASSERT_EQ(c.input_size(), 2);
  EXPECT_EQ(c.input(0).name(), "tokens");
  EXPECT_EQ(c.input(0).data_type(), inference::TYPE_INT64);
  EXPECT_EQ(Shape(c.input(0).dims().begin(), c.input(0).dims().end()), Shape{-1});
  EXPECT_EQ(c.input(1).name(), "text");
  EXPECT_EQ(c.input(1).data_type(), inference::TYPE_STRING);
  ASSERT_EQ(c.output_size(), 2);
  EXPECT_EQ(c.output(0).name(), "tokens_doubled");
  EXPECT_EQ(c.output(1).name(), "text_upper");
  EXPECT_EQ(c.output(1).data_type(), inference::TYPE_STRING);
  ASSERT_EQ(c.instance_group_size(), 1);
  EXPECT_EQ(c.instance_group(0).count(), 1);
  EXPECT_EQ(model->instances.size(), 1u);
}

TEST(OnnxRuntimeBackendTest, BatchingConfigWithoutTensorsExcludesBatchDim) {
  LoadSpec spec = ExampleSpec("mlp_classifier");
  spec.config.clear_input();
  spec.config.clear_output();
  auto model = MustLoad(spec);
  ASSERT_NE(model, nullptr);
  ASSERT_EQ(model->config.input_size(), 1);
  EXPECT_EQ(Shape(model->config.input(0).dims().begin(), model->config.input(0).dims().end()),
            Shape{16});
  ASSERT_EQ(model->config.output_size(), 1);
  EXPECT_EQ(Shape(model->config.output(0).dims().begin(), model->config.output(0).dims().end()),
            Shape{10});
}

TEST(OnnxRuntimeBackendTest, WildcardConfigDimIsTightenedToModel) {
  auto model = MustLoad(AddSubSpec(R"(
    input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] },
            { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]
    output [ { name: "OUTPUT1" data_type: TYPE_FP32 dims: [ -1 ] } ])"));
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->config.input(0).dims(0), 4);
  ASSERT_EQ(model->config.output_size(), 1);  // a subset of outputs is served
  EXPECT_EQ(model->config.output(0).dims(0), 4);
}

TEST(OnnxRuntimeBackendTest, RejectsDtypeMismatch) {
  ExpectLoadError(AddSubSpec(R"(
    input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 4 ] },
            { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ])"),
                  StatusCode::kInvalidArgument,
                  "model 'add_sub' input 'INPUT0': config says TYPE_INT32 but the ONNX model "
                  "has TYPE_FP32");
}

TEST(OnnxRuntimeBackendTest, RejectsRankMismatch) {
  ExpectLoadError(AddSubSpec(R"(
    input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4, 1 ] },
            { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ])"),
                  StatusCode::kInvalidArgument, "input 'INPUT0': config dims [4,1] have rank 2");
}

TEST(OnnxRuntimeBackendTest, RejectsRankMismatchCountingBatchDim) {
  LoadSpec spec = ExampleSpec("mlp_classifier");
  spec.config.mutable_input(0)->add_dims(1);  // [16, 1] + batch = rank 3; model has 2
  ExpectLoadError(spec, StatusCode::kInvalidArgument, "(batch dim excluded) has rank 1");
}

TEST(OnnxRuntimeBackendTest, RejectsFixedDimMismatch) {
  ExpectLoadError(AddSubSpec(R"(
    input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 5 ] },
            { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ])"),
                  StatusCode::kInvalidArgument, "disagree with the ONNX model's shape [4]");
}

TEST(OnnxRuntimeBackendTest, RejectsUnknownTensorListingModelTensors) {
  ExpectLoadError(AddSubSpec(R"(
    input [ { name: "nope" data_type: TYPE_FP32 dims: [ 4 ] } ])"),
                  StatusCode::kInvalidArgument,
                  "input 'nope': the config lists it but the ONNX model has no such input (it "
                  "has 'INPUT0', 'INPUT1')");
  ExpectLoadError(AddSubSpec(R"(
    output [ { name: "OUTPUT9" data_type: TYPE_FP32 dims: [ 4 ] } ])"),
                  StatusCode::kInvalidArgument, "'OUTPUT0', 'OUTPUT1'");
}

TEST(OnnxRuntimeBackendTest, RejectsConfigMissingARequiredInput) {
  ExpectLoadError(AddSubSpec(R"(
    input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ])"),
                  StatusCode::kInvalidArgument,
                  "input 'INPUT1': the ONNX model requires it but the config does not list it");
}

TEST(OnnxRuntimeBackendTest, RejectsBatchingWhenFirstDimIsFixed) {
  ExpectLoadError(TestdataSpec("fixed", "fixed_batch.onnx", "max_batch_size: 4"),
                  StatusCode::kInvalidArgument, "first dim must be dynamic");
  auto model = MustLoad(TestdataSpec("fixed", "fixed_batch.onnx"));
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->config.input(0).dims_size(), 2);
}

TEST(OnnxRuntimeBackendTest, RejectsUnsupportedElementType) {
  ExpectLoadError(TestdataSpec("fp8", "unsupported_type.onnx"), StatusCode::kInvalidArgument,
                  "model 'fp8' input 'x' has ONNX type FLOAT8E4M3FN");
}

// ------------------------------------------------------------ load errors

TEST(OnnxRuntimeBackendTest, MissingModelFileIsNotFound) {
  LoadSpec spec = ExampleSpec("add_sub");
  spec.version_dir = spec.model_dir / "7";
  ExpectLoadError(spec, StatusCode::kNotFound, (spec.version_dir / "model.onnx").string());
  spec = ExampleSpec("add_sub");
  spec.config.set_default_model_filename("../../add_sub/1/model.onnx");
  ExpectLoadError(spec, StatusCode::kInvalidArgument, "must name a file inside the version");
}

TEST(OnnxRuntimeBackendTest, GarbageModelFileIsInvalidArgument) {
  fs::path dir = fs::temp_directory_path() / ("mmserve_ort_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "model.onnx") << "this is not an onnx model \x01\x02\xff";
  LoadSpec spec;
  spec.model_name = "garbage";
  spec.version = 3;
  spec.model_dir = dir;
  spec.version_dir = dir;
  ExpectLoadError(spec, StatusCode::kInvalidArgument,
                  "model 'garbage' version 3: cannot load '" + (dir / "model.onnx").string() +
                      "': onnxruntime: ");
  fs::remove_all(dir);
}

TEST(OnnxRuntimeBackendTest, InstanceGroupsAndParameters) {
  LoadSpec spec = ExampleSpec("add_sub");
  spec.config.add_instance_group()->set_count(2);
  spec.config.add_instance_group()->set_count(0);  // 0 means 1
  (*spec.config.mutable_parameters())["intra_op_thread_count"].set_string_value("2");
  (*spec.config.mutable_parameters())["graph_optimization_level"].set_string_value("basic");
  auto model = MustLoad(spec);
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->instances.size(), 3u);

  (*spec.config.mutable_parameters())["intra_op_thread_count"].set_string_value("two");
  ExpectLoadError(spec, StatusCode::kInvalidArgument,
                  "parameter 'intra_op_thread_count' must be an integer in [0, 1024], got 'two'");
  (*spec.config.mutable_parameters())["intra_op_thread_count"].set_string_value("1");
  (*spec.config.mutable_parameters())["graph_optimization_level"].set_string_value("max");
  ExpectLoadError(spec, StatusCode::kInvalidArgument, "'graph_optimization_level'");

  spec.config.clear_parameters();
  spec.config.mutable_instance_group(0)->set_kind(inference::ModelInstanceGroup::KIND_GPU);
  ExpectLoadError(spec, StatusCode::kInvalidArgument, "KIND_GPU");
}

// ------------------------------------------------------------ execution

TEST(OnnxRuntimeBackendTest, AddSubComputesBothOutputs) {
  auto model = MustLoad(ExampleSpec("add_sub"));
  ASSERT_NE(model, nullptr);
  std::vector<float> a = {1, 2, 3, 4}, b = {0.5f, -1, 10, 4};
  InferRequest request;
  request.inputs.push_back(View("INPUT0", DataType::kFp32, {4}, a));
  request.inputs.push_back(View("INPUT1", DataType::kFp32, {4}, b));
  InferResponse response;
  ASSERT_TRUE(model->instances[0]->Execute(request, response).ok());
  ASSERT_EQ(response.outputs.size(), 2u);
  const Tensor* sum = FindOutput(response, "OUTPUT0");
  const Tensor* diff = FindOutput(response, "OUTPUT1");
  ASSERT_TRUE(sum && diff);
  EXPECT_EQ(sum->dtype, DataType::kFp32);
  EXPECT_EQ(sum->shape, Shape{4});
  EXPECT_NE(sum->owner, nullptr);
  ASSERT_EQ(sum->data.size(), 16u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_FLOAT_EQ(sum->as<float>()[i], a[i] + b[i]);
    EXPECT_FLOAT_EQ(diff->as<float>()[i], a[i] - b[i]);
  }
}

TEST(OnnxRuntimeBackendTest, RunsOnlyRequestedOutputs) {
  auto model = MustLoad(ExampleSpec("add_sub"));
  ASSERT_NE(model, nullptr);
  std::vector<float> a = {1, 2, 3, 4}, b = {1, 1, 1, 1};
  InferRequest request;
  request.inputs.push_back(View("INPUT0", DataType::kFp32, {4}, a));
  request.inputs.push_back(View("INPUT1", DataType::kFp32, {4}, b));
  request.outputs.push_back({"OUTPUT1", {}});
  InferResponse response;
  ASSERT_TRUE(model->instances[0]->Execute(request, response).ok());
  ASSERT_EQ(response.outputs.size(), 1u);
  EXPECT_EQ(response.outputs[0].name, "OUTPUT1");
  EXPECT_FLOAT_EQ(response.outputs[0].as<float>()[3], 3.0f);

  request.outputs = {{"OUTPUT7", {}}};
  InferResponse bad;
  Status status = model->instances[0]->Execute(request, bad);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("'OUTPUT7'"), std::string::npos);
}

TEST(OnnxRuntimeBackendTest, UnalignedInputIsCopiedAndStillCorrect) {
  auto model = MustLoad(ExampleSpec("add_sub"));
  ASSERT_NE(model, nullptr);
  const float a[4] = {1.5f, 2.5f, 3.5f, 4.5f};
  const float b[4] = {1, 1, 1, 1};
  alignas(8) std::byte storage[2 * sizeof(a) + 1];
  std::memcpy(storage + 1, a, sizeof(a));  // misaligned by one byte
  std::memcpy(storage + 1 + sizeof(a), b, sizeof(b));
  InferRequest request;
  Tensor in0{"INPUT0", DataType::kFp32, {4}, {storage + 1, sizeof(a)}, nullptr, {}};
  Tensor in1{"INPUT1", DataType::kFp32, {4}, {storage + 1 + sizeof(a), sizeof(b)}, nullptr, {}};
  ASSERT_NE(reinterpret_cast<uintptr_t>(in0.data.data()) % alignof(float), 0u);
  request.inputs = {in0, in1};
  InferResponse response;
  ASSERT_TRUE(model->instances[0]->Execute(request, response).ok());
  const Tensor* sum = FindOutput(response, "OUTPUT0");
  ASSERT_NE(sum, nullptr);
  for (size_t i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(sum->as<float>()[i], a[i] + b[i]);
}

TEST(OnnxRuntimeBackendTest, BadInputShapeIsAnErrorNotACrash) {
  auto model = MustLoad(ExampleSpec("add_sub"));
  ASSERT_NE(model, nullptr);
  std::vector<float> a = {1, 2, 3}, b = {1, 2, 3};
  InferRequest request;
  request.inputs.push_back(View("INPUT0", DataType::kFp32, {3}, a));
  request.inputs.push_back(View("INPUT1", DataType::kFp32, {3}, b));
  InferResponse response;
  Status status = model->instances[0]->Execute(request, response);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
  EXPECT_NE(status.message().find("model 'add_sub': onnxruntime: "), std::string::npos);
}

TEST(OnnxRuntimeBackendTest, MlpBatchOfThreeRowsSumToOne) {
  auto model = MustLoad(ExampleSpec("mlp_classifier"));
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->config.max_batch_size(), 64);
  std::vector<float> input(3 * 16);
  for (size_t i = 0; i < input.size(); ++i) input[i] = std::sin(static_cast<float>(i));
  InferRequest request;
  request.inputs.push_back(View("input", DataType::kFp32, {3, 16}, input));
  InferResponse response;
  ASSERT_TRUE(model->instances[0]->Execute(request, response).ok());
  ASSERT_EQ(response.outputs.size(), 1u);
  const Tensor& probs = response.outputs[0];
  EXPECT_EQ(probs.name, "probabilities");
  ASSERT_EQ(probs.shape, (Shape{3, 10}));
  auto values = probs.as<float>();
  ASSERT_EQ(values.size(), 30u);
  for (size_t row = 0; row < 3; ++row) {
    float sum = std::accumulate(values.begin() + row * 10, values.begin() + row * 10 + 10, 0.0f);
    EXPECT_NEAR(sum, 1.0f, 1e-5f) << "row " << row;
  }
}

TEST(OnnxRuntimeBackendTest, ImageCnnProducesLogits) {
  auto model = MustLoad(ExampleSpec("image_cnn"));
  ASSERT_NE(model, nullptr);
  std::vector<float> image(2 * 3 * 64 * 64);
  for (size_t i = 0; i < image.size(); ++i) image[i] = static_cast<float>(i % 255) / 255.0f;
  InferRequest request;
  request.inputs.push_back(View("image", DataType::kFp32, {2, 3, 64, 64}, image));
  InferResponse response;
  ASSERT_TRUE(model->instances[0]->Execute(request, response).ok());
  ASSERT_EQ(response.outputs.size(), 1u);
  EXPECT_EQ(response.outputs[0].shape, (Shape{2, 10}));
  for (float v : response.outputs[0].as<float>()) EXPECT_TRUE(std::isfinite(v));
}

TEST(OnnxRuntimeBackendTest, Int64AndBytesRoundTrip) {
  auto model = MustLoad(ExampleSpec("string_int"));
  ASSERT_NE(model, nullptr);
  std::vector<int64_t> tokens = {1, -2, int64_t{1} << 40};
  std::string text = Serialize({"hello", "", "MiXeD case 42"});
  InferRequest request;
  request.inputs.push_back(View("tokens", DataType::kInt64, {3}, tokens));
  request.inputs.push_back(BytesView("text", {3}, text));
  InferResponse response;
  Status status = model->instances[0]->Execute(request, response);
  ASSERT_TRUE(status.ok()) << status.ToString();
  const Tensor* doubled = FindOutput(response, "tokens_doubled");
  const Tensor* upper = FindOutput(response, "text_upper");
  ASSERT_TRUE(doubled && upper);
  EXPECT_EQ(doubled->dtype, DataType::kInt64);
  EXPECT_EQ(std::vector<int64_t>(doubled->as<int64_t>().begin(), doubled->as<int64_t>().end()),
            (std::vector<int64_t>{2, -4, int64_t{1} << 41}));
  EXPECT_EQ(upper->dtype, DataType::kBytes);
  EXPECT_EQ(upper->shape, Shape{3});
  EXPECT_EQ(Deserialize(*upper), (std::vector<std::string>{"HELLO", "", "MIXED CASE 42"}));
}

TEST(OnnxRuntimeBackendTest, MalformedBytesInputIsInvalidArgument) {
  auto model = MustLoad(ExampleSpec("string_int"));
  ASSERT_NE(model, nullptr);
  std::vector<int64_t> tokens = {1};
  std::string text = Serialize({"a"}).substr(0, 3);  // truncated length prefix
  InferRequest request;
  request.inputs.push_back(View("tokens", DataType::kInt64, {1}, tokens));
  request.inputs.push_back(BytesView("text", {1}, text));
  InferResponse response;
  EXPECT_EQ(model->instances[0]->Execute(request, response).code(), StatusCode::kInvalidArgument);
}

// Every KServe data type ONNX has, through an Identity each.
TEST(OnnxRuntimeBackendTest, AllDataTypesRoundTrip) {
  auto model = MustLoad(TestdataSpec("identity_all_types", "identity_all_types.onnx"));
  ASSERT_NE(model, nullptr);
  struct Case {
    std::string suffix;
    DataType dtype;
  };
  const std::vector<Case> cases = {
      {"bool", DataType::kBool},     {"uint8", DataType::kUint8},   {"uint16", DataType::kUint16},
      {"uint32", DataType::kUint32}, {"uint64", DataType::kUint64}, {"int8", DataType::kInt8},
      {"int16", DataType::kInt16},   {"int32", DataType::kInt32},   {"int64", DataType::kInt64},
      {"fp16", DataType::kFp16},     {"fp32", DataType::kFp32},     {"fp64", DataType::kFp64},
      {"bf16", DataType::kBf16},
  };
  ASSERT_EQ(model->config.input_size(), static_cast<int>(cases.size()) + 1);
  constexpr int64_t kCount = 5;
  std::vector<std::vector<uint8_t>> storage;
  InferRequest request;
  for (const auto& c : cases) {
    std::vector<uint8_t> bytes(kCount * DataTypeSize(c.dtype));
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 7 + 3);
    if (c.dtype == DataType::kBool) {
      for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = i % 2;
    }
    storage.push_back(std::move(bytes));
    request.inputs.push_back(View("in_" + c.suffix, c.dtype, {kCount}, storage.back()));
  }
  std::string text = Serialize({"a", std::string("nul\0inside", 10), "", "\xff\xfe"});
  request.inputs.push_back(BytesView("in_bytes", {4}, text));

  InferResponse response;
  Status status = model->instances[0]->Execute(request, response);
  ASSERT_TRUE(status.ok()) << status.ToString();
  ASSERT_EQ(response.outputs.size(), cases.size() + 1);
  for (size_t k = 0; k < cases.size(); ++k) {
    const Tensor* out = FindOutput(response, "out_" + cases[k].suffix);
    ASSERT_NE(out, nullptr) << cases[k].suffix;
    EXPECT_EQ(out->dtype, cases[k].dtype) << cases[k].suffix;
    EXPECT_EQ(out->shape, Shape{kCount}) << cases[k].suffix;
    ASSERT_EQ(out->data.size(), storage[k].size()) << cases[k].suffix;
    EXPECT_EQ(std::memcmp(out->data.data(), storage[k].data(), storage[k].size()), 0)
        << cases[k].suffix;
  }
  const Tensor* out_bytes = FindOutput(response, "out_bytes");
  ASSERT_NE(out_bytes, nullptr);
  EXPECT_EQ(out_bytes->dtype, DataType::kBytes);
  EXPECT_EQ(
      std::string(reinterpret_cast<const char*>(out_bytes->data.data()), out_bytes->data.size()),
      text);
}

TEST(OnnxRuntimeBackendTest, EmptyTensorsRoundTrip) {
  auto model = MustLoad(TestdataSpec("identity_all_types", "identity_all_types.onnx"));
  ASSERT_NE(model, nullptr);
  InferRequest request;
  std::vector<float> none;
  request.inputs.push_back(View("in_fp32", DataType::kFp32, {0}, none));
  request.inputs.push_back(BytesView("in_bytes", {0}, ""));
  request.outputs = {{"out_fp32", {}}, {"out_bytes", {}}};
  // The other inputs are required by the graph; give each an empty tensor.
  for (const auto& input : model->config.input()) {
    if (input.name() == "in_fp32" || input.name() == "in_bytes") continue;
    request.inputs.push_back(
        Tensor{input.name(), static_cast<DataType>(input.data_type()), {0}, {}, nullptr, {}});
  }
  InferResponse response;
  Status status = model->instances[0]->Execute(request, response);
  ASSERT_TRUE(status.ok()) << status.ToString();
  ASSERT_EQ(response.outputs.size(), 2u);
  EXPECT_EQ(response.outputs[0].shape, Shape{0});
  EXPECT_EQ(response.outputs[0].data.size(), 0u);
  EXPECT_EQ(response.outputs[1].data.size(), 0u);
}

TEST(OnnxRuntimeBackendTest, OutputsOutliveTheModel) {
  InferResponse response;
  std::vector<float> input(16, 0.25f);
  {
    auto model = MustLoad(ExampleSpec("mlp_classifier"));
    ASSERT_NE(model, nullptr);
    InferRequest request;
    request.inputs.push_back(View("input", DataType::kFp32, {1, 16}, input));
    ASSERT_TRUE(model->instances[0]->Execute(request, response).ok());
  }  // model and backend gone; the output's owner keeps its memory alive
  auto values = response.outputs.at(0).as<float>();
  EXPECT_NEAR(std::accumulate(values.begin(), values.end(), 0.0f), 1.0f, 1e-5f);
}

// The outputs' shapes follow each request's batch (the graph names the
// batch dimension "batch" in its input and output, so the instance allocates
// them itself: ort_instance.h), and each run's outputs are its own: an
// earlier response is untouched by later runs on the same instance.
TEST(OnnxRuntimeBackendTest, OutputsFollowEachRequestsBatchAndStayTheirs) {
  auto model = MustLoad(ExampleSpec("mlp_classifier"));
  ASSERT_NE(model, nullptr);
  std::vector<InferResponse> responses(3);
  std::vector<std::vector<float>> copies;
  const std::vector<int64_t> batches = {3, 1, 5};
  for (size_t r = 0; r < batches.size(); ++r) {
    std::vector<float> input(static_cast<size_t>(batches[r]) * 16);
    for (size_t i = 0; i < input.size(); ++i) input[i] = std::cos(static_cast<float>(i + r));
    InferRequest request;
    request.inputs.push_back(View("input", DataType::kFp32, {batches[r], 16}, input));
    Status status = model->instances[0]->Execute(request, responses[r]);
    ASSERT_TRUE(status.ok()) << status.ToString();
    const Tensor& probs = responses[r].outputs.at(0);
    ASSERT_EQ(probs.shape, (Shape{batches[r], 10}));
    auto values = probs.as<float>();
    copies.emplace_back(values.begin(), values.end());
    for (int64_t row = 0; row < batches[r]; ++row) {
      EXPECT_NEAR(std::accumulate(values.begin() + row * 10, values.begin() + row * 10 + 10, 0.0f),
                  1.0f, 1e-5f);
    }
  }
  for (size_t r = 0; r < batches.size(); ++r) {
    auto values = responses[r].outputs.at(0).as<float>();
    EXPECT_TRUE(std::equal(values.begin(), values.end(), copies[r].begin(), copies[r].end()))
        << "response " << r << " changed after later runs";
  }
}

// y is declared [n] like its input, but the graph computes x twice over
// ([2n]): ONNX Runtime refuses an output allocated as declared, and the
// instance answers with what the graph computes, then and on later runs.
TEST(OnnxRuntimeBackendTest, MisdeclaredOutputShapeStillAnswersWhatTheGraphComputes) {
  auto model = MustLoad(TestdataSpec("misdeclared", "misdeclared_output.onnx"));
  ASSERT_NE(model, nullptr);
  for (const std::vector<float>& x : {std::vector<float>{1, 2, 3}, std::vector<float>{4, 5}}) {
    InferRequest request;
    request.inputs.push_back(View("x", DataType::kFp32, {static_cast<int64_t>(x.size())}, x));
    InferResponse response;
    Status status = model->instances[0]->Execute(request, response);
    ASSERT_TRUE(status.ok()) << status.ToString();
    const Tensor& y = response.outputs.at(0);
    ASSERT_EQ(y.shape, (Shape{static_cast<int64_t>(2 * x.size())}));
    std::vector<float> expected = x;
    expected.insert(expected.end(), x.begin(), x.end());
    auto values = y.as<float>();
    EXPECT_TRUE(std::equal(values.begin(), values.end(), expected.begin(), expected.end()));
  }
}

// Outputs over the instance's own allocation limit (1 MiB) come from ONNX
// Runtime, with the same answer.
TEST(OnnxRuntimeBackendTest, LargeOutputsRoundTrip) {
  auto model = MustLoad(TestdataSpec("identity_all_types", "identity_all_types.onnx"));
  ASSERT_NE(model, nullptr);
  for (const size_t count : {size_t{1000}, size_t{600000}}) {  // 4 KB, then 2.4 MB
    std::vector<float> x(count);
    std::iota(x.begin(), x.end(), 0.5f);
    InferRequest request;
    request.outputs = {{"out_fp32", {}}};
    for (const auto& input : model->config.input()) {
      if (input.name() == "in_fp32") {
        request.inputs.push_back(
            View("in_fp32", DataType::kFp32, {static_cast<int64_t>(count)}, x));
      } else if (input.name() == "in_bytes") {
        request.inputs.push_back(BytesView("in_bytes", {0}, ""));
      } else {
        request.inputs.push_back(
            Tensor{input.name(), static_cast<DataType>(input.data_type()), {0}, {}, nullptr, {}});
      }
    }
    InferResponse response;
    Status status = model->instances[0]->Execute(request, response);
    ASSERT_TRUE(status.ok()) << status.ToString();
    ASSERT_EQ(response.outputs.size(), 1u);
    EXPECT_EQ(response.outputs[0].shape, (Shape{static_cast<int64_t>(count)}));
    auto values = response.outputs[0].as<float>();
    EXPECT_TRUE(std::equal(values.begin(), values.end(), x.begin(), x.end())) << count;
  }
}

TEST(OnnxRuntimeBackendTest, InstancesRunConcurrently) {
  LoadSpec spec = ExampleSpec("mlp_classifier");
  spec.config.mutable_instance_group(0)->set_count(2);
  auto model = MustLoad(spec);
  ASSERT_NE(model, nullptr);
  ASSERT_EQ(model->instances.size(), 2u);
  std::vector<Status> results(2);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      std::vector<float> input(4 * 16, static_cast<float>(t));
      for (int i = 0; i < 20 && results[t].ok(); ++i) {
        InferRequest request;
        request.inputs.push_back(View("input", DataType::kFp32, {4, 16}, input));
        InferResponse response;
        results[t] = model->instances[t]->Execute(request, response);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_TRUE(results[0].ok()) << results[0].ToString();
  EXPECT_TRUE(results[1].ok()) << results[1].ToString();
}

// ------------------------------------------------------------ CompleteModelConfig

TEST(CompleteModelConfigTest, ScalarModelTensorCannotBatch) {
  ModelSignature signature{"ONNX model", {{"x", DataType::kFp32, {}}}, {}};
  inference::ModelConfig user;
  user.set_max_batch_size(2);
  auto complete = CompleteModelConfig("m", user, signature, "p", "b");
  ASSERT_FALSE(complete.ok());
  EXPECT_NE(complete.status().message().find("model 'm' input 'x' has shape []"), std::string::npos)
      << complete.status().message();
}

TEST(CompleteModelConfigTest, ReshapeIsComparedInsteadOfDims) {
  ModelSignature signature{"ONNX model", {{"x", DataType::kFp32, {-1, 2, 2}}}, {}};
  inference::ModelConfig user = ParseConfig(R"(
    max_batch_size: 8
    input [ { name: "x" data_type: TYPE_FP32 dims: [ 4 ] reshape: { shape: [ 2, 2 ] } } ])");
  auto complete = CompleteModelConfig("m", user, signature, "p", "b");
  ASSERT_TRUE(complete.ok()) << complete.status().ToString();
  EXPECT_EQ(complete->input(0).dims(0), 4);
  EXPECT_EQ(complete->platform(), "p");
  EXPECT_EQ(complete->backend(), "b");
}

}  // namespace
}  // namespace mm
