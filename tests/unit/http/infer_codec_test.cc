#include "http/infer_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/bytes_tensor.h"

namespace mm {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<const std::string> Body(std::string s) {
  return std::make_shared<const std::string>(std::move(s));
}

StatusOr<DecodedInferRequest> DecodeJson(std::string json) {
  return DecodeInferRequest(Body(std::move(json)), std::nullopt);
}

// A single-input request with JSON data.
std::string OneInput(std::string_view datatype, std::string_view shape, std::string_view data) {
  return std::string(R"({"inputs":[{"name":"x","datatype":")") + std::string(datatype) +
         R"(","shape":)" + std::string(shape) + R"(,"data":)" + std::string(data) + "}]}";
}

template <typename T>
std::vector<T> Values(const Tensor& t) {
  std::vector<T> v(t.data.size() / sizeof(T));
  if (!v.empty()) std::memcpy(v.data(), t.data.data(), v.size() * sizeof(T));
  return v;
}

std::vector<std::string> BytesValues(const Tensor& t) {
  auto split = SplitBytesTensor(t.data, *ElementCount(t.shape, "t"), "t");
  EXPECT_TRUE(split.ok()) << split.status().ToString();
  std::vector<std::string> out;
  if (split.ok()) {
    for (auto s : *split) out.emplace_back(s);
  }
  return out;
}

Tensor DecodeOne(std::string_view datatype, std::string_view shape, std::string_view data) {
  auto r = DecodeJson(OneInput(datatype, shape, data));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return {};
  EXPECT_EQ(r->request.inputs.size(), 1u);
  return r->request.inputs[0];
}

// Expects decoding `json` to fail with INVALID_ARGUMENT and a message containing `part`.
void ExpectInvalid(StatusOr<DecodedInferRequest> r, std::string_view part) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  EXPECT_THAT(r.status().message(), HasSubstr(std::string(part)));
}

void ExpectInvalidJson(std::string json, std::string_view part) {
  ExpectInvalid(DecodeJson(std::move(json)), part);
}

// ------------------------------------------------------------ decoding JSON data

TEST(InferCodecDecodeTest, EveryNumericDatatypeFromJson) {
  EXPECT_EQ(Values<uint8_t>(DecodeOne("BOOL", "[3]", "[true,false,true]")),
            (std::vector<uint8_t>{1, 0, 1}));
  EXPECT_EQ(Values<uint8_t>(DecodeOne("UINT8", "[2]", "[0,255]")), (std::vector<uint8_t>{0, 255}));
  EXPECT_EQ(Values<uint16_t>(DecodeOne("UINT16", "[2]", "[1,65535]")),
            (std::vector<uint16_t>{1, 65535}));
  EXPECT_EQ(Values<uint32_t>(DecodeOne("UINT32", "[1]", "[4294967295]")),
            (std::vector<uint32_t>{4294967295u}));
  EXPECT_EQ(Values<uint64_t>(DecodeOne("UINT64", "[2]", "[18446744073709551615,7]")),
            (std::vector<uint64_t>{18446744073709551615ull, 7}));
  EXPECT_EQ(Values<int8_t>(DecodeOne("INT8", "[2]", "[-128,127]")),
            (std::vector<int8_t>{-128, 127}));
  EXPECT_EQ(Values<int16_t>(DecodeOne("INT16", "[2]", "[-32768,32767]")),
            (std::vector<int16_t>{-32768, 32767}));
  EXPECT_EQ(Values<int32_t>(DecodeOne("INT32", "[3]", "[-2147483648,2147483647,3.0]")),
            (std::vector<int32_t>{std::numeric_limits<int32_t>::min(), 2147483647, 3}));
  EXPECT_EQ(Values<int64_t>(DecodeOne("INT64", "[2]", "[-9223372036854775808,1e3]")),
            (std::vector<int64_t>{std::numeric_limits<int64_t>::min(), 1000}));
  EXPECT_EQ(Values<float>(DecodeOne("FP32", "[3]", "[0.1,-2,1e38]")),
            (std::vector<float>{0.1f, -2.0f, 1e38f}));
  EXPECT_EQ(Values<double>(DecodeOne("FP64", "[3]", "[0.1,18446744073709551615,-1e300]")),
            (std::vector<double>{0.1, 18446744073709551615.0, -1e300}));
  EXPECT_EQ(Values<uint16_t>(DecodeOne("FP16", "[3]", "[1,-2,0.5]")),
            (std::vector<uint16_t>{0x3C00, 0xC000, 0x3800}));
  EXPECT_EQ(Values<uint16_t>(DecodeOne("BF16", "[3]", "[1,-2,0.5]")),
            (std::vector<uint16_t>{0x3F80, 0xC000, 0x3F00}));
}

TEST(InferCodecDecodeTest, JsonTensorOwnsItsBytes) {
  auto body = Body(OneInput("INT32", "[2]", "[1,2]"));
  auto r = DecodeInferRequest(body, std::nullopt);
  ASSERT_TRUE(r.ok());
  const Tensor& t = r->request.inputs[0];
  EXPECT_NE(t.owner, nullptr);
  EXPECT_EQ(r->request.body, body);
  const auto* begin = reinterpret_cast<const std::byte*>(body->data());
  EXPECT_FALSE(t.data.data() >= begin && t.data.data() < begin + body->size());
  EXPECT_EQ(r->request.model_name, "");
}

TEST(InferCodecDecodeTest, Fp16RoundsToNearestEven) {
  auto fp16 = [](std::string_view v) {
    return Values<uint16_t>(DecodeOne("FP16", "[1]", "[" + std::string(v) + "]"))[0];
  };
  EXPECT_EQ(fp16("65504"), 0x7BFF);                  // max
  EXPECT_EQ(fp16("65519"), 0x7BFF);                  // below the tie with infinity
  EXPECT_EQ(fp16("1.00048828125"), 0x3C00);          // 1 + 2^-11: tie, to even (down)
  EXPECT_EQ(fp16("1.00146484375"), 0x3C02);          // 1 + 3*2^-11: tie, to even (up)
  EXPECT_EQ(fp16("1.0005"), 0x3C01);                 // just above the tie
  EXPECT_EQ(fp16("5.960464477539063e-8"), 0x0001);   // 2^-24, smallest subnormal
  EXPECT_EQ(fp16("2.9802322387695312e-8"), 0x0000);  // 2^-25: tie, to even (zero)
  EXPECT_EQ(fp16("2.9802323e-8"), 0x0001);           // just above half the smallest subnormal
  EXPECT_EQ(fp16("6.097555160522461e-5"), 0x03FF);   // largest subnormal
  EXPECT_EQ(fp16("6.103515625e-5"), 0x0400);         // smallest normal
  EXPECT_EQ(fp16("-0.0"), 0x8000);
  EXPECT_EQ(fp16("1e-30"), 0x0000);
  EXPECT_EQ(fp16("\"Infinity\""), 0x7C00);
  EXPECT_EQ(fp16("\"-Infinity\""), 0xFC00);
  EXPECT_EQ(fp16("\"NaN\"") & 0x7C00, 0x7C00);
  EXPECT_NE(fp16("\"NaN\"") & 0x03FF, 0);
  ExpectInvalidJson(OneInput("FP16", "[2]", "[1,65520]"),
                    "input 'x': element 1: 65520 is out of range for FP16");
  ExpectInvalidJson(OneInput("FP16", "[1]", "[1e10]"), "out of range for FP16");
}

TEST(InferCodecDecodeTest, Bf16RoundsToNearestEven) {
  auto bf16 = [](std::string_view v) {
    return Values<uint16_t>(DecodeOne("BF16", "[1]", "[" + std::string(v) + "]"))[0];
  };
  EXPECT_EQ(bf16("1.00390625"), 0x3F80);             // 1 + 2^-8: tie, to even
  EXPECT_EQ(bf16("1.01171875"), 0x3F82);             // 1 + 3*2^-8: tie, to even (up)
  EXPECT_EQ(bf16("3.3895313892515355e38"), 0x7F7F);  // max bf16
  EXPECT_EQ(bf16("1e-45"), 0x0000);
  EXPECT_EQ(bf16("9.183549615799121e-41"), 0x0001);  // 2^-133, smallest subnormal
  ExpectInvalidJson(OneInput("BF16", "[1]", "[3.4e38]"), "out of range for BF16");
}

TEST(InferCodecDecodeTest, FloatSpecialsAndRange) {
  auto v = Values<float>(DecodeOne("FP32", "[3]", R"(["NaN","Infinity","-Infinity"])"));
  EXPECT_TRUE(std::isnan(v[0]));
  EXPECT_EQ(v[1], std::numeric_limits<float>::infinity());
  EXPECT_EQ(v[2], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(Values<float>(DecodeOne("FP32", "[1]", "[3.4028235e38]"))[0],
            std::numeric_limits<float>::max());
  ExpectInvalidJson(OneInput("FP32", "[1]", "[1e39]"), "element 0: 1e+39 is out of range for FP32");
  ExpectInvalidJson(OneInput("FP32", "[1]", R"(["nan"])"), "expected a number");
  ExpectInvalidJson(OneInput("FP64", "[1]", "[null]"), "expected a number, got null");
}

TEST(InferCodecDecodeTest, IntegerRangeAndFractionErrors) {
  ExpectInvalidJson(OneInput("UINT8", "[2]", "[1,300]"),
                    "input 'x': element 1: 300 is out of range for UINT8");
  ExpectInvalidJson(OneInput("INT32", "[2]", "[1.5,2]"),
                    "input 'x': element 0: 1.5 is not an integer");
  ExpectInvalidJson(OneInput("UINT16", "[1]", "[-1]"), "-1 is out of range for UINT16");
  ExpectInvalidJson(OneInput("INT64", "[1]", "[9223372036854775808]"), "out of range for INT64");
  ExpectInvalidJson(OneInput("INT64", "[1]", "[1e19]"), "out of range for INT64");
  ExpectInvalidJson(OneInput("INT8", "[3]", R"([1,2,"3"])"),
                    "element 2: expected an integer, got a string");
  ExpectInvalidJson(OneInput("INT8", "[1]", "[true]"), "expected an integer, got a boolean");
  ExpectInvalidJson(OneInput("BOOL", "[1]", "[1]"), "expected true or false, got 1");
  ExpectInvalidJson(OneInput("FP32", "[1]", R"([{"a":1}])"), "expected a number, got an object");
}

TEST(InferCodecDecodeTest, NestedDataIsFlattenedRowMajor) {
  EXPECT_EQ(Values<int32_t>(DecodeOne("INT32", "[2,3]", "[[1,2,3],[4,5,6]]")),
            (std::vector<int32_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(Values<int32_t>(DecodeOne("INT32", "[2,2,1]", "[[[1],[2]],[[3],[4]]]")),
            (std::vector<int32_t>{1, 2, 3, 4}));
  EXPECT_EQ(Values<int32_t>(DecodeOne("INT32", "[2,0]", "[[],[]]")).size(), 0u);
  EXPECT_EQ(Values<int32_t>(DecodeOne("INT32", "[0]", "[]")).size(), 0u);
  EXPECT_EQ(Values<int32_t>(DecodeOne("INT32", "[]", "[7]")), (std::vector<int32_t>{7}));
  EXPECT_EQ(Values<int32_t>(DecodeOne("INT32", "[]", "7")), (std::vector<int32_t>{7}));
  for (std::string_view ragged :
       {"[[1,2],[3]]", "[[1,2],3]", "[1,[2,3]]", "[[[1]],[2]]", "[[],[1]]", "[[[]],[1]]"}) {
    ExpectInvalidJson(OneInput("INT32", "[3]", ragged), "input 'x': nested 'data' is ragged");
  }
  ExpectInvalidJson(OneInput("INT32", "[2,3]", "[[1,2],[3,4],[5]]"), "ragged");
}

// A flat array as long as the shape's count is converted in one pass; one
// that turns out to hold arrays is judged as any nest is (the same answers
// as before the one-pass path).
TEST(InferCodecDecodeTest, ArraysAsLongAsTheCountButNestedAreJudgedAsNests) {
  EXPECT_EQ(Values<int32_t>(DecodeOne("INT32", "[2]", "[[1],[2]]")), (std::vector<int32_t>{1, 2}));
  ExpectInvalidJson(OneInput("INT32", "[2]", "[1,[2]]"), "input 'x': nested 'data' is ragged");
  ExpectInvalidJson(OneInput("INT32", "[2]", "[[1,2],[3,4]]"),
                    "input 'x': expected 2 elements for shape [2], got 4");
  EXPECT_EQ(Values<float>(DecodeOne("FP32", "[2,2]", "[1,2,3,4]")),
            (std::vector<float>{1, 2, 3, 4}));
  ExpectInvalidJson(OneInput("FP32", "[3]", R"([1,2,"3"])"),
                    "input 'x': element 2: expected a number");
}

TEST(InferCodecDecodeTest, ElementCountMustMatchShape) {
  ExpectInvalidJson(OneInput("FP32", "[2,3]", "[1,2,3,4,5]"),
                    "input 'x': expected 6 elements for shape [2,3], got 5");
  ExpectInvalidJson(OneInput("FP32", "[2,3]", "[[1,2,3],[4,5,6],[7,8,9]]"),
                    "expected 6 elements for shape [2,3], got 9");
  ExpectInvalidJson(OneInput("FP32", "[1000000000000]", "[1]"), "got 1");
  ExpectInvalidJson(OneInput("BYTES", "[2]", R"(["a"])"), "expected 2 elements");
}

TEST(InferCodecDecodeTest, BytesFromJsonStrings) {
  Tensor t = DecodeOne("BYTES", "[2,2]", R"([["a",""],["caf\u00e9","x\"\n\u0000y"]])");
  EXPECT_EQ(BytesValues(t),
            (std::vector<std::string>{"a", "", "caf\xC3\xA9", std::string("x\"\n\0y", 5)}));
  EXPECT_EQ(t.data.size(), 4u * 4 + 1 + 0 + 5 + 5);
  ExpectInvalidJson(OneInput("BYTES", "[2]", R"(["a",1])"), "element 1: expected a string, got 1");
  ExpectInvalidJson(OneInput("BYTES", "[1]", "[\"\xC3\x28\"]"), "not valid UTF-8");
}

// ------------------------------------------------------------ binary data

TEST(InferCodecDecodeTest, BinaryInputIsAViewIntoTheBody) {
  const std::string json =
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}}]})";
  const float values[2] = {1.5f, -2.0f};
  std::string raw = json;
  raw.append(reinterpret_cast<const char*>(values), sizeof(values));
  auto body = Body(raw);
  auto r = DecodeInferRequest(body, json.size());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Tensor& t = r->request.inputs[0];
  EXPECT_EQ(reinterpret_cast<const char*>(t.data.data()), body->data() + json.size());
  EXPECT_EQ(t.data.size(), 8u);
  EXPECT_EQ(Values<float>(t), (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(r->request.body, body);
  EXPECT_EQ(t.owner, body);
}

TEST(InferCodecDecodeTest, MixedJsonAndBinaryInputsInOrder) {
  const std::string json =
      R"({"id":"r1","inputs":[)"
      R"({"name":"a","datatype":"INT16","shape":[3],"parameters":{"binary_data_size":6}},)"
      R"({"name":"b","datatype":"INT32","shape":[1],"data":[42]},)"
      R"({"name":"c","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":11}},)"
      R"({"name":"d","datatype":"BOOL","shape":[2],"parameters":{"binary_data_size":2}}]})";
  std::string raw = json;
  const int16_t a[3] = {1, -2, 3};
  raw.append(reinterpret_cast<const char*>(a), sizeof(a));
  AppendBytesElement("hey", raw);
  AppendBytesElement("", raw);
  raw.append("\x01\x00", 2);
  auto body = Body(raw);
  auto r = DecodeInferRequest(body, json.size());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const auto& in = r->request.inputs;
  ASSERT_EQ(in.size(), 4u);
  EXPECT_EQ(r->request.id, "r1");
  EXPECT_EQ(Values<int16_t>(in[0]), (std::vector<int16_t>{1, -2, 3}));
  EXPECT_EQ(Values<int32_t>(in[1]), (std::vector<int32_t>{42}));
  EXPECT_EQ(BytesValues(in[2]), (std::vector<std::string>{"hey", ""}));
  EXPECT_EQ(Values<uint8_t>(in[3]), (std::vector<uint8_t>{1, 0}));
  EXPECT_EQ(reinterpret_cast<const char*>(in[2].data.data()), body->data() + json.size() + 6);
}

std::string BinaryJson(std::string_view datatype, std::string_view shape, size_t size) {
  return std::string(R"({"inputs":[{"name":"x","datatype":")") + std::string(datatype) +
         R"(","shape":)" + std::string(shape) + R"(,"parameters":{"binary_data_size":)" +
         std::to_string(size) + "}}]}";
}

StatusOr<DecodedInferRequest> DecodeBinary(const std::string& json, std::string_view binary) {
  return DecodeInferRequest(Body(json + std::string(binary)), json.size());
}

TEST(InferCodecDecodeTest, BinarySizeErrors) {
  // Declared 8, body carries 4 / 12.
  ExpectInvalid(DecodeBinary(BinaryJson("FP32", "[2]", 8), "abcd"),
                "binary section has 4 bytes but inputs declare 8");
  ExpectInvalid(DecodeBinary(BinaryJson("FP32", "[2]", 8), "abcdefghijkl"),
                "binary section has 12 bytes but inputs declare 8");
  // Slice does not fit dtype x shape.
  ExpectInvalid(DecodeBinary(BinaryJson("FP32", "[2]", 6), "abcdef"),
                "input 'x': shape [2] of FP32 needs 8 bytes, got 6");
  ExpectInvalid(DecodeBinary(BinaryJson("INT64", "[2]", 8), "abcdefgh"), "needs 16 bytes, got 8");
  // BYTES layout is checked.
  ExpectInvalid(DecodeBinary(BinaryJson("BYTES", "[1]", 6), std::string("\x05\0\0\0ab", 6)),
                "input 'x': BYTES element 0 declares 5 bytes but only 2 remain");
  ExpectInvalid(DecodeBinary(BinaryJson("BYTES", "[2]", 5), std::string("\x01\0\0\0a", 5)),
                "holds 1 elements but its shape declares 2");
  // BOOL bytes must be 0 or 1.
  ExpectInvalid(DecodeBinary(BinaryJson("BOOL", "[2]", 2), std::string("\x01\x02", 2)),
                "BOOL element 1 is 2");
  // binary_data_size without the header.
  ExpectInvalid(DecodeJson(BinaryJson("FP32", "[1]", 4)),
                "binary section has 0 bytes but inputs declare 4 (no "
                "Inference-Header-Content-Length header was given)");
  // Trailing bytes after the header with no binary input.
  const std::string json = OneInput("INT32", "[1]", "[1]");
  ExpectInvalid(DecodeInferRequest(Body(json + "zz"), json.size()),
                "binary section has 2 bytes but inputs declare 0");
  // Huge declared sizes do not overflow the sum.
  ExpectInvalidJson(
      R"({"inputs":[)"
      R"({"name":"a","datatype":"UINT8","shape":[1],"parameters":{"binary_data_size":9223372036854775807}},)"
      R"({"name":"b","datatype":"UINT8","shape":[1],"parameters":{"binary_data_size":9223372036854775807}},)"
      R"({"name":"c","datatype":"UINT8","shape":[1],"parameters":{"binary_data_size":9223372036854775807}}]})",
      "binary section has 0 bytes");
  ExpectInvalidJson(
      BinaryJson("FP32", "[1]", 0).replace(BinaryJson("FP32", "[1]", 0).find("0}"), 1, "-4"),
      "'binary_data_size' must be given once, as a non-negative integer");
}

TEST(InferCodecDecodeTest, HeaderLengthErrors) {
  const std::string json = OneInput("INT32", "[1]", "[1]");
  ExpectInvalid(DecodeInferRequest(Body(json), json.size() + 1),
                "Inference-Header-Content-Length is " + std::to_string(json.size() + 1) +
                    " but the body has only " + std::to_string(json.size()) + " bytes");
  ExpectInvalid(DecodeInferRequest(Body(json), 0), "the request JSON is empty");
  ExpectInvalid(DecodeInferRequest(Body(json), json.size() - 1), "the request JSON is invalid");
  ExpectInvalid(DecodeInferRequest(nullptr, std::nullopt), "no body");
  // Exactly the header, no binary section: fine.
  EXPECT_TRUE(DecodeInferRequest(Body(json), json.size()).ok());
}

TEST(InferCodecDecodeTest, ParsesInPlaceOrCopiesTheSame) {
  const std::string json = OneInput("INT32", "[2,2]", "[[1,2],[3,4]]");
  auto padded = std::make_shared<std::string>();
  padded->reserve(json.size() + kRequestBodyPadding);
  padded->assign(json);
  auto in_place = DecodeInferRequest(padded, std::nullopt);
  auto copied = DecodeInferRequest(Body(json), std::nullopt);
  ASSERT_TRUE(in_place.ok() && copied.ok());
  EXPECT_EQ(Values<int32_t>(in_place->request.inputs[0]),
            Values<int32_t>(copied->request.inputs[0]));
}

// ------------------------------------------------------------ malformed requests

TEST(InferCodecDecodeTest, StructuralErrors) {
  ExpectInvalidJson("{", "the request JSON is invalid");
  ExpectInvalidJson("[]", "the request must be a JSON object, got an array");
  ExpectInvalidJson("{\"inputs\":[], \"id\":\"\xFF\"}", "not valid UTF-8");
  ExpectInvalidJson("{}", "the request has no 'inputs'");
  ExpectInvalidJson(R"({"inputs":{}})", "'inputs' must be an array, got an object");
  ExpectInvalidJson(R"({"inputs":[1]})", "inputs[0] must be an object, got a number");
  ExpectInvalidJson(R"({"inputs":[],"inputs":[]})", "the request has 'inputs' twice");
  ExpectInvalidJson(R"({"id":5,"inputs":[]})", "'id' must be a string, got a number");
  ExpectInvalidJson(R"({"inputs":[{"datatype":"FP32","shape":[1],"data":[1]}]})",
                    "inputs[0] has no 'name'");
  ExpectInvalidJson(R"({"inputs":[{"name":7,"datatype":"FP32","shape":[1],"data":[1]}]})",
                    "inputs[0] 'name' must be a string, got a number");
  ExpectInvalidJson(R"({"inputs":[{"name":"x","shape":[1],"data":[1]}]})",
                    "input 'x' has no 'datatype'");
  ExpectInvalidJson(R"({"inputs":[{"name":"x","datatype":"FP32","data":[1]}]})",
                    "input 'x' has no 'shape'");
  ExpectInvalidJson(OneInput("FLOAT", "[1]", "[1]"), "input 'x': unknown datatype 'FLOAT'");
  ExpectInvalidJson(OneInput("FP32", "[2,-1]", "[1]"), "input 'x': shape [2,-1] has a negative");
  ExpectInvalidJson(OneInput("FP32", "[4294967296,4294967296]", "[1]"),
                    "input 'x': shape [4294967296,4294967296] has more elements than fit");
  ExpectInvalidJson(OneInput("FP32", "\"2\"", "[1]"), "input 'x' 'shape' must be an array");
  ExpectInvalidJson(OneInput("FP32", "[1.5]", "[1]"), "'shape' must hold integers");
  ExpectInvalidJson(OneInput("FP32", "[18446744073709551615]", "[1]"),
                    "'shape' must hold integers that fit int64, got 18446744073709551615");
  ExpectInvalidJson(
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],"parameters":{"binary_data_size":4}}]})",
      "input 'x' has both 'data' and 'binary_data_size'");
  ExpectInvalidJson(
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1]}]})",
      "input 'x' has neither 'data', 'binary_data_size' nor a 'shared_memory_region' parameter");
  ExpectInvalidJson(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]},)"
                    R"({"name":"x","datatype":"FP32","shape":[1],"data":[1]}]})",
                    "input 'x' appears twice");
  ExpectInvalidJson(
      R"({"inputs":[{"name":"x","name":"y","datatype":"FP32","shape":[1],"data":[1]}]})",
      "inputs[0] has 'name' twice");
  ExpectInvalidJson(OneInput("FP32", "[1]", R"(["a"])"), "input 'x': element 0: expected a number");
  ExpectInvalidJson(
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],"parameters":[]}]})",
      "input 'x' 'parameters' must be an object");
}

TEST(InferCodecDecodeTest, ParametersAndOutputs) {
  auto r = DecodeJson(R"({"id":"abc","parameters":{"binary_data_output":true,"priority":2,)"
                      R"("timeout":1.5,"tag":"t","flag":false},"inputs":[],)"
                      R"("outputs":[{"name":"a"},{"name":"b","parameters":{"binary_data":false,)"
                      R"("class_count":0,"custom":"c"}}]})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const InferRequest& q = r->request;
  EXPECT_EQ(q.id, "abc");
  EXPECT_EQ(q.parameters.count("binary_data_output"), 0u);
  EXPECT_EQ(std::get<int64_t>(q.parameters.at("priority")), 2);
  EXPECT_EQ(std::get<double>(q.parameters.at("timeout")), 1.5);
  EXPECT_EQ(std::get<std::string>(q.parameters.at("tag")), "t");
  EXPECT_EQ(std::get<bool>(q.parameters.at("flag")), false);
  ASSERT_EQ(q.outputs.size(), 2u);
  EXPECT_EQ(q.outputs[0].name, "a");
  EXPECT_EQ(q.outputs[1].name, "b");
  EXPECT_EQ(q.outputs[1].parameters.size(), 1u);
  EXPECT_EQ(std::get<std::string>(q.outputs[1].parameters.at("custom")), "c");
  EXPECT_TRUE(r->format.binary_data_output);
  EXPECT_TRUE(r->format.IsBinary("a"));
  EXPECT_FALSE(r->format.IsBinary("b"));
  EXPECT_TRUE(r->format.IsBinary("other"));

  ExpectInvalidJson(R"({"parameters":{"binary_data_output":1},"inputs":[]})",
                    "'binary_data_output' must be a boolean");
  ExpectInvalidJson(R"({"parameters":{"p":null},"inputs":[]})",
                    "request 'parameters' 'p' must be a boolean, number or string, got null");
  ExpectInvalidJson(R"({"parameters":{"p":1,"p":2},"inputs":[]})", "has 'p' twice");
  ExpectInvalidJson(R"({"parameters":[],"inputs":[]})", "must be an object");
  ExpectInvalidJson(R"({"inputs":[],"outputs":[{"name":"a"},{"name":"a"}]})",
                    "output 'a' is requested twice");
  ExpectInvalidJson(R"({"inputs":[],"outputs":[{}]})", "outputs[0] has no 'name'");
  ExpectInvalidJson(R"({"inputs":[],"outputs":[{"name":"a","parameters":{"binary_data":"yes"}}]})",
                    "output 'a': 'binary_data' must be a boolean");
  auto cc = DecodeJson(R"({"inputs":[],"outputs":[{"name":"a","parameters":{"class_count":3}}]})");
  ASSERT_FALSE(cc.ok());
  EXPECT_EQ(cc.status().code(), StatusCode::kUnimplemented);
  EXPECT_THAT(cc.status().message(), HasSubstr("class_count"));
}

// ------------------------------------------------------------ encoding

template <typename T>
Tensor MakeTensor(std::string name, DataType dt, Shape shape, std::vector<T> values) {
  Tensor t;
  t.name = std::move(name);
  t.dtype = dt;
  t.shape = std::move(shape);
  auto buf = std::make_shared<ByteBuffer>(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(buf->bytes.get(), values.data(), buf->size);
  AttachBuffer(t, std::move(buf));
  return t;
}

Tensor MakeBytes(std::string name, Shape shape, const std::vector<std::string>& values) {
  Tensor t;
  t.name = std::move(name);
  t.dtype = DataType::kBytes;
  t.shape = std::move(shape);
  auto s = std::make_shared<std::string>();
  for (const auto& v : values) AppendBytesElement(v, *s);
  t.data = std::as_bytes(std::span<const char>(s->data(), s->size()));
  t.owner = std::move(s);
  return t;
}

TEST(InferCodecEncodeTest, JsonResponse) {
  InferResponse r;
  r.model_name = "m";
  r.model_version = "3";
  r.id = "req\"1";
  r.parameters["sequence_end"] = true;
  r.outputs.push_back(MakeTensor<float>("y", DataType::kFp32, {2, 2}, {0.1f, -1.0f, 2.5f, 1e30f}));
  r.outputs.push_back(MakeTensor<uint8_t>("b", DataType::kBool, {2}, {1, 0}));
  r.outputs.push_back(MakeBytes("s", {2}, {"a\"b", "\xC3\xA9"}));
  std::string json;
  std::vector<std::span<const std::byte>> chunks;
  ASSERT_TRUE(EncodeInferResponse(r, {}, json, chunks).ok());
  EXPECT_EQ(
      json,
      R"({"model_name":"m","model_version":"3","id":"req\"1","parameters":{"sequence_end":true},)"
      R"("outputs":[{"name":"y","datatype":"FP32","shape":[2,2],"data":[0.1,-1,2.5,1e+30]},)"
      R"({"name":"b","datatype":"BOOL","shape":[2],"data":[true,false]},)"
      "{\"name\":\"s\",\"datatype\":\"BYTES\",\"shape\":[2],\"data\":[\"a\\\"b\",\"\xC3\xA9\"]}]}");
  EXPECT_TRUE(chunks.empty());
}

TEST(InferCodecEncodeTest, BinaryOutputsAreChunksInOrder) {
  InferResponse r;
  r.model_name = "m";
  r.model_version = "1";
  r.outputs.push_back(MakeTensor<int32_t>("a", DataType::kInt32, {2}, {1, 2}));
  r.outputs.push_back(MakeTensor<int64_t>("b", DataType::kInt64, {1}, {7}));
  r.outputs.push_back(MakeBytes("c", {1}, {"\xFF\xFE"}));  // not UTF-8: fine in binary
  HttpResponseFormat fmt;
  fmt.binary_data_output = true;
  fmt.per_output_binary = {{"b", false}};
  std::string json = "stale";
  std::vector<std::span<const std::byte>> chunks(3);
  ASSERT_TRUE(EncodeInferResponse(r, fmt, json, chunks).ok());
  EXPECT_EQ(json,
            R"({"model_name":"m","model_version":"1","outputs":[)"
            R"({"name":"a","datatype":"INT32","shape":[2],"parameters":{"binary_data_size":8}},)"
            R"({"name":"b","datatype":"INT64","shape":[1],"data":[7]},)"
            R"({"name":"c","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":6}}]})");
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0].data(), r.outputs[0].data.data());  // not copied
  EXPECT_EQ(chunks[0].size(), 8u);
  EXPECT_EQ(chunks[1].data(), r.outputs[2].data.data());
}

TEST(InferCodecEncodeTest, NanAndInfinityStayValidJson) {
  InferResponse r;
  const float inf = std::numeric_limits<float>::infinity();
  r.outputs.push_back(MakeTensor<float>("f", DataType::kFp32, {3}, {std::nanf(""), inf, -inf}));
  r.outputs.push_back(MakeTensor<uint16_t>("h", DataType::kFp16, {3}, {0x7E00, 0x7C00, 0x3555}));
  r.outputs.push_back(MakeTensor<uint16_t>("g", DataType::kBf16, {2}, {0x7FC0, 0xFF80}));
  std::string json;
  std::vector<std::span<const std::byte>> chunks;
  ASSERT_TRUE(EncodeInferResponse(r, {}, json, chunks).ok());
  EXPECT_THAT(json, HasSubstr(R"("data":["NaN","Infinity","-Infinity"])"));
  EXPECT_THAT(json, HasSubstr(R"("data":["NaN","Infinity",0.33325195])"));
  EXPECT_THAT(json, HasSubstr(R"("data":["NaN","-Infinity"])"));
  simdjson::dom::parser parser;
  EXPECT_EQ(parser.parse(json).error(), simdjson::SUCCESS);
}

TEST(InferCodecEncodeTest, Errors) {
  std::string json;
  std::vector<std::span<const std::byte>> chunks;
  InferResponse r;
  r.outputs.push_back(MakeBytes("s", {2}, {"ok", "\xC3\x28"}));
  Status s = EncodeInferResponse(r, {}, json, chunks);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("output 's': BYTES element 1 is not valid UTF-8"));
  EXPECT_TRUE(json.empty());

  InferResponse bad_size;
  bad_size.outputs.push_back(MakeTensor<float>("y", DataType::kFp32, {3}, {1, 2}));
  s = EncodeInferResponse(bad_size, {}, json, chunks);
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_THAT(s.message(), HasSubstr("output 'y' holds 8 bytes, not 3 FP32 elements"));

  InferResponse bad_bytes;
  bad_bytes.outputs.push_back(MakeBytes("s", {3}, {"a"}));
  s = EncodeInferResponse(bad_bytes, {}, json, chunks);
  EXPECT_EQ(s.code(), StatusCode::kInternal);

  InferResponse bad_type;
  bad_type.outputs.push_back(MakeTensor<float>("y", static_cast<DataType>(99), {1}, {1}));
  EXPECT_EQ(EncodeInferResponse(bad_type, {}, json, chunks).code(), StatusCode::kInternal);

  InferResponse bad_shape;
  bad_shape.outputs.push_back(MakeTensor<float>("y", DataType::kFp32, {-1}, {1}));
  EXPECT_EQ(EncodeInferResponse(bad_shape, {}, json, chunks).code(), StatusCode::kInternal);
}

TEST(InferCodecEncodeTest, ErrorBody) {
  std::string json = "old";
  EncodeError("input 'x': bad \"value\"\n", json);
  EXPECT_EQ(json, R"({"error":"input 'x': bad \"value\"\n"})");
}

// Encodes `outputs` as a response, turns the response into a request (its
// "outputs" become "inputs"; the binary chunks follow), decodes it, and checks
// every tensor comes back bit for bit.
void ExpectRoundTrip(const std::vector<Tensor>& outputs, bool binary) {
  InferResponse r;
  r.model_name = "m";
  r.outputs = outputs;
  HttpResponseFormat fmt;
  fmt.binary_data_output = binary;
  std::string json;
  std::vector<std::span<const std::byte>> chunks;
  Status s = EncodeInferResponse(r, fmt, json, chunks);
  ASSERT_TRUE(s.ok()) << s.ToString();
  const size_t at = json.find("\"outputs\":");
  ASSERT_NE(at, std::string::npos);
  json.replace(at, 10, "\"inputs\":");
  std::string body = json;
  for (auto c : chunks) body.append(reinterpret_cast<const char*>(c.data()), c.size());
  auto d =
      DecodeInferRequest(Body(body), binary ? std::optional<size_t>(json.size()) : std::nullopt);
  ASSERT_TRUE(d.ok()) << d.status().ToString() << "\n" << json;
  ASSERT_EQ(d->request.inputs.size(), outputs.size());
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& got = d->request.inputs[i];
    const Tensor& want = outputs[i];
    EXPECT_EQ(got.name, want.name);
    EXPECT_EQ(got.dtype, want.dtype);
    EXPECT_EQ(got.shape, want.shape);
    ASSERT_EQ(got.data.size(), want.data.size()) << want.name;
    EXPECT_EQ(std::memcmp(got.data.data(), want.data.data(), want.data.size()), 0) << want.name;
  }
}

std::vector<Tensor> EveryDatatype() {
  std::vector<Tensor> t;
  t.push_back(MakeTensor<uint8_t>("bool", DataType::kBool, {2}, {1, 0}));
  t.push_back(MakeTensor<uint8_t>("u8", DataType::kUint8, {3}, {0, 128, 255}));
  t.push_back(MakeTensor<uint16_t>("u16", DataType::kUint16, {2}, {0, 65535}));
  t.push_back(MakeTensor<uint32_t>("u32", DataType::kUint32, {2}, {0, 4294967295u}));
  t.push_back(MakeTensor<uint64_t>("u64", DataType::kUint64, {2}, {0, ~uint64_t{0}}));
  t.push_back(MakeTensor<int8_t>("i8", DataType::kInt8, {2}, {-128, 127}));
  t.push_back(MakeTensor<int16_t>("i16", DataType::kInt16, {2}, {-32768, 32767}));
  t.push_back(MakeTensor<int32_t>("i32", DataType::kInt32, {1, 2},
                                  {std::numeric_limits<int32_t>::min(), 7}));
  t.push_back(MakeTensor<int64_t>(
      "i64", DataType::kInt64, {2},
      {std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()}));
  t.push_back(MakeTensor<uint16_t>("fp16", DataType::kFp16, {6},
                                   {0x3C00, 0x0001, 0x7BFF, 0x8000, 0x3555, 0xFC00}));
  t.push_back(
      MakeTensor<uint16_t>("bf16", DataType::kBf16, {5}, {0x3F80, 0x0001, 0x7F7F, 0x8000, 0x7F80}));
  t.push_back(MakeTensor<float>("fp32", DataType::kFp32, {2, 3},
                                {0.1f, -1e-45f, 3.4028235e38f, 1.17549435e-38f, 16777217.0f,
                                 -std::numeric_limits<float>::infinity()}));
  t.push_back(MakeTensor<double>("fp64", DataType::kFp64, {4},
                                 {0.1, 5e-324, 1.7976931348623157e308, 1.0 / 3}));
  t.push_back(MakeBytes("bytes", {3}, {"", "caf\xC3\xA9", std::string("\"\\\n\0", 4)}));
  t.push_back(MakeTensor<float>("empty", DataType::kFp32, {0, 4}, {}));
  t.push_back(MakeTensor<int32_t>("scalar", DataType::kInt32, {}, {5}));
  return t;
}

TEST(InferCodecRoundTripTest, EveryDatatypeAsJson) { ExpectRoundTrip(EveryDatatype(), false); }

TEST(InferCodecRoundTripTest, EveryDatatypeAsBinary) { ExpectRoundTrip(EveryDatatype(), true); }

}  // namespace
}  // namespace mm
