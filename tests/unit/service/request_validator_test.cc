#include "service/request_validator.h"

#include <gtest/gtest.h>

#include <cstring>

#include "core/bytes_tensor.h"

namespace mm {
namespace {

inference::ModelConfig Config(int max_batch) {
  inference::ModelConfig c;
  c.set_name("m");
  c.set_max_batch_size(max_batch);
  auto* x = c.add_input();
  x->set_name("x");
  x->set_data_type(inference::TYPE_FP32);
  x->add_dims(-1);
  x->add_dims(4);
  auto* s = c.add_input();
  s->set_name("s");
  s->set_data_type(inference::TYPE_STRING);
  s->add_dims(-1);
  s->set_optional(true);
  auto* y = c.add_output();
  y->set_name("y");
  y->set_data_type(inference::TYPE_FP32);
  y->add_dims(-1);
  return c;
}

struct Request {
  InferRequest req;
  std::vector<std::vector<std::byte>> buffers;
  Request& Add(std::string name, DataType t, Shape shape, size_t bytes) {
    buffers.emplace_back(bytes);
    req.inputs.push_back(Tensor{std::move(name), t, std::move(shape), buffers.back(), nullptr, {}});
    return *this;
  }
};

TEST(RequestValidatorTest, AcceptsAGoodRequest) {
  Request r;
  r.Add("x", DataType::kFp32, {3, 4}, 48);
  EXPECT_TRUE(ValidateRequest(Config(0), r.req).ok());
  Request b;
  b.Add("x", DataType::kFp32, {2, 3, 4}, 96);
  EXPECT_TRUE(ValidateRequest(Config(8), b.req).ok());
}

TEST(RequestValidatorTest, NamesDtypeAndShapeOnMismatch) {
  Request r;
  r.Add("x", DataType::kInt64, {2, 3}, 48);
  Status s = ValidateRequest(Config(0), r.req);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "input 'x': expected FP32 [?,4], got INT64 [2,3]");
}

TEST(RequestValidatorTest, NamesTheOneDimThatDiffers) {
  // A row of 3 features for a model of 4 (a tree model's wrong feature count).
  Request r;
  r.Add("x", DataType::kFp32, {2, 3}, 24);
  Status s = ValidateRequest(Config(0), r.req);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "input 'x': expected FP32 [?,4], got FP32 [2,3]: dim 1 is 3, the model "
            "takes 4");
  // Another rank: the shapes say it.
  Request rank;
  rank.Add("x", DataType::kFp32, {12}, 48);
  EXPECT_EQ(ValidateRequest(Config(0), rank.req).message(),
            "input 'x': expected FP32 [?,4], got FP32 [12]");
}

TEST(RequestValidatorTest, RejectsWrongByteSize) {
  Request r;
  r.Add("x", DataType::kFp32, {3, 4}, 47);
  Status s = ValidateRequest(Config(0), r.req);
  EXPECT_NE(s.message().find("needs 48 bytes, got 47"), std::string::npos) << s.message();
}

TEST(RequestValidatorTest, RejectsUnknownMissingAndDuplicateInputs) {
  Request unknown;
  unknown.Add("x", DataType::kFp32, {1, 4}, 16).Add("zz", DataType::kFp32, {1}, 4);
  EXPECT_NE(ValidateRequest(Config(0), unknown.req).message().find("unknown input 'zz'"),
            std::string::npos);
  Request missing;
  EXPECT_NE(ValidateRequest(Config(0), missing.req).message().find("missing input 'x'"),
            std::string::npos);
  Request dup;
  dup.Add("x", DataType::kFp32, {1, 4}, 16).Add("x", DataType::kFp32, {1, 4}, 16);
  EXPECT_NE(ValidateRequest(Config(0), dup.req).message().find("more than once"),
            std::string::npos);
}

TEST(RequestValidatorTest, BatchLimitsAndAgreement) {
  Request big;
  big.Add("x", DataType::kFp32, {9, 3, 4}, 9 * 48);
  EXPECT_NE(ValidateRequest(Config(8), big.req).message().find("batch size 9"), std::string::npos);
  Request zero;
  zero.Add("x", DataType::kFp32, {0, 3, 4}, 0);
  EXPECT_FALSE(ValidateRequest(Config(8), zero.req).ok());
  Request no_batch_dim;
  no_batch_dim.Add("x", DataType::kFp32, {3, 4}, 48);
  EXPECT_FALSE(ValidateRequest(Config(8), no_batch_dim.req).ok());
  std::string strings;
  AppendBytesElement("a", strings);
  AppendBytesElement("b", strings);
  Request disagree;
  disagree.Add("x", DataType::kFp32, {1, 2, 4}, 32);
  disagree.Add("s", DataType::kBytes, {2, 1}, strings.size());
  std::memcpy(disagree.buffers.back().data(), strings.data(), strings.size());
  EXPECT_NE(ValidateRequest(Config(8), disagree.req).message().find("disagree"), std::string::npos);
}

TEST(RequestValidatorTest, BytesLayoutIsChecked) {
  std::string strings;
  AppendBytesElement("hello", strings);
  Request r;
  r.Add("x", DataType::kFp32, {1, 4}, 16);
  r.Add("s", DataType::kBytes, {2}, strings.size());
  std::memcpy(r.buffers.back().data(), strings.data(), strings.size());
  EXPECT_FALSE(ValidateRequest(Config(0), r.req).ok());
  r.req.inputs.back().shape = {1};
  EXPECT_TRUE(ValidateRequest(Config(0), r.req).ok());
}

TEST(RequestValidatorTest, RequestedOutputsMustExistOnce) {
  Request r;
  r.Add("x", DataType::kFp32, {1, 4}, 16);
  r.req.outputs.push_back({"nope", {}});
  EXPECT_NE(ValidateRequest(Config(0), r.req).message().find("unknown output 'nope'"),
            std::string::npos);
  r.req.outputs = {{"y", {}}, {"y", {}}};
  EXPECT_FALSE(ValidateRequest(Config(0), r.req).ok());
  r.req.outputs = {{"y", {}}};
  EXPECT_TRUE(ValidateRequest(Config(0), r.req).ok());
}

// Whatever door the bytes came through (shared memory has no codec), BOOL
// elements are 0 or 1, with the words both codecs use (core/tensor_data.h).
TEST(RequestValidatorTest, BoolBytesAreZeroOrOneWhereverTheyCameFrom) {
  inference::ModelConfig c;
  c.set_name("b");
  auto* in = c.add_input();
  in->set_name("flag");
  in->set_data_type(inference::TYPE_BOOL);
  in->add_dims(-1);
  Request good;
  good.Add("flag", DataType::kBool, {3}, 3);
  good.buffers.back()[1] = std::byte{1};
  EXPECT_TRUE(ValidateRequest(c, good.req).ok());
  Request bad;
  bad.Add("flag", DataType::kBool, {3}, 3);
  bad.buffers.back()[2] = std::byte{2};
  Status s = ValidateRequest(c, bad.req);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "input 'flag': BOOL element 2 is 2, expected 0 or 1");
}

}  // namespace
}  // namespace mm
