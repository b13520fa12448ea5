#include "repository/model_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <google/protobuf/text_format.h>

#include <string>
#include <vector>

namespace mm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr char kGoodConfig[] = R"cfg(
name: "resnet"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [
  { name: "x" data_type: TYPE_FP32 dims: [ 3, -1, 224 ] }
]
output [
  { name: "y" data_type: TYPE_INT64 dims: [ 1000 ] reshape: { shape: [ 10, 100 ] } }
]
instance_group [ { count: 2 kind: KIND_CPU } ]
version_policy: { latest: { num_versions: 2 } }
dynamic_batching {
  preferred_batch_size: [ 4, 8 ]
  max_queue_delay_microseconds: 100
  priority_levels: 2
  default_priority_level: 1
  default_queue_policy { max_queue_size: 16 timeout_action: DELAY }
  priority_queue_policy { key: 2 value: { default_timeout_microseconds: 5000 } }
}
parameters { key: "threads" value: { string_value: "4" } }
model_warmup [ { name: "w" batch_size: 2 inputs { key: "x" value: {
  data_type: TYPE_FP32 dims: [ 3, 4, 224 ] zero_data: true } } } ]
mmserve { isolation: PROCESS memory_limit_bytes: 1073741824 pinned: true tenant: "acme" }
)cfg";

inference::ModelConfig Good() {
  auto parsed = ParseModelConfig(kGoodConfig, "resnet", nullptr);
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
  return parsed.ok() ? *parsed : inference::ModelConfig();
}

// Applies a text-format edit to the good config and validates the result.
Status ValidateEdited(const std::string& edit) {
  inference::ModelConfig config = Good();
  EXPECT_TRUE(google::protobuf::TextFormat::MergeFromString(edit, &config)) << edit;
  return ValidateModelConfig(config);
}

// ------------------------------------------------------------------ parsing

TEST(ParseModelConfigTest, ParsesEveryFieldWeUse) {
  std::vector<std::string> warnings;
  auto parsed = ParseModelConfig(kGoodConfig, "resnet", &warnings);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_THAT(warnings, IsEmpty());
  const inference::ModelConfig& c = *parsed;
  EXPECT_EQ(c.name(), "resnet");
  EXPECT_EQ(c.max_batch_size(), 8);
  ASSERT_EQ(c.input_size(), 1);
  EXPECT_EQ(c.input(0).data_type(), inference::TYPE_FP32);
  EXPECT_THAT(c.input(0).dims(), ElementsAre(3, -1, 224));
  EXPECT_THAT(c.output(0).reshape().shape(), ElementsAre(10, 100));
  EXPECT_EQ(c.instance_group(0).count(), 2);
  EXPECT_EQ(c.instance_group(0).kind(), inference::ModelInstanceGroup::KIND_CPU);
  EXPECT_EQ(c.version_policy().latest().num_versions(), 2u);
  EXPECT_EQ(c.dynamic_batching().priority_queue_policy().at(2).default_timeout_microseconds(),
            5000u);
  EXPECT_EQ(c.dynamic_batching().default_queue_policy().timeout_action(),
            inference::ModelQueuePolicy::DELAY);
  EXPECT_EQ(c.parameters().at("threads").string_value(), "4");
  EXPECT_TRUE(c.model_warmup(0).inputs().at("x").zero_data());
  EXPECT_EQ(c.mmserve().isolation(), inference::MmserveOptions::PROCESS);
  EXPECT_EQ(c.mmserve().memory_limit_bytes(), 1073741824u);
  EXPECT_TRUE(c.mmserve().pinned());
  EXPECT_EQ(c.mmserve().tenant(), "acme");
  EXPECT_TRUE(ValidateModelConfig(c).ok()) << ValidateModelConfig(c).ToString();
}

TEST(ParseModelConfigTest, EmptyTextIsAnEmptyConfig) {
  auto parsed = ParseModelConfig("", "m", nullptr);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->name(), "");
  EXPECT_EQ(parsed->input_size(), 0);
}

TEST(ParseModelConfigTest, UnknownFieldsAreSkippedWithAWarningNamingThem) {
  // Triton fields we do not support, in the spellings Triton accepts; protobuf
  // 3.21 alone cannot skip an unknown "name [ ... ]" or an empty list.
  constexpr char kText[] = R"cfg(name: "m"
optimization { execution_accelerators {
  gpu_execution_accelerator [ { name: "tensorrt" parameters { key: "a" value: "b" } } ]
  cpu_execution_accelerator: [ ] } }
input [ { name: "x" data_type: TYPE_FP32 dims: [ 1 ] is_non_linear_format_io: true } ]
	sequence_batching: { max_sequence_idle_microseconds: 5 }  # a comment [ {
batch_input[]
batch_output [{ target_name: [ "y" ] kind: BATCH_SCATTER_WITH_INPUT_SHAPE }]
output: [ ]
max_batch_size: 4
)cfg";
  std::vector<std::string> warnings;
  auto parsed = ParseModelConfig(kText, "m", &warnings);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->max_batch_size(), 4);  // fields after the unknown ones still parse
  ASSERT_EQ(parsed->input_size(), 1);
  EXPECT_THAT(parsed->input(0).dims(), ElementsAre(1));
  ASSERT_THAT(warnings, SizeIs(5));
  EXPECT_EQ(warnings[0],
            "config.pbtxt of model 'm' line 2 column 1: unknown field 'optimization' ignored "
            "(mmserve does not support it in inference.ModelConfig)");
  EXPECT_THAT(warnings[1], HasSubstr("line 5 column 54: unknown field 'is_non_linear_format_io' "
                                     "ignored (mmserve does not support it in "
                                     "inference.ModelInput)"));
  // Columns count a tab to the next multiple of 8, as protobuf does.
  EXPECT_THAT(warnings[2], HasSubstr("line 6 column 9: unknown field 'sequence_batching' ignored"));
  EXPECT_THAT(warnings[3], HasSubstr("line 7 column 1: unknown field 'batch_input' ignored"));
  EXPECT_THAT(warnings[4], HasSubstr("line 8 column 1: unknown field 'batch_output' ignored"));
}

TEST(ParseModelConfigTest, KnownFieldsAndStringsAreParsedVerbatim) {
  std::vector<std::string> warnings;
  auto parsed = ParseModelConfig(R"cfg(
parameters { key: "k [ ]" value: { string_value: "v [ { x [ ] } ]" } }
output [ ] input: [ ] instance_group[{ gpus: [ ] count: 3 }]
)cfg",
                                 "m", &warnings);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_THAT(warnings, IsEmpty());
  EXPECT_EQ(parsed->parameters().at("k [ ]").string_value(), "v [ { x [ ] } ]");
  EXPECT_EQ(parsed->input_size(), 0);
  EXPECT_EQ(parsed->output_size(), 0);
  ASSERT_EQ(parsed->instance_group_size(), 1);
  EXPECT_EQ(parsed->instance_group(0).count(), 3);
}

TEST(ParseModelConfigTest, MalformedUnknownFieldIsStillAnError) {
  auto parsed = ParseModelConfig("name: \"m\"\nbatch_input [ { kind: 1 }\n", "m", nullptr);
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(parsed.status().message(), HasSubstr("config.pbtxt of model 'm' line 3"));
}

TEST(ParseModelConfigTest, NullWarningsIsAllowed) {
  EXPECT_TRUE(ParseModelConfig("foo: 1", "m", nullptr).ok());
}

TEST(ParseModelConfigTest, SyntaxErrorNamesModelLineAndColumn) {
  auto parsed = ParseModelConfig("name: \"m\"\nmax_batch_size: \"eight\"\n", "m", nullptr);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(parsed.status().message(), HasSubstr("config.pbtxt of model 'm' line 2 column 17: "));
  EXPECT_THAT(parsed.status().message(), HasSubstr("integer"));
}

TEST(ParseModelConfigTest, UnknownEnumValueAndUnbalancedBracesAreErrors) {
  auto bad_enum = ParseModelConfig("input [ { name: \"x\" data_type: TYPE_FLOAT } ]", "m", nullptr);
  ASSERT_FALSE(bad_enum.ok());
  EXPECT_THAT(bad_enum.status().message(), HasSubstr("TYPE_FLOAT"));
  auto unbalanced = ParseModelConfig("input [ { name: \"x\" ", "m", nullptr);
  ASSERT_FALSE(unbalanced.ok());
  EXPECT_THAT(unbalanced.status().message(), HasSubstr("config.pbtxt of model 'm' line 1"));
}

// --------------------------------------------------------------- validation

TEST(ValidateModelConfigTest, AcceptsGoodAndMinimalConfigs) {
  EXPECT_TRUE(ValidateModelConfig(Good()).ok());
  inference::ModelConfig minimal;
  minimal.set_name("m");
  EXPECT_TRUE(ValidateModelConfig(minimal).ok());
}

TEST(ValidateModelConfigTest, RejectsBadModelNames) {
  for (const char* name : {"", "a/b", "..", "a..b", "a\\b", "a\nb", "a\x7f"}) {
    inference::ModelConfig c;
    c.set_name(name);
    Status s = ValidateModelConfig(c);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(s.message(), HasSubstr("model name")) << name;
  }
  inference::ModelConfig c;
  c.set_name("a\nb");
  EXPECT_THAT(ValidateModelConfig(c).message(), HasSubstr("'a\\x0ab'"));
}

TEST(ValidateModelConfigTest, RejectsNegativeMaxBatchSize) {
  Status s = ValidateEdited("max_batch_size: -1 dynamic_batching {}");
  EXPECT_THAT(s.message(), HasSubstr("max_batch_size is -1"));
}

TEST(ValidateModelConfigTest, RejectsUnnamedDuplicateOrUntypedTensors) {
  EXPECT_THAT(ValidateEdited("input [ { data_type: TYPE_FP32 } ]").message(),
              HasSubstr("input #1 has no name"));
  EXPECT_THAT(ValidateEdited("input [ { name: \"x\" data_type: TYPE_FP32 } ]").message(),
              HasSubstr("input 'x' appears more than once"));
  EXPECT_THAT(ValidateEdited("output [ { name: \"z\" } ]").message(),
              HasSubstr("output 'z' has data_type TYPE_INVALID"));
  EXPECT_THAT(ValidateEdited("output [ { name: \"z\" data_type: 99 } ]").message(),
              HasSubstr("output 'z' has data_type 99"));
  EXPECT_THAT(ValidateEdited("output [ { name: \"y\" data_type: TYPE_FP32 } ]").message(),
              HasSubstr("output 'y' appears more than once"));
  // An input and an output may share a name.
  EXPECT_TRUE(ValidateEdited("output [ { name: \"x\" data_type: TYPE_FP32 } ]").ok());
}

TEST(ValidateModelConfigTest, RejectsZeroAndTooNegativeDims) {
  Status zero = ValidateEdited("input [ { name: \"a\" data_type: TYPE_FP32 dims: [ 2, 0 ] } ]");
  EXPECT_EQ(zero.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(zero.message(), HasSubstr("input 'a' dims[1] is 0; expected -1"));
  EXPECT_THAT(
      ValidateEdited("output [ { name: \"b\" data_type: TYPE_FP32 dims: [ -2 ] } ]").message(),
      HasSubstr("output 'b' dims[0] is -2"));
  EXPECT_THAT(ValidateEdited("output [ { name: \"b\" data_type: TYPE_FP32 dims: [ 4 ] "
                             "reshape { shape: [ 0 ] } } ]")
                  .message(),
              HasSubstr("output 'b' reshape.shape[0] is 0"));
}

TEST(ValidateModelConfigTest, RejectsNegativeInstanceCountAndGpu) {
  EXPECT_THAT(ValidateEdited("instance_group [ { count: -1 } ]").message(),
              HasSubstr("instance_group[1].count is -1"));
  EXPECT_THAT(ValidateEdited("instance_group [ { gpus: [ -3 ] } ]").message(),
              HasSubstr("instance_group[1].gpus lists -3"));
  EXPECT_TRUE(ValidateEdited("instance_group [ { count: 0 } ]").ok());  // 0 means 1
}

TEST(ValidateModelConfigTest, RejectsBadVersionPolicies) {
  EXPECT_THAT(ValidateEdited("version_policy { specific { versions: [ 1, 0 ] } }").message(),
              HasSubstr("version_policy.specific.versions[1] is 0"));
  EXPECT_THAT(ValidateEdited("version_policy { specific { } }").message(),
              HasSubstr("version_policy.specific lists no versions"));
  inference::ModelConfig c = Good();
  c.mutable_version_policy()->mutable_latest()->set_num_versions(0);
  EXPECT_THAT(ValidateModelConfig(c).message(), HasSubstr("num_versions is 0"));
  EXPECT_TRUE(ValidateEdited("version_policy { all { } }").ok());
}

TEST(ValidateModelConfigTest, RejectsBadDynamicBatching) {
  EXPECT_THAT(ValidateEdited("max_batch_size: 0").message(),
              HasSubstr("dynamic_batching is set but max_batch_size is 0"));
  EXPECT_THAT(ValidateEdited("dynamic_batching { preferred_batch_size: [ 16 ] }").message(),
              HasSubstr("preferred_batch_size[2] is 16; expected 1 to max_batch_size (8)"));
  EXPECT_THAT(ValidateEdited("dynamic_batching { preferred_batch_size: [ 0 ] }").message(),
              HasSubstr("preferred_batch_size[2] is 0"));
  EXPECT_THAT(ValidateEdited("dynamic_batching { default_priority_level: 3 }").message(),
              HasSubstr("default_priority_level is 3; expected 1 to priority_levels (2)"));
  EXPECT_THAT(
      ValidateEdited("dynamic_batching { priority_queue_policy { key: 7 value {} } }").message(),
      HasSubstr("names priority level 7"));

  inference::ModelConfig c;
  c.set_name("m");
  c.set_max_batch_size(4);
  c.mutable_dynamic_batching()->set_default_priority_level(1);
  EXPECT_THAT(ValidateModelConfig(c).message(), HasSubstr("but priority_levels is 0"));
  c.mutable_dynamic_batching()->set_default_priority_level(0);
  EXPECT_TRUE(ValidateModelConfig(c).ok());
}

TEST(ValidateModelConfigTest, RejectsBadWarmup) {
  EXPECT_THAT(ValidateEdited("model_warmup [ { name: \"b\" batch_size: 9 } ]").message(),
              HasSubstr("model_warmup[1].batch_size is 9; expected 1 to 8"));
  EXPECT_THAT(ValidateEdited("model_warmup [ { name: \"b\" batch_size: 1 inputs { key: \"x\" "
                             "value { data_type: TYPE_FP32 dims: [ 1 ] } } } ]")
                  .message(),
              HasSubstr("says no data"));
  EXPECT_THAT(ValidateEdited("model_warmup [ { name: \"b\" batch_size: 1 inputs { key: \"x\" "
                             "value { data_type: TYPE_FP32 dims: [ -1 ] random_data: true } } } ]")
                  .message(),
              HasSubstr("dims[0] is -1"));
}

// ---------------------------------------------------------------- versions

inference::ModelVersionPolicy Policy(const std::string& text) {
  inference::ModelVersionPolicy policy;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &policy)) << text;
  return policy;
}

TEST(SelectVersionsTest, DefaultIsLatestOne) {
  EXPECT_THAT(SelectVersions({}, {3, 1, 2}), ElementsAre(3));
  EXPECT_THAT(SelectVersions({}, {}), IsEmpty());
}

TEST(SelectVersionsTest, LatestN) {
  EXPECT_THAT(SelectVersions(Policy("latest { num_versions: 2 }"), {1, 10, 2, 3}),
              ElementsAre(3, 10));
  EXPECT_THAT(SelectVersions(Policy("latest { num_versions: 5 }"), {2, 1}), ElementsAre(1, 2));
  EXPECT_THAT(SelectVersions(Policy("latest { }"), {2, 1}), ElementsAre(2));
}

TEST(SelectVersionsTest, AllSortedAndDeduplicated) {
  EXPECT_THAT(SelectVersions(Policy("all { }"), {5, 1, 3, 3}), ElementsAre(1, 3, 5));
}

TEST(SelectVersionsTest, SpecificOnlyThosePresent) {
  EXPECT_THAT(SelectVersions(Policy("specific { versions: [ 4, 2, 9 ] }"), {1, 2, 3, 4}),
              ElementsAre(2, 4));
  EXPECT_THAT(SelectVersions(Policy("specific { versions: [ 9 ] }"), {1}), IsEmpty());
}

// -------------------------------------------------------------------- JSON

TEST(ModelConfigToJsonTest, WritesDefaultsNumbersAndEnumNames) {
  inference::ModelConfig c;
  c.set_name("m");
  auto* in = c.add_input();
  in->set_name("x");
  in->set_data_type(inference::TYPE_FP32);
  in->add_dims(-1);
  in->add_dims(9007199254740993);  // above 2^53: must stay exact, as a number
  std::string json = ModelConfigToJson(c);
  EXPECT_THAT(json, HasSubstr(R"("name":"m","platform":"","backend":"","runtime":"",)"));
  EXPECT_THAT(json, HasSubstr(R"("max_batch_size":0,)"));
  EXPECT_THAT(json, HasSubstr(R"("input":[{"name":"x","data_type":"TYPE_FP32",)"
                              R"("format":"FORMAT_NONE","dims":[-1,9007199254740993],)"
                              R"("is_shape_tensor":false,"allow_ragged_batch":false,)"
                              R"("optional":false}])"));
  EXPECT_THAT(json, HasSubstr(R"("output":[])"));
  EXPECT_THAT(json, HasSubstr(R"("parameters":{})"));
  // Unset sub-messages and oneof members are left out.
  EXPECT_THAT(json, ::testing::Not(HasSubstr("version_policy")));
  EXPECT_THAT(json, ::testing::Not(HasSubstr("dynamic_batching")));
  EXPECT_THAT(json, ::testing::Not(HasSubstr("\"mmserve\"")));
}

TEST(ModelConfigToJsonTest, WritesNestedMessagesAndSortedMaps) {
  std::string json = ModelConfigToJson(Good());
  EXPECT_THAT(json, HasSubstr(R"("version_policy":{"latest":{"num_versions":2}})"));
  EXPECT_THAT(json, HasSubstr(R"("max_queue_delay_microseconds":100,)"));
  EXPECT_THAT(json, HasSubstr(R"("priority_queue_policy":{"2":{"timeout_action":"REJECT",)"
                              R"("default_timeout_microseconds":5000,)"));
  EXPECT_THAT(json, HasSubstr(R"("parameters":{"threads":{"string_value":"4"}})"));
  EXPECT_THAT(json, HasSubstr(R"("inputs":{"x":{"data_type":"TYPE_FP32","dims":[3,4,224],)"
                              R"("zero_data":true}})"));
  EXPECT_THAT(json,
              HasSubstr(R"("mmserve":{"isolation":"PROCESS","memory_limit_bytes":)"
                        R"(1073741824,"pinned":true,"tenant":"acme",)"
                        R"("memory_footprint_bytes":0,"weight":0,"execution_timeout_ms":0})"));

  inference::ModelConfig c;
  (*c.mutable_metric_tags())["b"] = "2";
  (*c.mutable_metric_tags())["a"] = "1";
  (*c.mutable_metric_tags())["c"] = "3";
  EXPECT_THAT(ModelConfigToJson(c), HasSubstr(R"("metric_tags":{"a":"1","b":"2","c":"3"})"));
}

TEST(ModelConfigToJsonTest, EscapesStrings) {
  inference::ModelConfig c;
  c.set_name(std::string("q\"b\\n\n\t\x01\x1f\x7f") + "\xc3\xa9" + "\xff" + "end");
  EXPECT_THAT(ModelConfigToJson(c), HasSubstr(R"("name":"q\"b\\n\n\t\u0001\u001f\u007f)"
                                              "\xc3\xa9"
                                              R"(\ufffdend")"));
}

TEST(ModelConfigToJsonTest, EmptyMessageIsAnObject) {
  EXPECT_EQ(ModelConfigToJson(inference::ModelParameter()), R"({"string_value":""})");
  EXPECT_EQ(ModelConfigToJson(inference::ModelVersionPolicy()), "{}");
}

}  // namespace
}  // namespace mm
