#include "grpc/grpc_codec.h"

#include <gtest/gtest.h>

#include <cstring>

#include "core/bytes_tensor.h"

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
