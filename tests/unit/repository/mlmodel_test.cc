// ParseMLmodel and MLmodelConfig (repository/mlflow/mlmodel.h) on MLmodel
// files written by mlflow 3.17.2 (tests/unit/testdata/mlflow/<model>/MLmodel)
// and on hostile ones; ScanModel's use of them for a local model folder
// without config.pbtxt (repository/repository.h).
#include "repository/mlflow/mlmodel.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "repository/repository.h"
#include "source_dir.h"

namespace mm {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

const fs::path kTestdata = fs::path(MMSERVE_SOURCE_DIR) / "tests" / "unit" / "testdata" / "mlflow";

// The MLmodel mlflow 3.17.2 wrote for `model`: "sk" (sklearn, a column-based
// signature), "tens" (sklearn, tensor-based) or "onnxm" (onnx).
std::string RealMLmodel(const std::string& model) {
  std::ifstream in(kTestdata / model / "MLmodel");
  std::ostringstream text;
  text << in.rdbuf();
  EXPECT_FALSE(text.str().empty()) << "missing testdata " << (kTestdata / model);
  return text.str();
}

// A python_function MLmodel whose signature is `inputs` and `outputs` (MLflow's
// JSON, without single quotes), as MLflow writes it.
std::string Pyfunc(const std::string& inputs, const std::string& outputs) {
  return "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"
         "signature:\n  inputs: '" +
         inputs + "'\n  outputs: '" + outputs + "'\n  params: null\n";
}

const char kTensorOut[] =
    R"([{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}])";

MLmodel Parsed(std::string_view text) {
  auto parsed = ParseMLmodel(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
  return parsed.ok() ? *parsed : MLmodel();
}

inference::ModelConfig Config(std::string_view text, std::string_view name = "m") {
  auto config = MLmodelConfig(Parsed(text), name);
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  return config.ok() ? *config : inference::ModelConfig();
}

void ExpectField(const MLmodelSignatureField& field, const std::string& name,
                 inference::DataType type, const std::vector<int64_t>& dims, bool optional) {
  EXPECT_EQ(field.name, name);
  EXPECT_EQ(inference::DataType_Name(field.type), inference::DataType_Name(type)) << name;
  EXPECT_EQ(field.dims, dims) << name;
  EXPECT_EQ(field.optional, optional) << name;
}

template <typename Tensor>
void ExpectTensor(const Tensor& tensor, const std::string& name, inference::DataType type,
                  const std::vector<int64_t>& dims) {
  EXPECT_EQ(tensor.name(), name);
  EXPECT_EQ(inference::DataType_Name(tensor.data_type()), inference::DataType_Name(type)) << name;
  EXPECT_EQ(std::vector<int64_t>(tensor.dims().begin(), tensor.dims().end()), dims) << name;
}

// --- The real MLmodels ---

TEST(MLmodelTest, ParsesSklearnWithAColumnSignature) {
  const MLmodel model = Parsed(RealMLmodel("sk"));
  EXPECT_THAT(model.flavors, ElementsAre("python_function", "sklearn"));
  EXPECT_TRUE(model.pyfunc);
  EXPECT_FALSE(model.onnx);
  EXPECT_TRUE(model.has_signature);
  EXPECT_TRUE(model.columns);
  ASSERT_THAT(model.inputs, SizeIs(2));
  ExpectField(model.inputs[0], "a", inference::TYPE_FP64, {-1}, false);
  ExpectField(model.inputs[1], "b", inference::TYPE_FP64, {-1}, false);
  ASSERT_THAT(model.outputs, SizeIs(1));
  ExpectField(model.outputs[0], "", inference::TYPE_INT64, {-1}, false);
}

TEST(MLmodelTest, ParsesSklearnWithATensorSignature) {
  const MLmodel model = Parsed(RealMLmodel("tens"));
  EXPECT_THAT(model.flavors, ElementsAre("python_function", "sklearn"));
  EXPECT_TRUE(model.pyfunc);
  EXPECT_FALSE(model.onnx);
  EXPECT_TRUE(model.has_signature);
  EXPECT_FALSE(model.columns);
  ASSERT_THAT(model.inputs, SizeIs(1));
  ExpectField(model.inputs[0], "", inference::TYPE_FP64, {-1, 2}, false);
  ASSERT_THAT(model.outputs, SizeIs(1));
  ExpectField(model.outputs[0], "", inference::TYPE_FP64, {-1, 2}, false);
}

TEST(MLmodelTest, ParsesOnnx) {
  const MLmodel model = Parsed(RealMLmodel("onnxm"));
  EXPECT_THAT(model.flavors, ElementsAre("onnx", "python_function"));
  EXPECT_TRUE(model.onnx);
  EXPECT_EQ(model.onnx_file, "model.onnx");
  EXPECT_TRUE(model.pyfunc);
  EXPECT_TRUE(model.has_signature);
  EXPECT_FALSE(model.columns);
  ASSERT_THAT(model.inputs, SizeIs(1));
  ExpectField(model.inputs[0], "", inference::TYPE_FP32, {-1, 4}, false);
}

TEST(MLmodelTest, ColumnTypesAndRequired) {
  const MLmodel model = Parsed(Pyfunc(
      R"([{"type": "boolean", "name": "c0"}, {"type": "integer", "name": "c1"},
          {"type": "long", "name": "c2"}, {"type": "float", "name": "c3"},
          {"type": "double", "name": "c4", "required": true},
          {"type": "string", "name": "s", "required": false},
          {"type": "binary", "name": "raw", "required": false}])",
      kTensorOut));
  EXPECT_TRUE(model.columns);
  ASSERT_THAT(model.inputs, SizeIs(7));
  ExpectField(model.inputs[0], "c0", inference::TYPE_BOOL, {-1}, false);
  ExpectField(model.inputs[1], "c1", inference::TYPE_INT32, {-1}, false);
  ExpectField(model.inputs[2], "c2", inference::TYPE_INT64, {-1}, false);
  ExpectField(model.inputs[3], "c3", inference::TYPE_FP32, {-1}, false);
  ExpectField(model.inputs[4], "c4", inference::TYPE_FP64, {-1}, false);
  ExpectField(model.inputs[5], "s", inference::TYPE_STRING, {-1}, true);
  ExpectField(model.inputs[6], "raw", inference::TYPE_STRING, {-1}, true);
}

TEST(MLmodelTest, TensorDtypesAndShapes) {
  const MLmodel model = Parsed(Pyfunc(
      R"([{"type": "tensor", "name": "x", "tensor-spec": {"dtype": "uint8", "shape": [-1, 3, 4]}},
          {"type": "tensor", "name": "h", "tensor-spec": {"dtype": "float16", "shape": [2]}},
          {"type": "tensor", "name": "t", "tensor-spec": {"dtype": "str", "shape": [-1]}},
          {"type": "tensor", "name": "o", "tensor-spec": {"dtype": "object", "shape": [-1]}},
          {"type": "tensor", "name": "scalar", "tensor-spec": {"dtype": "bool", "shape": []}}])",
      kTensorOut));
  EXPECT_FALSE(model.columns);
  ASSERT_THAT(model.inputs, SizeIs(5));
  ExpectField(model.inputs[0], "x", inference::TYPE_UINT8, {-1, 3, 4}, false);
  ExpectField(model.inputs[1], "h", inference::TYPE_FP16, {2}, false);
  ExpectField(model.inputs[2], "t", inference::TYPE_STRING, {-1}, false);
  ExpectField(model.inputs[3], "o", inference::TYPE_STRING, {-1}, false);
  ExpectField(model.inputs[4], "scalar", inference::TYPE_BOOL, {1}, false);  // a scalar is [1]
}

TEST(MLmodelTest, NullSignatureSidesAreNoSignature) {
  const MLmodel model =
      Parsed("flavors:\n  python_function: {}\nsignature:\n  inputs: null\n  outputs: null\n");
  EXPECT_TRUE(model.pyfunc);
  EXPECT_FALSE(model.has_signature);
  EXPECT_THAT(model.inputs, IsEmpty());
  EXPECT_THAT(model.outputs, IsEmpty());
}

// --- MLmodelConfig ---

TEST(MLmodelConfigTest, OnnxGoesToOnnxRuntime) {
  const inference::ModelConfig config = Config(RealMLmodel("onnxm"), "iris");
  EXPECT_EQ(config.name(), "iris");
  EXPECT_EQ(config.backend(), "onnxruntime");
  EXPECT_EQ(config.default_model_filename(), "model.onnx");
  // The ONNX model itself names its inputs and outputs.
  EXPECT_THAT(config.input(), IsEmpty());
  EXPECT_THAT(config.output(), IsEmpty());
  EXPECT_FALSE(config.parameters().contains(std::string(kMlflowPyfuncParameter)));
}

TEST(MLmodelConfigTest, OnnxWinsOverPyfuncWhateverTheOrder) {
  const inference::ModelConfig config = Config(
      "flavors:\n  python_function: {loader_module: mlflow.onnx}\n  onnx: {data: m/x.onnx}\n");
  EXPECT_EQ(config.backend(), "onnxruntime");
  EXPECT_EQ(config.default_model_filename(), "m/x.onnx");
}

TEST(MLmodelConfigTest, PyfuncColumnsGoToPython) {
  const inference::ModelConfig config = Config(RealMLmodel("sk"), "sk");
  EXPECT_EQ(config.name(), "sk");
  EXPECT_EQ(config.backend(), "python");
  EXPECT_EQ(config.max_batch_size(), 0);
  ASSERT_TRUE(config.parameters().contains(std::string(kMlflowPyfuncParameter)));
  EXPECT_EQ(config.parameters().at(std::string(kMlflowPyfuncParameter)).string_value(), "columns");
  ASSERT_THAT(config.input(), SizeIs(2));
  ExpectTensor(config.input(0), "a", inference::TYPE_FP64, {-1});
  ExpectTensor(config.input(1), "b", inference::TYPE_FP64, {-1});
  EXPECT_FALSE(config.input(0).optional());
  ASSERT_THAT(config.output(), SizeIs(1));
  ExpectTensor(config.output(0), "output-0", inference::TYPE_INT64, {-1});
}

TEST(MLmodelConfigTest, PyfuncTensorsGoToPython) {
  const inference::ModelConfig config = Config(RealMLmodel("tens"));
  EXPECT_EQ(config.backend(), "python");
  EXPECT_EQ(config.max_batch_size(), 0);
  EXPECT_EQ(config.parameters().at(std::string(kMlflowPyfuncParameter)).string_value(), "tensors");
  ASSERT_THAT(config.input(), SizeIs(1));
  ExpectTensor(config.input(0), "input-0", inference::TYPE_FP64, {-1, 2});
  ASSERT_THAT(config.output(), SizeIs(1));
  ExpectTensor(config.output(0), "output-0", inference::TYPE_FP64, {-1, 2});
}

TEST(MLmodelConfigTest, StringColumnsAreStringsAndOptionalColumnsOptionalInputs) {
  const inference::ModelConfig config = Config(Pyfunc(
      R"([{"type": "string", "name": "text"}, {"type": "binary", "name": "blob", "required": false},
          {"type": "double", "name": "w", "required": false}])",
      R"([{"type": "string", "name": "label"}, {"type": "double", "name": "score"}])"));
  ASSERT_THAT(config.input(), SizeIs(3));
  ExpectTensor(config.input(0), "text", inference::TYPE_STRING, {-1});
  EXPECT_FALSE(config.input(0).optional());
  ExpectTensor(config.input(1), "blob", inference::TYPE_STRING, {-1});
  EXPECT_TRUE(config.input(1).optional());
  ExpectTensor(config.input(2), "w", inference::TYPE_FP64, {-1});
  EXPECT_TRUE(config.input(2).optional());
  ASSERT_THAT(config.output(), SizeIs(2));
  ExpectTensor(config.output(0), "label", inference::TYPE_STRING, {-1});
  ExpectTensor(config.output(1), "score", inference::TYPE_FP64, {-1});
}

TEST(MLmodelConfigTest, UnnamedTensorsAreNumberedAndAnInputMayShareAnOutputsName) {
  const inference::ModelConfig config = Config(Pyfunc(
      R"([{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1]}},
          {"type": "tensor", "tensor-spec": {"dtype": "int32", "shape": [-1]}}])",
      R"([{"type": "tensor", "name": "input-0", "tensor-spec": {"dtype": "float32", "shape": [-1]}}])"));
  ASSERT_THAT(config.input(), SizeIs(2));
  EXPECT_EQ(config.input(0).name(), "input-0");
  EXPECT_EQ(config.input(1).name(), "input-1");
  ASSERT_THAT(config.output(), SizeIs(1));
  EXPECT_EQ(config.output(0).name(), "input-0");
}

// --- Errors: INVALID_ARGUMENT saying what is wrong and what was expected ---

enum class Stage { kParse, kConfig };

struct BadMLmodel {
  const char* name;
  std::string text;
  Stage stage;
  std::vector<std::string> words;  // each in the message
};

std::string ManyColumns(int n) {
  std::string json = "[";
  for (int i = 0; i < n; ++i) {
    json += (i ? ", " : "") + std::string(R"({"type": "double", "name": "c)") + std::to_string(i) +
            R"("})";
  }
  return json + "]";
}

std::vector<BadMLmodel> BadMLmodels() {
  const std::string onnx = "flavors:\n  onnx:\n    onnx_version: 1.23.2\n";
  return {
      {"NotYaml",
       "flavors:\n  onnx: [model.onnx\n",
       Stage::kParse,
       {"MLmodel is not YAML", "expected MLflow's MLmodel"}},
      {"NotYamlTabs", "flavors:\n\tonnx: {data: x}\n", Stage::kParse, {"not YAML", "expected"}},
      {"NotAMapList",
       "- onnx\n- python_function\n",
       Stage::kParse,
       {"not a YAML map", "expected MLflow's MLmodel"}},
      {"NotAMapScalar", "just some text", Stage::kParse, {"not a YAML map", "expected"}},
      {"NotAMapEmpty", "", Stage::kParse, {"not a YAML map", "expected"}},
      {"NoFlavors",
       "mlflow_version: 3.17.2\nmodel_size_bytes: 116\n",
       Stage::kParse,
       {"no `flavors` map", "expected MLflow's MLmodel"}},
      {"FlavorsNotAMap",
       "flavors: [onnx, python_function]\n",
       Stage::kParse,
       {"no `flavors` map", "expected"}},
      {"OnnxWithoutData",
       onnx,
       Stage::kParse,
       {"flavor onnx has no `data`", "expected the ONNX file's path"}},
      {"OnnxNull", "flavors:\n  onnx: null\n", Stage::kParse, {"flavor onnx", "`data`"}},
      {"OnnxDataAList",
       "flavors:\n  onnx:\n    data: [a, b]\n",
       Stage::kParse,
       {"flavor onnx's `data` is not a string"}},
      {"OnnxDataParent",
       "flavors:\n  onnx:\n    data: ../x\n",
       Stage::kParse,
       {"`data` '../x' is not a path inside the model folder", "expected a relative path"}},
      {"OnnxDataInnerParent",
       "flavors:\n  onnx:\n    data: a/../../x\n",
       Stage::kParse,
       {"'a/../../x' is not a path inside the model folder"}},
      {"OnnxDataAbsolute",
       "flavors:\n  onnx:\n    data: /abs/model.onnx\n",
       Stage::kParse,
       {"'/abs/model.onnx' is not a path inside the model folder", "expected"}},
      {"NeitherOnnxNorPyfunc",
       "flavors:\n  sklearn:\n    pickled_model: model.pkl\n  keras: {}\n",
       Stage::kConfig,
       {"flavors (sklearn, keras)", "none mmserve serves", "expected onnx or python_function"}},
      {"PyfuncWithoutSignature",
       "flavors:\n  python_function:\n    loader_module: x\n",
       Stage::kConfig,
       {"no signature with inputs and outputs", "expected"}},
      {"PyfuncWithoutOutputs",
       "flavors:\n  python_function: {}\nsignature:\n  inputs: '[{\"type\": \"long\"}]'\n",
       Stage::kConfig,
       {"no signature with inputs and outputs"}},
      {"PyfuncWithEmptyInputs",
       Pyfunc("[]", kTensorOut),
       Stage::kConfig,
       {"no signature with inputs and outputs"}},
      {"SignatureNotJson",
       Pyfunc(R"([{"type": "double", "name": )", kTensorOut),
       Stage::kParse,
       {"signature inputs is not JSON", "expected MLflow's list of fields"}},
      {"SignatureNotAList",
       Pyfunc(R"({"type": "double"})", kTensorOut),
       Stage::kParse,
       {"signature inputs is not a JSON list", "expected MLflow's list of fields"}},
      {"SignatureOutputsNotJson",
       Pyfunc(R"([{"type": "double"}])", "not json"),
       Stage::kParse,
       {"signature outputs is not JSON", "expected"}},
      {"FieldNotAnObject",
       Pyfunc(R"([{"type": "double"}, 7])", kTensorOut),
       Stage::kParse,
       {"signature inputs[1] is not an object", "expected"}},
      {"FieldWithoutType",
       Pyfunc(R"([{"name": "a"}])", kTensorOut),
       Stage::kParse,
       {"signature inputs[0] has no \"type\"", "expected"}},
      {"ColumnDatetime",
       Pyfunc(R"([{"type": "datetime", "name": "when"}])", kTensorOut),
       Stage::kParse,
       {"signature inputs[0] ('when') has type 'datetime'", "cannot serve",
        "expected boolean, integer, long, float, double, string or binary"}},
      {"TensorComplex64",
       Pyfunc(R"([{"type": "tensor", "tensor-spec": {"dtype": "complex64", "shape": [-1]}}])",
              kTensorOut),
       Stage::kParse,
       {"signature inputs[0] has dtype 'complex64'", "expected a numpy dtype"}},
      {"TensorWithoutSpec",
       Pyfunc(R"([{"type": "tensor", "name": "x"}])", kTensorOut),
       Stage::kParse,
       {"('x') is a tensor without a \"tensor-spec\" of dtype and shape"}},
      {"MixedTensorAndColumn",
       Pyfunc(R"([{"type": "double", "name": "a"},
                  {"type": "tensor", "name": "x", "tensor-spec": {"dtype": "float32", "shape": [-1]}}])",
              kTensorOut),
       Stage::kParse,
       {"signature inputs mixes tensors and columns", "expected one or the other"}},
      {"DuplicateInputs",
       Pyfunc(R"([{"type": "double", "name": "a"}, {"type": "long", "name": "a"}])", kTensorOut),
       Stage::kConfig,
       {"names input 'a' twice", "expected"}},
      {"DuplicateOutputs",
       Pyfunc(R"([{"type": "double", "name": "a"}])",
              R"([{"type": "double", "name": "y"}, {"type": "double", "name": "y"}])"),
       Stage::kConfig,
       {"names output 'y' twice", "expected"}},
      {"DuplicateUnnamedAndNamed",
       Pyfunc(R"([{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1]}},
                  {"type": "tensor", "name": "input-0", "tensor-spec": {"dtype": "float32", "shape": [-1]}}])",
              kTensorOut),
       Stage::kConfig,
       {"names input 'input-0' twice"}},
      {"TooManyFields",
       Pyfunc(ManyColumns(1025), kTensorOut),
       Stage::kParse,
       {"signature inputs has more than 1024 fields", "expected"}},
      {"ShapeWithAFraction",
       Pyfunc(R"([{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2.5]}}])",
              kTensorOut),
       Stage::kParse,
       {"inputs[0] has a shape that is not a list of at most 16 sizes (-1 for any)"}},
      {"ShapeWithAString",
       Pyfunc(R"([{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": ["n"]}}])",
              kTensorOut),
       Stage::kParse,
       {"has a shape that is not a list"}},
      {"ShapeBelowMinusOne",
       Pyfunc(R"([{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-2]}}])",
              kTensorOut),
       Stage::kParse,
       {"has a shape that is not a list"}},
      {"ShapeTooLong",
       Pyfunc(R"([{"type": "tensor", "tensor-spec": {"dtype": "float32",
                   "shape": [1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]}}])",
              kTensorOut),
       Stage::kParse,
       {"has a shape that is not a list of at most 16 sizes"}},
      {"FlowNesting33",
       "flavors:\n  onnx:\n    data: " + std::string(33, '[') + std::string(33, ']'),
       Stage::kParse,
       {"MLmodel nests deeper than 32 levels", "expected MLflow's MLmodel YAML"}},
      {"FlowMapNesting33",
       "a: " + std::string(33, '{'),
       Stage::kParse,
       {"nests deeper than 32 levels"}},
      {"Indent129",
       "flavors:\n" + std::string(129, ' ') + "onnx: {data: model.onnx}\n",
       Stage::kParse,
       {"MLmodel is indented deeper than 128 columns", "expected MLflow's MLmodel"}},
  };
}

class BadMLmodelTest : public ::testing::TestWithParam<BadMLmodel> {};

TEST_P(BadMLmodelTest, IsRefusedSayingWhy) {
  const BadMLmodel& bad = GetParam();
  auto parsed = ParseMLmodel(bad.text);
  Status status;
  if (bad.stage == Stage::kParse) {
    ASSERT_FALSE(parsed.ok()) << "parsed";
    status = parsed.status();
  } else {
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    auto config = MLmodelConfig(*parsed, "m");
    ASSERT_FALSE(config.ok()) << config->DebugString();
    status = config.status();
  }
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
  for (const std::string& word : bad.words) EXPECT_THAT(status.message(), HasSubstr(word));
}

INSTANTIATE_TEST_SUITE_P(All, BadMLmodelTest, ::testing::ValuesIn(BadMLmodels()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(MLmodelLimitsTest, AtTheLimitsIsAccepted) {
  // 32 levels of flow nesting pass the nesting check (then `data` is no string).
  auto nested =
      ParseMLmodel("flavors:\n  onnx:\n    data: " + std::string(32, '[') + std::string(32, ']'));
  ASSERT_FALSE(nested.ok());
  EXPECT_THAT(nested.status().message(),
              AllOf(HasSubstr("is not a string"), Not(HasSubstr("nests deeper"))));
  // Brackets inside quotes (the signature's JSON) are not nesting.
  const std::string deep_json =
      std::string(40, '[') + R"({"type": "double"})" + std::string(40, ']');
  auto quoted = ParseMLmodel(Pyfunc(deep_json, kTensorOut));
  ASSERT_FALSE(quoted.ok());
  EXPECT_THAT(quoted.status().message(), HasSubstr("signature inputs[0] is not an object"));
  // 128 columns of indentation pass; 1024 fields pass.
  EXPECT_TRUE(
      ParseMLmodel("flavors:\n" + std::string(128, ' ') + "onnx: {data: model.onnx}\n").ok());
  const MLmodel many = Parsed(Pyfunc(ManyColumns(1024), kTensorOut));
  EXPECT_THAT(many.inputs, SizeIs(1024));
}

// Shapes of deep nesting the character scan cannot see (a block sequence on
// one line; brackets after an apostrophe in a comment or a plain scalar) are
// stopped by yaml-cpp's own depth guard: refused, not a stack overflow.
TEST(MLmodelLimitsTest, DeepNestingTheScanCannotSeeIsRefusedNotACrash) {
  std::string block;
  for (int i = 0; i < 100000; ++i) block += "- ";
  block += "x\n";
  auto sequence = ParseMLmodel(block);
  EXPECT_EQ(sequence.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(sequence.status().message(),
              AllOf(HasSubstr("MLmodel nests deeper than"), HasSubstr("at line 1"),
                    HasSubstr("expected MLflow's MLmodel YAML")));

  const std::string brackets(100000, '[');
  auto comment = ParseMLmodel("# it's\nflavors: " + brackets + "\n# '\n");
  EXPECT_EQ(comment.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(comment.status().message(), HasSubstr("nests deeper than"));
  auto plain = ParseMLmodel("note: it's\nflavors: " + brackets + "\nend: '\n");
  EXPECT_EQ(plain.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(plain.status().message(), HasSubstr("nests deeper than"));
}

// --- ScanModel on a local model folder ---

class MLmodelScanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    root_ = fs::temp_directory_path() /
            ("mm_mlmodel_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  void Write(const fs::path& relative, const std::string& text) {
    fs::create_directories((root_ / relative).parent_path());
    std::ofstream(root_ / relative) << text;
  }

  fs::path root_;
};

TEST_F(MLmodelScanTest, AVersionWithAnMLmodelGetsTheDerivedConfig) {
  Write("m/1/MLmodel", RealMLmodel("onnxm"));
  Write("m/1/model.onnx", "fake");
  const ModelSource source = ScanModel(root_ / "m");
  ASSERT_TRUE(source.status.ok()) << source.status.ToString();
  EXPECT_FALSE(source.has_config);
  EXPECT_THAT(source.versions, ElementsAre(1));
  EXPECT_EQ(source.config.name(), "m");
  EXPECT_EQ(source.config.backend(), "onnxruntime");
  EXPECT_EQ(source.config.default_model_filename(), "model.onnx");
}

TEST_F(MLmodelScanTest, APyfuncVersionGetsThePythonConfig) {
  Write("sk/3/MLmodel", RealMLmodel("sk"));
  const ModelSource source = ScanModel(root_ / "sk");
  ASSERT_TRUE(source.status.ok()) << source.status.ToString();
  EXPECT_EQ(source.config.name(), "sk");
  EXPECT_EQ(source.config.backend(), "python");
  EXPECT_EQ(source.config.parameters().at(std::string(kMlflowPyfuncParameter)).string_value(),
            "columns");
  ASSERT_THAT(source.config.input(), SizeIs(2));
  EXPECT_EQ(source.config.output(0).name(), "output-0");
}

TEST_F(MLmodelScanTest, AConfigPbtxtWinsOverTheMLmodel) {
  Write("m/config.pbtxt", "backend: \"identity\"\nmax_batch_size: 4\n");
  Write("m/1/MLmodel", "this: [is not an MLmodel");
  const ModelSource source = ScanModel(root_ / "m");
  ASSERT_TRUE(source.status.ok()) << source.status.ToString();
  EXPECT_TRUE(source.has_config);
  EXPECT_EQ(source.config.backend(), "identity");
  EXPECT_EQ(source.config.max_batch_size(), 4);
}

TEST_F(MLmodelScanTest, ABrokenMLmodelMakesTheModelUnavailableNamingIt) {
  Write("m/1/MLmodel", "flavors:\n  onnx:\n    data: ../../etc/passwd\n");
  const ModelSource source = ScanModel(root_ / "m");
  ASSERT_FALSE(source.status.ok());
  EXPECT_EQ(source.status.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(source.status.message(), AllOf(HasSubstr("MLmodel of model 'm' version 1"),
                                             HasSubstr("not a path inside the model folder")));
  EXPECT_EQ(source.config.name(), "m");

  Write("n/1/MLmodel", "flavors:\n  sklearn: {}\n");
  const ModelSource unserved = ScanModel(root_ / "n");
  EXPECT_EQ(unserved.status.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(unserved.status.message(),
              AllOf(HasSubstr("MLmodel of model 'n' version 1"), HasSubstr("sklearn")));
}

TEST_F(MLmodelScanTest, TheNewestVersionsMLmodelIsTheOneUsed) {
  Write("m/1/MLmodel", RealMLmodel("onnxm"));
  Write("m/2/MLmodel", RealMLmodel("tens"));
  ModelSource source = ScanModel(root_ / "m");
  ASSERT_TRUE(source.status.ok()) << source.status.ToString();
  EXPECT_THAT(source.versions, ElementsAre(1, 2));
  EXPECT_EQ(source.config.backend(), "python");

  Write("m/10/MLmodel", RealMLmodel("onnxm"));  // numerically newest, not by name
  source = ScanModel(root_ / "m");
  ASSERT_TRUE(source.status.ok()) << source.status.ToString();
  EXPECT_EQ(source.config.backend(), "onnxruntime");

  // A broken MLmodel in an older version does not matter.
  Write("m/2/MLmodel", "flavors: [");
  source = ScanModel(root_ / "m");
  EXPECT_TRUE(source.status.ok()) << source.status.ToString();
}

TEST_F(MLmodelScanTest, AnMLmodelOnlyInAnOlderVersionIsNotUsed) {
  Write("m/1/MLmodel", RealMLmodel("onnxm"));
  Write("m/2/model.onnx", "fake");
  const ModelSource source = ScanModel(root_ / "m");
  EXPECT_TRUE(source.status.ok()) << source.status.ToString();
  EXPECT_EQ(source.config.backend(), "");
  EXPECT_EQ(source.config.default_model_filename(), "");
}

TEST_F(MLmodelScanTest, ApplyMLmodelNamesTheNewestVersion) {
  ModelSource source;
  source.name = "reg";
  source.versions = {3, 7};
  Status status = ApplyMLmodel(source, "flavors: {}\n");
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("MLmodel of model 'reg' version 7"));

  EXPECT_TRUE(ApplyMLmodel(source, RealMLmodel("tens")).ok());
  EXPECT_EQ(source.config.name(), "reg");
  EXPECT_EQ(source.config.backend(), "python");
}

// ---------------------------------------------------------------- requirements

StatusOr<std::string> NoRequirementsTxt() { return NotFound("no requirements.txt"); }

TEST(MlflowRequirementsTest, ReadsWhatMlflowWroteForASklearnModel) {
  auto read = ReadMlflowRequirements(kTestdata / "sk");
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  ASSERT_TRUE(read->has_value());
  const MlflowRequirements& r = **read;
  EXPECT_EQ(r.python, "3.11.7");
  EXPECT_EQ(r.source, "python_env.yaml");
  ASSERT_FALSE(r.packages.empty());
  EXPECT_EQ(r.packages.front(), "mlflow==3.17.2");
  EXPECT_THAT(r.packages, ::testing::Contains("scikit-learn==1.9.1"));
  // build_dependencies (pip, setuptools, wheel) are not installed.
  EXPECT_THAT(r.packages, Not(::testing::Contains(HasSubstr("setuptools"))));
}

TEST(MlflowRequirementsTest, AFolderWithNeitherFileHasNone) {
  auto read = ReadMlflowRequirements(kTestdata / "onnxm");
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_FALSE(read->has_value());
}

TEST(MlflowRequirementsTest, RequirementsTxtAloneIsRead) {
  const fs::path dir = fs::path(testing::TempDir()) / ("reqs-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "requirements.txt") << "# made by hand\nnumpy>=2 # the arrays\n\n"
                                             "pandas[performance]==3.1.1 ; python_version >= "
                                             "\"3.10\"\r\n";
  auto read = ReadMlflowRequirements(dir);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  ASSERT_TRUE(read->has_value());
  EXPECT_EQ((*read)->source, "requirements.txt");
  EXPECT_EQ((*read)->python, "");
  EXPECT_THAT((*read)->packages,
              ElementsAre("numpy>=2", "pandas[performance]==3.1.1 ; python_version >= \"3.10\""));
  fs::remove_all(dir);
}

TEST(MlflowRequirementsTest, PlainRequirementsPass) {
  for (const char* ok : {"numpy", "numpy==2.4.6", "scikit-learn~=1.9", "torch==2.15.0+cpu",
                         "a.b_c-d[x,y]>=1.0,!=1.3.*,<2", "pywin32==306 ; sys_platform == 'win32'",
                         "mlflow-skinny (==3.17.2)"}) {
    EXPECT_TRUE(CheckRequirement(ok).ok()) << ok << ": " << CheckRequirement(ok).ToString();
  }
}

TEST(MlflowRequirementsTest, WhatWouldChooseAnotherSourceOrFileIsRefused) {
  const std::pair<const char*, const char*> cases[] = {
      {"--index-url http://evil.example/simple", "pip option"},
      {"-r /etc/passwd", "pip option"},
      {"-e .", "pip option"},
      {"numpy --hash=sha256:00", "pip option"},
      {"numpy @ https://evil.example/numpy.whl", "direct reference"},
      {"git+https://evil.example/x.git", "URL or a path"},
      {"./local/package", "does not start with a package name"},
      {"pkg/../x", "URL or a path"},
      {"C:\\x", "URL or a path"},
      {"numpy==${VERSION}", "environment variable"},
      {"numpy\x01", "character"},
  };
  for (const auto& [bad, why] : cases) {
    Status s = CheckRequirement(bad);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(s.message(), AllOf(HasSubstr(why), HasSubstr("PEP 508"))) << bad;
  }
  EXPECT_THAT(CheckRequirement(std::string(kMaxRequirementLength + 1, 'a')).message(),
              HasSubstr("longer than"));
}

TEST(MlflowRequirementsTest, RequirementsTextNamesTheLineOfARefusedOne) {
  auto parsed = ParseRequirementsText("numpy\n# fine\n--extra-index-url http://x\n", "req.txt");
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(parsed.status().message(), AllOf(HasSubstr("req.txt line 3"), HasSubstr("option")));
  parsed = ParseRequirementsText("numpy==2 \\\n  --hash=sha256:00\n", "req.txt");
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(parsed.status().message(), HasSubstr("continued"));
  // '#' inside a requirement (no space before) is not a comment.
  parsed = ParseRequirementsText("numpy#egg\n", "req.txt");
  EXPECT_FALSE(parsed.ok());
  std::string many;
  for (size_t i = 0; i <= kMaxMlflowRequirements; ++i) many += "p" + std::to_string(i) + "\n";
  parsed = ParseRequirementsText(many, "req.txt");
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(parsed.status().message(), HasSubstr("more than"));
}

TEST(MlflowRequirementsTest, PythonEnvYamlMayNameOnlyTheRequirementsTxtBesideIt) {
  auto parsed = ParseMlflowPythonEnv("python: 3.12.1\ndependencies:\n- -r ../../etc/passwd\n",
                                     NoRequirementsTxt);
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(parsed.status().message(), HasSubstr("another file"));
  parsed = ParseMlflowPythonEnv("dependencies:\n- -c constraints.txt\n", NoRequirementsTxt);
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(parsed.status().message(), HasSubstr("pip option"));
  parsed = ParseMlflowPythonEnv("dependencies:\n- -r requirements.txt\n", NoRequirementsTxt);
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(parsed.status().message(), HasSubstr("no requirements.txt"));
  parsed = ParseMlflowPythonEnv("python: 3.12.1\ndependencies:\n- numpy\n- -r requirements.txt\n",
                                [] { return StatusOr<std::string>("pandas\n"); });
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->python, "3.12.1");
  EXPECT_THAT(parsed->packages, ElementsAre("numpy", "pandas"));
}

TEST(MlflowRequirementsTest, HostilePythonEnvYamlIsRefusedWithAReason) {
  const std::pair<std::string, const char*> cases[] = {
      {"python: [3]\n", "not a string"},
      {"python: '3.11; rm -rf /'\n", "expected a version"},
      {"dependencies: numpy\n", "not a list"},
      {"dependencies:\n- {a: b}\n", "not a string"},
      {std::string(100, '[') + std::string(100, ']'), "nests deeper"},
      {"- a\n- b\n", "not a YAML map"},
      {"a: [\n", "not YAML"},
  };
  for (const auto& [text, why] : cases) {
    auto parsed = ParseMlflowPythonEnv(text, NoRequirementsTxt);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_THAT(parsed.status().message(), HasSubstr(why)) << text;
  }
}

}  // namespace
}  // namespace mm
