// The native transport's unary calls before they run (http/grpc_calls.h):
// which methods have one, and how a call takes its request message. Running
// them is the rpc room's (tests/unit/rpc) and the transport's
// (tests/integration/test_grpc_native.py).
#include "http/grpc_calls.h"

#include <gtest/gtest.h>

#include <string>

namespace mm {
namespace {

using rpc::Method;

TEST(GrpcUnaryCallTest, EveryMethodButTheStreamHasAUnaryCall) {
  for (size_t i = 0; i < rpc::kMethodCount; ++i) {
    const auto method = static_cast<Method>(i);
    auto call = GrpcUnaryCall::Create(method);
    if (method == Method::kModelStreamInfer) {
      EXPECT_EQ(call, nullptr);
    } else {
      ASSERT_NE(call, nullptr) << rpc::MethodName(method);
      EXPECT_FALSE(call->parsed());
    }
  }
}

TEST(GrpcUnaryCallTest, TakesExactlyOneMessageOfItsMethodsType) {
  auto call = GrpcUnaryCall::Create(Method::kModelInfer);
  inference::ModelInferRequest request;
  request.set_model_name("m");
  ASSERT_TRUE(call->Parse(request.SerializeAsString()).ok());
  EXPECT_TRUE(call->parsed());
  Status second = call->Parse(request.SerializeAsString());
  EXPECT_EQ(second.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(second.message().find("exactly one request message"), std::string::npos)
      << second.message();

  // Taking the bytes is the same parse (raw contents then view them).
  auto owned = GrpcUnaryCall::Create(Method::kModelInfer);
  request.add_raw_input_contents(std::string(64, 'r'));
  ASSERT_TRUE(owned->ParseOwned(request.SerializeAsString()).ok());
  EXPECT_TRUE(owned->parsed());
  EXPECT_EQ(owned->ParseOwned(request.SerializeAsString()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(GrpcUnaryCall::Create(Method::kModelInfer)->ParseOwned("\xff\xff\xff").code(),
            StatusCode::kInvalidArgument);

  auto other = GrpcUnaryCall::Create(Method::kModelMetadata);
  Status bad = other->Parse("\xff\xff\xff");
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("inference.ModelMetadataRequest"), std::string::npos)
      << bad.message();
  EXPECT_FALSE(other->parsed());
  // An empty message is a valid (empty) request.
  EXPECT_TRUE(GrpcUnaryCall::Create(Method::kServerLive)->Parse("").ok());
}

}  // namespace
}  // namespace mm
