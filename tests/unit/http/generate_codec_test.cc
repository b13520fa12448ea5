#include "http/generate_codec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "core/bytes_tensor.h"

namespace mm {
namespace {

std::vector<TensorMetadata> Inputs() {
  return {{"IN", DataType::kInt32, {-1}},
          {"BATCHED", DataType::kFp32, {-1, -1}},
          {"TEXT", DataType::kBytes, {1}},
          {"FLAG", DataType::kBool, {1}},
          {"PAIR", DataType::kUint8, {2}}};
}

const Tensor* Find(const InferRequest& r, std::string_view name) {
  for (const Tensor& t : r.inputs) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

TEST(GenerateCodecTest, KeysNamingInputsBecomeTensorsOthersParameters) {
  auto inputs = Inputs();
  auto r = DecodeGenerateRequest(
      R"({"IN":[1,2,3],"BATCHED":[[1.5,2]],"TEXT":"hi","FLAG":true,"PAIR":[7,8],)"
      R"("temperature":0.5,"max_tokens":10,"parameters":{"stream":false,"name":"x"}})",
      inputs);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const Tensor* in = Find(*r, "IN");
  ASSERT_NE(in, nullptr);
  EXPECT_EQ(in->shape, Shape({3}));
  EXPECT_EQ(in->dtype, DataType::kInt32);
  EXPECT_EQ(in->as<int32_t>()[2], 3);
  const Tensor* batched = Find(*r, "BATCHED");
  EXPECT_EQ(batched->shape, Shape({1, 2}));
  EXPECT_FLOAT_EQ(batched->as<float>()[0], 1.5f);
  const Tensor* text = Find(*r, "TEXT");
  EXPECT_EQ(text->shape, Shape({1}));
  auto elements = SplitBytesTensor(text->data, 1, "TEXT");
  ASSERT_TRUE(elements.ok());
  EXPECT_EQ((*elements)[0], "hi");
  EXPECT_EQ(Find(*r, "FLAG")->as<uint8_t>()[0], 1);
  EXPECT_EQ(Find(*r, "PAIR")->shape, Shape({2}));
  auto special = DecodeGenerateRequest(R"({"BATCHED":["NaN","-Infinity"]})", inputs);
  ASSERT_TRUE(special.ok());
  EXPECT_TRUE(std::isnan(Find(*special, "BATCHED")->as<float>()[0]));
  EXPECT_EQ(std::get<double>(r->parameters.at("temperature")), 0.5);
  EXPECT_EQ(std::get<int64_t>(r->parameters.at("max_tokens")), 10);
  EXPECT_EQ(std::get<bool>(r->parameters.at("stream")), false);
  EXPECT_EQ(std::get<std::string>(r->parameters.at("name")), "x");
}

TEST(GenerateCodecTest, Errors) {
  auto inputs = Inputs();
  auto error = [&](std::string_view body) {
    auto r = DecodeGenerateRequest(body, inputs);
    EXPECT_FALSE(r.ok()) << body;
    return r.ok() ? std::string() : r.status().message();
  };
  EXPECT_NE(error("{nope").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error("[1]").find("a JSON object"), std::string::npos);
  EXPECT_NE(error(R"({"IN":["a"]})").find("INT32"), std::string::npos);
  EXPECT_NE(error(R"({"IN":[3000000000]})").find("INT32"), std::string::npos);
  EXPECT_NE(error(R"({"PAIR":[1,2,3]})").find("do not fit"), std::string::npos);
  EXPECT_NE(error(R"({"extra":[1]})").find("'extra'"), std::string::npos);
  EXPECT_NE(error(R"({"parameters":[1]})").find("an object"), std::string::npos);
  EXPECT_NE(error(R"({"a":1,"parameters":{"a":2}})").find("twice"), std::string::npos);
  EXPECT_NE(error(R"({"TEXT":1})").find("BYTES"), std::string::npos);
  EXPECT_NE(error(R"({"BATCHED":[1e300]})").find("FP32"), std::string::npos);
  std::string deep(100, '[');
  EXPECT_NE(error(R"({"IN":)" + deep + std::string(100, ']') + "}").find("deeper"),
            std::string::npos);
}

TEST(GenerateCodecTest, FloatMaxInItsShortestFormIsNotAnOverflow) {
  // FLT_MAX is written "3.4028235e+38", a little over FLT_MAX as a double:
  // it rounds back to FLT_MAX, so a response reads back as a request.
  auto inputs = Inputs();
  auto r = DecodeGenerateRequest(R"({"BATCHED":[3.4028235e+38,-3.4028235e+38]})", inputs);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(Find(*r, "BATCHED")->as<float>()[0], std::numeric_limits<float>::max());
  EXPECT_EQ(Find(*r, "BATCHED")->as<float>()[1], -std::numeric_limits<float>::max());
  // Past half an ulp beyond it, the value would round to infinity: refused.
  EXPECT_FALSE(DecodeGenerateRequest(R"({"BATCHED":[3.4028236e+38]})", inputs).ok());
}

TEST(GenerateCodecTest, OneElementIsAScalarSeveralAFlatArray) {
  InferResponse r;
  r.model_name = "m";
  r.model_version = "2";
  static const int32_t kOne[] = {7};
  static const float kMany[] = {1.5f, -2.0f, 0.25f, 4.0f};
  Tensor one{.name = "ONE", .dtype = DataType::kInt32, .shape = {1, 1}};
  one.data = std::as_bytes(std::span(kOne));
  Tensor many{.name = "MANY", .dtype = DataType::kFp32, .shape = {2, 2}};
  many.data = std::as_bytes(std::span(kMany));
  std::string text;
  AppendBytesElement("a\"b", text);
  Tensor bytes{.name = "TEXT", .dtype = DataType::kBytes, .shape = {1}};
  bytes.data = std::as_bytes(std::span(text.data(), text.size()));
  r.outputs = {one, many, bytes};
  std::string out;
  ASSERT_TRUE(EncodeGenerateResponse(r, out).ok());
  EXPECT_EQ(out, R"({"model_name":"m","model_version":"2","ONE":7,"MANY":[1.5,-2,0.25,4],)"
                 R"("TEXT":"a\"b"})");
}

TEST(GenerateCodecTest, AnOutputWhoseBytesDoNotMatchIsAnError) {
  InferResponse r;
  static const int32_t kTwo[] = {1, 2};
  Tensor t{.name = "T", .dtype = DataType::kInt32, .shape = {3}};
  t.data = std::as_bytes(std::span(kTwo));
  r.outputs = {t};
  std::string out;
  EXPECT_EQ(EncodeGenerateResponse(r, out).code(), StatusCode::kInvalidArgument);
}

TEST(GenerateCodecTest, EventsAndErrors) {
  EXPECT_EQ(SseEvent(R"({"a":1})"), "data: {\"a\":1}\n\n");
  EXPECT_EQ(GenerateErrorJson(InvalidArgument("bad \"x\"")), R"({"error":"bad \"x\""})");
}

}  // namespace
}  // namespace mm
