#include "ctl/json_tensor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ctl/infer_request.h"

namespace mm {
namespace {

using ::testing::HasSubstr;

std::vector<int64_t> ShapeOf(std::string_view json) {
  auto t = ParseJsonTensor(json, "input x");
  EXPECT_TRUE(t.ok()) << json << ": " << t.status().message();
  return t.ok() ? t->shape : std::vector<int64_t>{-1};
}

void ExpectError(std::string_view json, std::string_view part) {
  auto t = ParseJsonTensor(json, "input x");
  ASSERT_FALSE(t.ok()) << json;
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), HasSubstr("input x"));
  EXPECT_THAT(t.status().message(), HasSubstr(std::string(part))) << json;
}

TEST(JsonTensorTest, ShapeFromNesting) {
  EXPECT_EQ(ShapeOf("[[1,2,3,4]]"), (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(ShapeOf("[1, 2, 3]"), (std::vector<int64_t>{3}));
  EXPECT_EQ(ShapeOf("[[[1],[2]],[[3],[4]],[[5],[6]]]"), (std::vector<int64_t>{3, 2, 1}));
  EXPECT_EQ(ShapeOf("[]"), (std::vector<int64_t>{0}));
  EXPECT_EQ(ShapeOf("[[], []]"), (std::vector<int64_t>{2, 0}));
  EXPECT_EQ(ShapeOf(R"([["a","b"],["c","d"]])"), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(ShapeOf("[[true, false]]"), (std::vector<int64_t>{1, 2}));
}

TEST(JsonTensorTest, DataIsTheMinifiedValue) {
  auto t = ParseJsonTensor(" [ [1, 2.5] , [3, -4] ] ", "input x");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->data, "[[1,2.5],[3,-4]]");
}

TEST(JsonTensorTest, RaggedArraysAreErrors) {
  ExpectError("[[1,2],[3]]", "ragged");
  ExpectError("[[1],[2,3]]", "ragged");
  ExpectError("[1,[2]]", "ragged");
  ExpectError("[[1],2]", "ragged");
  ExpectError("[[], [1]]", "ragged");
  ExpectError("[[[1,2]],[[3]]]", "ragged");
}

TEST(JsonTensorTest, OtherErrors) {
  ExpectError("5", "expected a JSON array");
  ExpectError(R"({"a": 1})", "expected a JSON array");
  ExpectError("[1, null]", "null");
  ExpectError(R"([{"a":1}])", "object");
  ExpectError("[1, 2", "not valid JSON");
}

TEST(InputSpecTest, Kinds) {
  auto npy = ParseInputSpec("INPUT0=data/in.npy");
  ASSERT_TRUE(npy.ok());
  EXPECT_EQ(npy->name, "INPUT0");
  EXPECT_EQ(npy->kind, InputSpec::Kind::kNpyFile);
  EXPECT_EQ(npy->path, "data/in.npy");
  auto at_npy = ParseInputSpec("x=@in.npy");
  ASSERT_TRUE(at_npy.ok());
  EXPECT_EQ(at_npy->kind, InputSpec::Kind::kNpyFile);
  EXPECT_EQ(at_npy->path, "in.npy");
  auto json_file = ParseInputSpec("x=@in.json");
  ASSERT_TRUE(json_file.ok());
  EXPECT_EQ(json_file->kind, InputSpec::Kind::kJsonFile);
  EXPECT_EQ(json_file->path, "in.json");
  auto inline_json = ParseInputSpec("x=[[1,2,3,4]]");
  ASSERT_TRUE(inline_json.ok());
  EXPECT_EQ(inline_json->kind, InputSpec::Kind::kInlineJson);
  EXPECT_EQ(inline_json->inline_tensor.shape, (std::vector<int64_t>{1, 4}));
  auto with_eq = ParseInputSpec(R"(x=["a=b"])");  // only the first '=' splits
  ASSERT_TRUE(with_eq.ok());
  EXPECT_EQ(with_eq->name, "x");
}

TEST(InputSpecTest, UsageErrors) {
  for (const char* bad : {"x", "=[1]", "x=", "x=@", "x=[[1],[2,3]]", "x=hello"}) {
    auto r = ParseInputSpec(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_THAT(ParseInputSpec("x").status().message(), HasSubstr("NAME=FILE.npy"));
  EXPECT_THAT(ParseInputSpec("x=data.np").status().message(), HasSubstr("NAME=FILE.npy"));
  EXPECT_THAT(ParseInputSpec("x=[[1],[2,3]]").status().message(), HasSubstr("ragged"));
}

}  // namespace
}  // namespace mm
