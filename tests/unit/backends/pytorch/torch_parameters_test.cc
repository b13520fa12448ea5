#include "backends/pytorch/torch_parameters.h"

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <string>

namespace mm {
namespace {

inference::ModelConfig WithParameters(const std::string& text) {
  inference::ModelConfig config;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &config)) << text;
  return config;
}

std::string Param(const std::string& key, const std::string& value) {
  return "parameters: { key: \"" + key + "\" value: { string_value: \"" + value + "\" } }\n";
}

TEST(TorchParametersTest, DefaultsWithoutParameters) {
  auto p = ParseTorchParameters(inference::ModelConfig());
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_TRUE(p->inference_mode);
  EXPECT_FALSE(p->disable_optimized_execution);
  EXPECT_EQ(p->intra_op_threads, 1);
  EXPECT_FALSE(p->inter_op_threads.has_value());
  EXPECT_FALSE(p->enable_jit_executor.has_value());
  EXPECT_FALSE(p->enable_jit_profiling.has_value());
  EXPECT_FALSE(p->enable_tensor_fuser.has_value());
  EXPECT_FALSE(p->enable_cache_cleaning);
  EXPECT_FALSE(p->enable_weight_sharing);
  EXPECT_FALSE(p->disable_cudnn);
  EXPECT_TRUE(p->warnings.empty());
}

TEST(TorchParametersTest, ReadsEveryKeyWithTritonsBooleans) {
  auto p = ParseTorchParameters(WithParameters(
      Param("INFERENCE_MODE", "False") + Param("DISABLE_OPTIMIZED_EXECUTION", "ON") +
      Param("ENABLE_JIT_EXECUTOR", "0") + Param("ENABLE_JIT_PROFILING", "off") +
      Param("ENABLE_TENSOR_FUSER", "1") + Param("DISABLE_CUDNN", "true") +
      Param("INTRA_OP_THREAD_COUNT", "4") + Param("INTER_OP_THREAD_COUNT", "2") +
      Param("ENABLE_CACHE_CLEANING", "TRUE") + Param("ENABLE_WEIGHT_SHARING", "on")));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_FALSE(p->inference_mode);
  EXPECT_TRUE(p->disable_optimized_execution);
  EXPECT_EQ(p->enable_jit_executor, false);
  EXPECT_EQ(p->enable_jit_profiling, false);
  EXPECT_EQ(p->enable_tensor_fuser, true);
  EXPECT_TRUE(p->disable_cudnn);
  EXPECT_EQ(p->intra_op_threads, 4);
  EXPECT_EQ(p->inter_op_threads, 2);
  EXPECT_TRUE(p->enable_cache_cleaning);
  EXPECT_TRUE(p->enable_weight_sharing);
  EXPECT_TRUE(p->warnings.empty());
}

TEST(TorchParametersTest, NonPositiveThreadCountKeepsTheDefault) {
  auto p = ParseTorchParameters(
      WithParameters(Param("INTRA_OP_THREAD_COUNT", "0") + Param("INTER_OP_THREAD_COUNT", "-1")));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->intra_op_threads, 1);
  EXPECT_FALSE(p->inter_op_threads.has_value());
}

TEST(TorchParametersTest, BadBooleanNamesKeyAndValue) {
  auto p = ParseTorchParameters(WithParameters(Param("INFERENCE_MODE", "maybe")));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(p.status().message(),
            "parameter 'INFERENCE_MODE' must be a boolean (true/on/1 or false/off/0), got 'maybe'");
}

TEST(TorchParametersTest, BadThreadCountNamesKeyAndValue) {
  for (const char* bad : {"4x", "", "lots", "100000", "99999999999999999999"}) {
    auto p = ParseTorchParameters(WithParameters(Param("INTRA_OP_THREAD_COUNT", bad)));
    ASSERT_FALSE(p.ok()) << bad;
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(p.status().message().find("parameter 'INTRA_OP_THREAD_COUNT' must be an integer"),
              std::string::npos)
        << p.status().message();
    EXPECT_NE(p.status().message().find("got '" + std::string(bad) + "'"), std::string::npos)
        << p.status().message();
  }
}

TEST(TorchParametersTest, UnknownKeyIsAWarningListingTheKnownOnes) {
  auto p = ParseTorchParameters(
      WithParameters(Param("ENABLE_NVFUSER", "true") + Param("INFERENCE_MODE", "true")));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_EQ(p->warnings.size(), 1u);
  EXPECT_NE(p->warnings[0].find("unknown parameter 'ENABLE_NVFUSER'"), std::string::npos);
  EXPECT_NE(p->warnings[0].find("INTER_OP_THREAD_COUNT"), std::string::npos);
  EXPECT_NE(p->warnings[0].find("ENABLE_WEIGHT_SHARING"), std::string::npos);
}

}  // namespace
}  // namespace mm
