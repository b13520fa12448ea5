#include "rpc/grpc_codec.h"

#include <gtest/gtest.h>

#include <cstring>

#include "core/bytes_tensor.h"
#include "http/infer_codec.h"

namespace mm {
namespace {

inference::ModelInferRequest::InferInputTensor* AddInput(inference::ModelInferRequest& msg,
                                                         const std::string& name,
                                                         const std::string& dtype,
                                                         std::vector<int64_t> shape) {
  auto* in = msg.add_inputs();
  in->set_name(name);
  in->set_datatype(dtype);
  for (int64_t d : shape) in->add_shape(d);
  return in;
}

TEST(GrpcCodecTest, TypedContentsAreViewsOrNarrowedCopies) {
  inference::ModelInferRequest msg;
  msg.set_model_name("m");
  msg.set_id("7");
  auto* f = AddInput(msg, "f", "FP32", {2});
  f->mutable_contents()->add_fp32_contents(1.5f);
  f->mutable_contents()->add_fp32_contents(-2.0f);
  auto* i8 = AddInput(msg, "i8", "INT8", {3});
  for (int v : {-128, 0, 127}) i8->mutable_contents()->add_int_contents(v);
  auto* b = AddInput(msg, "b", "BOOL", {2});
  b->mutable_contents()->add_bool_contents(true);
  b->mutable_contents()->add_bool_contents(false);
  auto* s = AddInput(msg, "s", "BYTES", {2});
  s->mutable_contents()->add_bytes_contents("ab");
  s->mutable_contents()->add_bytes_contents("");
  auto decoded = DecodeGrpcInferRequest(msg);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  const InferRequest& r = *decoded;
  EXPECT_EQ(r.model_name, "m");
  EXPECT_EQ(r.id, "7");
  ASSERT_EQ(r.inputs.size(), 4u);
  // FP32 is a view into the message.
  EXPECT_EQ(static_cast<const void*>(r.inputs[0].data.data()),
            static_cast<const void*>(f->contents().fp32_contents().data()));
  EXPECT_EQ(r.inputs[0].as<float>()[1], -2.0f);
  ASSERT_EQ(r.inputs[1].data.size(), 3u);
  EXPECT_EQ(r.inputs[1].as<int8_t>()[0], -128);
  EXPECT_EQ(r.inputs[1].as<int8_t>()[2], 127);
  EXPECT_EQ(r.inputs[2].as<uint8_t>()[0], 1);
  EXPECT_EQ(r.inputs[2].as<uint8_t>()[1], 0);
  auto parts = SplitBytesTensor(r.inputs[3].data, 2, "s");
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ((*parts)[0], "ab");
}

TEST(GrpcCodecTest, RawContentsAreViews) {
  inference::ModelInferRequest msg;
  AddInput(msg, "x", "FP16", {2});
  msg.add_raw_input_contents(std::string(4, '\1'));
  auto decoded = DecodeGrpcInferRequest(msg);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(static_cast<const void*>(decoded->inputs[0].data.data()),
            static_cast<const void*>(msg.raw_input_contents(0).data()));
}

TEST(GrpcCodecTest, RejectsInconsistentRequests) {
  auto error = [](const inference::ModelInferRequest& msg) {
    auto d = DecodeGrpcInferRequest(msg);
    EXPECT_FALSE(d.ok());
    return d.ok() ? std::string() : d.status().message();
  };
  {
    inference::ModelInferRequest msg;
    AddInput(msg, "x", "FP32", {3})->mutable_contents()->add_fp32_contents(1);
    EXPECT_NE(error(msg).find("expected 3 elements for shape [3], got 1"), std::string::npos);
  }
  {
    inference::ModelInferRequest msg;
    AddInput(msg, "x", "INT8", {1})->mutable_contents()->add_int_contents(300);
    EXPECT_NE(error(msg).find("out of range"), std::string::npos);
  }
  {
    inference::ModelInferRequest msg;
    AddInput(msg, "x", "FP16", {1})->mutable_contents()->add_fp32_contents(1);
    EXPECT_NE(error(msg).find("raw_input_contents"), std::string::npos);
  }
  {
    inference::ModelInferRequest msg;
    AddInput(msg, "x", "FP32", {1});
    AddInput(msg, "y", "FP32", {1});
    msg.add_raw_input_contents(std::string(4, '\0'));
    EXPECT_NE(error(msg).find("one per such input"), std::string::npos);
  }
  {
    inference::ModelInferRequest msg;
    AddInput(msg, "x", "FLOAT", {1});
    EXPECT_NE(error(msg).find("unknown datatype 'FLOAT'"), std::string::npos);
  }
  {
    inference::ModelInferRequest msg;
    AddInput(msg, "x", "FP32", {-1});
    EXPECT_FALSE(DecodeGrpcInferRequest(msg).ok());
  }
  {
    inference::ModelInferRequest msg;
    AddInput(msg, "x", "FP32", {1});
    EXPECT_NE(error(msg).find("has no data"), std::string::npos);
  }
  {
    inference::ModelInferRequest msg;
    (*msg.mutable_parameters())["big"].set_uint64_param(~0ULL);
    EXPECT_NE(error(msg).find("out of range"), std::string::npos);
  }
  {
    inference::ModelInferRequest msg;
    auto* in = AddInput(msg, "x", "FP32", {1});
    (*in->mutable_parameters())["shared_memory_region"].set_string_param("r");
    in->mutable_contents()->add_fp32_contents(1);
    EXPECT_NE(error(msg).find("both data and a shared memory reference"), std::string::npos);
  }
  {
    inference::ModelInferRequest msg;
    auto* in = AddInput(msg, "x", "FP32", {1});
    (*in->mutable_parameters())["shared_memory_region"].set_string_param("r");
    auto d = DecodeGrpcInferRequest(msg);
    ASSERT_TRUE(d.ok());
    EXPECT_TRUE(d->inputs[0].data.empty());
    EXPECT_EQ(std::get<std::string>(d->inputs[0].parameters.at("shared_memory_region")), "r");
  }
}

// Both transports validate alike: the same bad request, sent over HTTP (JSON
// or binary data) and over gRPC (typed or raw contents), is refused with the
// same code and the same words.
class SameWordsTest : public ::testing::Test {
 protected:
  static Status Http(const std::string& json, const std::string& binary = "") {
    auto body = std::make_shared<std::string>(json + binary);
    auto d = DecodeInferRequest(body,
                                binary.empty() ? std::nullopt : std::optional<size_t>(json.size()));
    return d.ok() ? OkStatus() : d.status();
  }
  static Status Grpc(const inference::ModelInferRequest& msg) {
    auto d = DecodeGrpcInferRequest(msg);
    return d.ok() ? OkStatus() : d.status();
  }
  static void ExpectSame(const Status& http, const Status& grpc, const std::string& want) {
    EXPECT_FALSE(http.ok());
    EXPECT_EQ(http.code(), grpc.code()) << http.message() << " / " << grpc.message();
    EXPECT_EQ(http.message(), grpc.message());
    EXPECT_NE(http.message().find(want), std::string::npos) << http.message();
  }
  // One input `x` of `dtype` [n] carried as binary data / raw contents.
  static void ExpectSameRaw(const std::string& dtype, int64_t n, const std::string& bytes,
                            const std::string& want) {
    const std::string json = R"({"inputs":[{"name":"x","datatype":")" + dtype + R"(","shape":[)" +
                             std::to_string(n) + R"(],"parameters":{"binary_data_size":)" +
                             std::to_string(bytes.size()) + "}}]}";
    inference::ModelInferRequest msg;
    AddInput(msg, "x", dtype, {n});
    msg.add_raw_input_contents(bytes);
    ExpectSame(Http(json, bytes), Grpc(msg), want);
  }
};

TEST_F(SameWordsTest, BoolBytesOtherThanZeroAndOne) {
  ExpectSameRaw("BOOL", 3, std::string("\0\1\2", 3),
                "input 'x': BOOL element 2 is 2, expected 0 or 1");
  ExpectSameRaw("BOOL", 2, std::string("\1\xff", 2), "BOOL element 1 is 255");
  inference::ModelInferRequest ok;
  AddInput(ok, "x", "BOOL", {3});
  ok.add_raw_input_contents(std::string("\0\1\1", 3));
  EXPECT_TRUE(Grpc(ok).ok());
}

TEST_F(SameWordsTest, RawSizesAndBytesFraming) {
  ExpectSameRaw("FP32", 2, "abcdef", "input 'x': shape [2] of FP32 needs 8 bytes, got 6");
  ExpectSameRaw("FP16", 2, "abc", "needs 4 bytes, got 3");
  ExpectSameRaw("BF16", 1, "abc", "needs 2 bytes, got 3");
  ExpectSameRaw("BYTES", 1, std::string("\x05\0\0\0ab", 6),
                "input 'x': BYTES element 0 declares 5 bytes but only 2 remain");
  ExpectSameRaw("BYTES", 2, std::string("\x01\0\0\0a", 5),
                "holds 1 elements but its shape declares 2");
  ExpectSameRaw("BYTES", 1, std::string("\x01\0\0\0a\0\0\0\0", 9), "holds more than the 1");
  ExpectSameRaw("BYTES", 1, std::string("\x01\0", 2), "BYTES data is truncated");
}

TEST_F(SameWordsTest, NamesAndRanges) {
  {  // an input twice
    inference::ModelInferRequest msg;
    AddInput(msg, "x", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
    AddInput(msg, "x", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
    const std::string x = R"({"name":"x","datatype":"FP32","shape":[1],"data":[1]})";
    ExpectSame(Http(R"({"inputs":[)" + x + "," + x + "]}"), Grpc(msg), "input 'x' appears twice");
  }
  {  // an output twice
    inference::ModelInferRequest msg;
    AddInput(msg, "x", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
    msg.add_outputs()->set_name("y");
    msg.add_outputs()->set_name("y");
    ExpectSame(Http(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],)"
                    R"("outputs":[{"name":"y"},{"name":"y"}]})"),
               Grpc(msg), "output 'y' is requested twice");
  }
  {  // empty names
    inference::ModelInferRequest msg;
    AddInput(msg, "", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
    ExpectSame(Http(R"({"inputs":[{"name":"","datatype":"FP32","shape":[1],"data":[1]}]})"),
               Grpc(msg), "inputs[0] has an empty 'name'");
    inference::ModelInferRequest out;
    AddInput(out, "x", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
    out.add_outputs();
    ExpectSame(Http(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],)"
                    R"("outputs":[{"name":""}]})"),
               Grpc(out), "outputs[0] has an empty 'name'");
  }
  // A narrow integer out of its range (JSON data / typed contents).
  for (const auto& [dtype, value] : std::vector<std::pair<std::string, int64_t>>{
           {"INT8", 300}, {"INT16", -40000}, {"UINT8", 256}, {"UINT16", 70000}}) {
    inference::ModelInferRequest msg;
    auto* in = AddInput(msg, "x", dtype, {2});
    if (dtype[0] == 'U') {
      in->mutable_contents()->add_uint_contents(1);
      in->mutable_contents()->add_uint_contents(static_cast<uint32_t>(value));
    } else {
      in->mutable_contents()->add_int_contents(1);
      in->mutable_contents()->add_int_contents(static_cast<int32_t>(value));
    }
    ExpectSame(Http(R"({"inputs":[{"name":"x","datatype":")" + dtype +
                    R"(","shape":[2],"data":[1,)" + std::to_string(value) + "]}]}"),
               Grpc(msg),
               "input 'x': element 1: " + std::to_string(value) + " is out of range for " + dtype);
  }
}

TEST_F(SameWordsTest, ClassificationIsUnimplementedOnBoth) {
  inference::ModelInferRequest msg;
  AddInput(msg, "x", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
  auto* out = msg.add_outputs();
  out->set_name("y");
  (*out->mutable_parameters())["classification"].set_int64_param(3);
  const Status grpc = Grpc(msg);
  const Status http = Http(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],)"
                           R"("outputs":[{"name":"y","parameters":{"class_count":3}}]})");
  EXPECT_EQ(grpc.code(), StatusCode::kUnimplemented) << grpc.message();
  EXPECT_EQ(http.code(), StatusCode::kUnimplemented) << http.message();
  EXPECT_NE(grpc.message().find("classification extension"), std::string::npos);
  // 0 asks for the tensor itself, as tritonclient's default.
  (*out->mutable_parameters())["classification"].set_int64_param(0);
  auto d = DecodeGrpcInferRequest(msg);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_TRUE(d->outputs[0].parameters.empty());
}

TEST(GrpcCodecTest, EncodesOutputsAsRawContents) {
  InferResponse r;
  r.model_name = "m";
  r.model_version = "1";
  r.id = "x";
  static const float values[2] = {1, 2};
  r.outputs.push_back(Tensor{"y",
                             DataType::kFp32,
                             {2},
                             {reinterpret_cast<const std::byte*>(values), sizeof values},
                             nullptr,
                             {}});
  inference::ModelInferResponse out;
  EncodeGrpcInferResponse(r, &out);
  EXPECT_EQ(out.model_name(), "m");
  EXPECT_EQ(out.id(), "x");
  ASSERT_EQ(out.outputs_size(), 1);
  EXPECT_EQ(out.outputs(0).datatype(), "FP32");
  EXPECT_EQ(out.outputs(0).shape(0), 2);
  ASSERT_EQ(out.raw_output_contents(0).size(), 8u);
  EXPECT_EQ(std::memcmp(out.raw_output_contents(0).data(), values, 8), 0);
}

}  // namespace
}  // namespace mm
