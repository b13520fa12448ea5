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
	model_operations: { op_library_filename: [ "x" ] }  # a comment [ {
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
  EXPECT_THAT(warnings[2], HasSubstr("line 6 column 9: unknown field 'model_operations' ignored"));
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
  EXPECT_THAT(
      json,
      HasSubstr(
          R"("mmserve":{"isolation":"PROCESS","memory_limit_bytes":)"
          R"(1073741824,"pinned":true,"tenant":"acme",)"
          R"("memory_footprint_bytes":0,"weight":0,"execution_timeout_ms":0,"share_cached_responses":false})"));

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

// ------------------------------------------------------------------ bounds
// Issue 17: every number of a config has a bound, and the message names the
// field, the value and the bound.

using B = ConfigBounds;

void ExpectRefused(const std::string& edit, const std::string& want) {
  Status s = ValidateEdited(edit);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << edit;
  EXPECT_THAT(s.message(), HasSubstr(want)) << edit;
}

TEST(ConfigBoundsTest, BatchingAndQueues) {
  ExpectRefused("max_batch_size: 1048577", "max_batch_size is 1048577; expected at most 1048576");
  EXPECT_TRUE(ValidateEdited("max_batch_size: 1048576").ok());
  ExpectRefused("dynamic_batching { max_queue_delay_microseconds: 60000001 }",
                "dynamic_batching.max_queue_delay_microseconds is 60000001; expected at most "
                "60000000");
  ExpectRefused("dynamic_batching { priority_levels: 4294967295 }",
                "dynamic_batching.priority_levels is 4294967295; expected at most 1000");
  ExpectRefused(
      "dynamic_batching { priority_levels: 4294967298 default_priority_level: "
      "4000000000 }",
      "dynamic_batching.priority_levels is 4294967298; expected at most 1000");
  ExpectRefused("dynamic_batching { priority_levels: 5000000 }",
                "priority_levels is 5000000; expected at most 1000");
  EXPECT_TRUE(ValidateEdited("dynamic_batching { priority_levels: 1000 default_priority_level: "
                             "1000 }")
                  .ok());
  ExpectRefused("dynamic_batching { priority_levels: 1000 default_priority_level: 1001 }",
                "default_priority_level is 1001; expected 1 to priority_levels (1000)");
  ExpectRefused("dynamic_batching { default_queue_policy { max_queue_size: 1000001 } }",
                "dynamic_batching.default_queue_policy.max_queue_size is 1000001; expected at "
                "most 1000000");
  ExpectRefused(
      "dynamic_batching { default_queue_policy { default_timeout_microseconds: 3600000001 } }",
      "default_timeout_microseconds is 3600000001; expected at most 3600000000");
  ExpectRefused(
      "dynamic_batching { priority_queue_policy { key: 2 value: { "
      "default_timeout_microseconds: 18446744073709551615 } } }",
      "priority_queue_policy[2].default_timeout_microseconds is 18446744073709551615");
  std::string many = "dynamic_batching { preferred_batch_size: [";
  for (int i = 0; i < B::kMaxPreferredBatchSizes; ++i) many += "1, ";
  // (the good config's two, merged with these 65)
  ExpectRefused(many + "1 ] }",
                "dynamic_batching.preferred_batch_size has 67 entries; expected "
                "at most 64");
}

TEST(ConfigBoundsTest, TensorsAndDims) {
  ExpectRefused("input [ { name: \"big\" data_type: TYPE_FP32 dims: [ 2147483648 ] } ]",
                "input 'big' dims[0] is 2147483648; expected -1 (variable size) or a positive "
                "size up to 2147483647");
  EXPECT_TRUE(
      ValidateEdited("input [ { name: \"big\" data_type: TYPE_FP32 dims: [ 2147483647 ] } ]").ok());
  std::string rank = "output [ { name: \"deep\" data_type: TYPE_FP32 dims: [";
  for (int i = 0; i < B::kMaxRank; ++i) rank += "1, ";
  ExpectRefused(rank + "1 ] } ]", "output 'deep' dims has 65 dims; expected at most 64");
  inference::ModelConfig c = Good();
  for (int i = 0; i < B::kMaxTensors; ++i) {
    auto* in = c.add_input();
    in->set_name("in" + std::to_string(i));
    in->set_data_type(inference::TYPE_FP32);
  }
  EXPECT_THAT(ValidateModelConfig(c).message(), HasSubstr("input has 1025 entries"));
}

TEST(ConfigBoundsTest, InstancesGpusAndRateLimiter) {
  ExpectRefused("instance_group [ { count: 1025 } ]",
                "instance_group[1].count is 1025; expected at most 1024");
  // (the good config's group of 2 first)
  ExpectRefused("instance_group [ { count: 1000 }, { count: 100 } ]",
                "instance_group asks for 1102 instances or more in total; expected at most 1024");
  std::string groups = "instance_group [";
  for (int i = 0; i < B::kMaxInstanceGroups; ++i) groups += "{ count: 1 }, ";
  ExpectRefused(groups + "{ count: 1 } ]", "instance_group has 66 entries; expected at most 64");
  ExpectRefused("instance_group [ { gpus: [ 1024 ] } ]",
                "instance_group[1].gpus lists 1024; expected GPU indices from 0 to 1023");
  ExpectRefused("instance_group [ { rate_limiter { resources { name: \"r\" count: 1000001 } } } ]",
                "instance_group[1].rate_limiter.resources[0].count is 1000001");
  ExpectRefused("instance_group [ { rate_limiter { priority: 4294967295 } } ]",
                "instance_group[1].rate_limiter.priority is 4294967295");
}

TEST(ConfigBoundsTest, ThreadParameters) {
  for (const char* key : {"intra_op_thread_count", "inter_op_thread_count"}) {
    for (const char* bad : {"1025", "-1", "two", "", "4294967296", "1 "}) {
      ExpectRefused(std::string("parameters { key: \"") + key + "\" value { string_value: \"" +
                        bad + "\" } }",
                    std::string("parameters['") + key + "'] is '" + bad +
                        "'; expected an integer from 0 (one per core) to 1024");
    }
    EXPECT_TRUE(ValidateEdited(std::string("parameters { key: \"") + key +
                               "\" value { string_value: \"1024\" } }")
                    .ok());
  }
}

TEST(ConfigBoundsTest, VersionsMapsAndMmserve) {
  ExpectRefused("version_policy { latest { num_versions: 101 } }",
                "version_policy.latest.num_versions is 101; expected at most 100");
  std::string specific = "version_policy { specific { versions: [";
  for (int i = 1; i <= B::kMaxVersions; ++i) specific += std::to_string(i) + ", ";
  ExpectRefused(specific + "101 ] } }",
                "version_policy.specific.versions has 101 entries; expected at most 100");
  inference::ModelConfig c = Good();
  for (int i = 0; i <= B::kMaxMapEntries; ++i) {
    (*c.mutable_metric_tags())["t" + std::to_string(i)] = "v";
  }
  EXPECT_THAT(ValidateModelConfig(c).message(),
              HasSubstr("metric_tags has 257 entries; expected at most 256"));
  ExpectRefused("mmserve { memory_footprint_bytes: 281474976710657 }",
                "mmserve.memory_footprint_bytes is 281474976710657; expected at most "
                "281474976710656");
  ExpectRefused("mmserve { memory_limit_bytes: 18446744073709551615 }",
                "mmserve.memory_limit_bytes is 18446744073709551615");
  ExpectRefused("mmserve { execution_timeout_ms: 3600001 }",
                "mmserve.execution_timeout_ms is 3600001; expected at most 3600000");
  ExpectRefused("mmserve { weight: 1e7 }", "mmserve.weight is");
}

TEST(ConfigBoundsTest, Warmup) {
  const std::string sample =
      "model_warmup [ { name: \"w\" batch_size: 1 count: %s inputs { key: \"x\" value { "
      "data_type: TYPE_FP32 dims: [ 3 ] zero_data: true } } } ]";
  auto with_count = [&](const std::string& count) {
    std::string s = sample;
    return s.replace(s.find("%s"), 2, count);
  };
  ExpectRefused(with_count("4294967295"),
                "model_warmup[1].count is 4294967295; expected at most 1000");
  EXPECT_TRUE(ValidateEdited(with_count("999")).ok());  // + the good config's one run
  ExpectRefused(with_count("1000"),
                "model_warmup runs 1001 times or more per instance (each sample's count, 0 "
                "counting 1); expected at most 1000 in total");
  // 8 x 2048 x 1025 FP32 = 67,174,400 bytes > 64 MiB; 8 x 2048 x 1024 fits.
  ExpectRefused(
      "model_warmup [ { name: \"big\" batch_size: 8 inputs { key: \"x\" value { "
      "data_type: TYPE_FP32 dims: [ 2048, 1025 ] zero_data: true } } } ]",
      "model_warmup[1] needs more than 67108864 bytes of input data");
  EXPECT_TRUE(ValidateEdited("model_warmup [ { name: \"big\" batch_size: 8 inputs { key: \"x\" "
                             "value { data_type: TYPE_FP32 dims: [ 2048, 1024 ] zero_data: true } "
                             "} } ]")
                  .ok());
  // Huge dims overflow nothing: saturated, then refused.
  ExpectRefused(
      "model_warmup [ { name: \"big\" batch_size: 1 inputs { key: \"x\" value { "
      "data_type: TYPE_STRING dims: [ 2147483647, 2147483647, 2147483647 ] "
      "random_data: true } } } ]",
      "needs more than 67108864 bytes");
  ExpectRefused(
      "model_warmup [ { name: \"big\" batch_size: 1 inputs { key: \"x\" value { "
      "data_type: TYPE_FP32 dims: [ 2147483648 ] zero_data: true } } } ]",
      "dims[0] is 2147483648; expected a concrete size from 0 to 2147483647");
  // A zero dim is no data at all, whatever the others.
  EXPECT_TRUE(ValidateEdited("model_warmup [ { name: \"z\" batch_size: 1 inputs { key: \"x\" "
                             "value { data_type: TYPE_FP32 dims: [ 0, 2147483647, 2147483647 ] "
                             "zero_data: true } } } ]")
                  .ok());
  std::string samples = "model_warmup [";
  for (int i = 0; i < B::kMaxWarmupSamples; ++i) samples += "{ name: \"s\" batch_size: 1 }, ";
  ExpectRefused(samples + "{ name: \"s\" batch_size: 1 } ]",
                "model_warmup has 66 entries; expected at most 64");
}

// ------------------------------------------------------------- server caps

TEST(ServerLimitsTest, InstancesAndThreads) {
  ServerLimits limits;  // 16 instances, 64 threads
  limits.cores = 8;
  inference::ModelConfig c = Good();  // 2 instances, thread counts unset: 2 x (1 + 1)
  EXPECT_EQ(InstanceCount(c), 2);
  EXPECT_TRUE(CheckServerLimits(c, limits).ok());
  c.mutable_instance_group(0)->set_count(17);
  Status s = CheckServerLimits(c, limits);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("instance_group asks for 17 instances; this server allows at "
                                     "most 16 per model (--max-instances-per-model)"));
  c.mutable_instance_group(0)->set_count(4);
  (*c.mutable_parameters())["intra_op_thread_count"].set_string_value("200");
  s = CheckServerLimits(c, limits);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(),
              HasSubstr("4 instance(s) x (intra_op_thread_count 200 + inter_op_thread_count 1 "
                        "(unset)) = 804 threads; this server allows at most 64 per model "
                        "(--max-threads-per-model)"));
  // 0 is one per core.
  (*c.mutable_parameters())["intra_op_thread_count"].set_string_value("0");
  (*c.mutable_parameters())["inter_op_thread_count"].set_string_value("8");
  EXPECT_TRUE(CheckServerLimits(c, limits).ok());  // 4 x (8 + 8) = 64: at the cap
  c.mutable_instance_group(0)->set_count(5);
  EXPECT_THAT(CheckServerLimits(c, limits).message(),
              HasSubstr("5 instance(s) x (intra_op_thread_count 0 (one per core: 8) + "
                        "inter_op_thread_count 8) = 80 threads"));
  limits.max_threads_per_model = 0;  // no cap
  EXPECT_TRUE(CheckServerLimits(c, limits).ok());
  // No group at all is one instance; a count of 0 is 1.
  inference::ModelConfig plain;
  EXPECT_EQ(InstanceCount(plain), 1);
  plain.add_instance_group()->set_count(0);
  plain.add_instance_group()->set_count(0);
  EXPECT_EQ(InstanceCount(plain), 2);
}

// ------------------------------------------------------- load overrides

TEST(ConfigOverrideTest, ParsesValidatesAndChecksLimits) {
  ServerLimits limits;
  auto ok = ParseConfigOverride(R"({"max_batch_size": 4, "input": [{"name": "x",
      "data_type": "TYPE_FP32", "dims": [2]}]})",
                                "m", limits);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->name(), "m");
  auto refused = [&](std::string_view json, const std::string& want) {
    auto r = ParseConfigOverride(json, "m", limits);
    ASSERT_FALSE(r.ok()) << json;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << json;
    EXPECT_THAT(r.status().message(), HasSubstr(want)) << json;
    EXPECT_THAT(r.status().message(), HasSubstr("model 'm': the 'config' parameter")) << json;
  };
  refused(R"({"max_batch_size": 8, "dynamic_batching": {"priority_levels": 4294967295}})",
          "priority_levels is 4294967295; expected at most 1000");
  refused(R"({"model_warmup": [{"name": "w", "batch_size": 1, "count": 4294967295}]})",
          "model_warmup[0].count is 4294967295; expected at most 1000");
  refused(R"({"instance_group": [{"count": 4}], "parameters": {"intra_op_thread_count":
      {"string_value": "200"}}})",
          "(--max-threads-per-model)");
  refused(R"({"instance_group": [{"count": 17}]})", "(--max-instances-per-model)");
  refused(R"({"name": "other"})", "names model 'other'");
  refused("{not json", "is not a model configuration in JSON");
  refused(R"({"max_batch_size": 99999999999})", "is not a model configuration in JSON");
  refused(std::string(B::kMaxOverrideBytes + 1, ' '), "bytes; expected at most 4194304");
}

TEST(ConfigOverrideTest, AdminOnlyFieldsAreNamedInAnySpelling) {
  auto fields = [](std::string_view json) {
    auto r = AdminOnlyFieldsIn(json, "m");
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::vector<std::string>{"<error>"};
  };
  EXPECT_THAT(fields(R"({"max_batch_size": 4})"), IsEmpty());
  EXPECT_THAT(fields(R"({"mmserve": {"memory_footprint_bytes": 1, "pinned": true}})"),
              ElementsAre("mmserve.memory_footprint_bytes", "mmserve.pinned"));
  // Default values and JSON names count: any presence is refused.
  EXPECT_THAT(fields(R"({"mmserve": {"pinned": false, "executionTimeoutMs": 0}})"),
              ElementsAre("mmserve.execution_timeout_ms", "mmserve.pinned"));
  EXPECT_THAT(fields(R"({"mmserve": {}})"), ElementsAre("mmserve"));
  EXPECT_THAT(fields(R"({"mmserve": {"tenant": "x", "weight": 2, "isolation": "IN_PROCESS",
      "memory_limit_bytes": 5}})"),
              ElementsAre("mmserve.isolation", "mmserve.memory_limit_bytes", "mmserve.tenant",
                          "mmserve.weight"));
  // A key given twice: whatever the parsed config holds is named.
  EXPECT_THAT(fields(R"({"mmserve": {"pinned": true}, "mmserve": {}})"), SizeIs(testing::Ge(1u)));
  auto bad = AdminOnlyFieldsIn("[1, 2", "m");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("model 'm': the 'config' parameter"));
}

}  // namespace
}  // namespace mm
