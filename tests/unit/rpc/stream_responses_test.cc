// ModelStreamInfer's response helpers (rpc/stream_responses.h): Triton's
// empty-final-response flag, read from the message and from the decoded
// request, the final flag on a response, and an error response.
#include "rpc/stream_responses.h"

#include <gtest/gtest.h>

#include "rpc/grpc_codec.h"

namespace mm::rpc {
namespace {

TEST(StreamResponsesTest, EmptyFinalWantedOnlyForATrueBool) {
  inference::ModelInferRequest message;
  EXPECT_FALSE(EmptyFinalWanted(message));
  auto& flag = (*message.mutable_parameters())[std::string(kStreamEmptyFinalParam)];
  flag.set_bool_param(false);
  EXPECT_FALSE(EmptyFinalWanted(message));
  flag.set_string_param("true");  // not a bool
  EXPECT_FALSE(EmptyFinalWanted(message));
  flag.set_int64_param(1);
  EXPECT_FALSE(EmptyFinalWanted(message));
  flag.set_bool_param(true);
  EXPECT_TRUE(EmptyFinalWanted(message));
}

TEST(StreamResponsesTest, DecodedRequestSaysTheSameAsItsMessage) {
  inference::ModelInferRequest message;
  message.set_model_name("m");
  for (bool wanted : {false, true}) {
    (*message.mutable_parameters())["triton_enable_empty_final_response"].set_bool_param(wanted);
    auto decoded = DecodeGrpcInferRequest(message);
    ASSERT_TRUE(decoded.ok()) << decoded.status().message();
    EXPECT_EQ(EmptyFinalWanted(*decoded), wanted);
    EXPECT_EQ(EmptyFinalWanted(message), wanted);
  }
  InferRequest request;
  EXPECT_FALSE(EmptyFinalWanted(request));
  request.parameters.emplace(std::string(kStreamEmptyFinalParam), ParameterValue(int64_t{1}));
  EXPECT_FALSE(EmptyFinalWanted(request));
  request.parameters[std::string(kStreamEmptyFinalParam)] = ParameterValue(true);
  EXPECT_TRUE(EmptyFinalWanted(request));
}

TEST(StreamResponsesTest, MarkFinalSetsTheResponseParameter) {
  inference::ModelStreamInferResponse message;
  message.mutable_infer_response()->set_id("r1");
  MarkFinal(false, &message);
  const auto& p = message.infer_response().parameters();
  ASSERT_EQ(p.count("triton_final_response"), 1u);
  EXPECT_EQ(p.at("triton_final_response").parameter_choice_case(),
            inference::InferParameter::kBoolParam);
  EXPECT_FALSE(p.at("triton_final_response").bool_param());
  MarkFinal(true, &message);
  EXPECT_TRUE(message.infer_response().parameters().at("triton_final_response").bool_param());
  EXPECT_EQ(message.infer_response().id(), "r1");
  EXPECT_TRUE(message.error_message().empty());
}

TEST(StreamResponsesTest, AnErrorCarriesItsMessageAndTheRequestsId) {
  inference::ModelStreamInferResponse message;
  SetStreamError(NotFound("unknown model 'x'"), "req-7", &message);
  EXPECT_EQ(message.error_message(), "unknown model 'x'");
  EXPECT_EQ(message.infer_response().id(), "req-7");
  EXPECT_EQ(message.infer_response().outputs_size(), 0);
}

}  // namespace
}  // namespace mm::rpc
