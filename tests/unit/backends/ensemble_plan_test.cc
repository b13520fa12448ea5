#include "backends/ensemble/ensemble_plan.h"

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

namespace mm {
namespace {

inference::ModelConfig Config(const std::string& text) {
  inference::ModelConfig config;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &config)) << text;
  return config;
}

// pre: RAW FP32 [-1,4] -> SCALED FP32 [-1,4]; mlp: X FP32 [-1,4] -> Y FP32
// [-1,2]; post: P FP32 [-1,2] -> LABEL INT64 [-1,1].
std::vector<ComposingModel> Models() {
  return {
      {"pre", -1, Config(R"(name: "pre" max_batch_size: 8
        input { name: "RAW" data_type: TYPE_FP32 dims: [4] }
        output { name: "SCALED" data_type: TYPE_FP32 dims: [4] })")},
      {"mlp", -1, Config(R"(name: "mlp" max_batch_size: 8
        input { name: "X" data_type: TYPE_FP32 dims: [4] }
        output { name: "Y" data_type: TYPE_FP32 dims: [2] })")},
      {"post", -1, Config(R"(name: "post" max_batch_size: 8
        input { name: "P" data_type: TYPE_FP32 dims: [2] }
        output { name: "LABEL" data_type: TYPE_INT64 dims: [1] })")},
  };
}

const char* kHead = R"(name: "pipe" platform: "ensemble" max_batch_size: 8
  input { name: "IN" data_type: TYPE_FP32 dims: [4] }
  output { name: "OUT" data_type: TYPE_INT64 dims: [1] }
)";

const char* kSteps = R"(ensemble_scheduling {
  step { model_name: "pre" model_version: -1 input_map { key: "RAW" value: "IN" }
         output_map { key: "SCALED" value: "s" } }
  step { model_name: "mlp" model_version: -1 input_map { key: "X" value: "s" }
         output_map { key: "Y" value: "p" } }
  step { model_name: "post" model_version: -1 input_map { key: "P" value: "p" }
         output_map { key: "LABEL" value: "OUT" } }
})";

StatusOr<EnsemblePlan> Plan(const std::string& text) {
  const auto models = Models();
  return PlanEnsemble(Config(text), models);
}

void ExpectRefused(const std::string& text, const std::vector<std::string>& parts) {
  auto plan = Plan(text);
  ASSERT_FALSE(plan.ok()) << text;
  EXPECT_EQ(plan.status().code(), StatusCode::kInvalidArgument);
  for (const auto& p : parts) {
    EXPECT_NE(plan.status().message().find(p), std::string::npos)
        << "'" << p << "' not in: " << plan.status().message();
  }
}

TEST(EnsemblePlanTest, CompilesAChainIntoDataflow) {
  auto plan = Plan(std::string(kHead) + kSteps);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  ASSERT_EQ(plan->steps.size(), 3u);
  EXPECT_EQ(plan->ensemble, "pipe");
  EXPECT_EQ(plan->tensors[plan->inputs[0]], "IN");
  EXPECT_EQ(plan->tensors[plan->outputs[0]], "OUT");
  EXPECT_EQ(plan->steps[1].model_name, "mlp");
  EXPECT_EQ(plan->steps[1].model_version, "");
  EXPECT_EQ(plan->steps[1].inputs[0].name, "X");
  EXPECT_EQ(plan->tensors[plan->steps[1].inputs[0].tensor], "s");
  for (const auto& step : plan->steps) EXPECT_EQ(step.waits_for, 1);
  EXPECT_EQ(plan->consumers[plan->inputs[0]], std::vector<int>{0});
}

TEST(EnsemblePlanTest, ParallelBranchesShareATensor) {
  auto plan = Plan(std::string(kHead) + R"(
    output { name: "OUT2" data_type: TYPE_FP32 dims: [2] }
    ensemble_scheduling {
    step { model_name: "pre" input_map { key: "RAW" value: "IN" } output_map { key: "SCALED" value: "s" } }
    step { model_name: "mlp" input_map { key: "X" value: "s" } output_map { key: "Y" value: "p" } }
    step { model_name: "mlp" input_map { key: "X" value: "IN" } output_map { key: "Y" value: "OUT2" } }
    step { model_name: "post" input_map { key: "P" value: "p" } output_map { key: "LABEL" value: "OUT" } }
  })");
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  // IN feeds pre and the second mlp: both start at once.
  EXPECT_EQ(plan->consumers[plan->inputs[0]], (std::vector<int>{0, 2}));
}

TEST(EnsemblePlanTest, RefusesACycleNamingItsSteps) {
  ExpectRefused(std::string(kHead) + R"(
    input { name: "IN2" data_type: TYPE_FP32 dims: [4] }
    ensemble_scheduling {
    step { model_name: "pre" input_map { key: "RAW" value: "b" } output_map { key: "SCALED" value: "a" } }
    step { model_name: "pre" input_map { key: "RAW" value: "a" } output_map { key: "SCALED" value: "b" } }
    step { model_name: "mlp" input_map { key: "X" value: "IN" } output_map { key: "Y" value: "p" } }
    step { model_name: "post" input_map { key: "P" value: "p" } output_map { key: "LABEL" value: "OUT" } }
    step { model_name: "mlp" input_map { key: "X" value: "IN2" } output_map { key: "Y" value: "q" } }
  })",
                {"cycle", "step 1 (model 'pre')", "step 2 (model 'pre')", "'a'", "'b'"});
}

TEST(EnsemblePlanTest, RefusesATensorNoStepWrites) {
  auto steps = std::string(kSteps);
  steps.replace(steps.find("key: \"X\" value: \"s\""), 20, "key: \"X\" value: \"t\"");
  ExpectRefused(std::string(kHead) + steps,
                {"step 2 (model 'mlp') reads tensor 't'", "no step writes"});
}

TEST(EnsemblePlanTest, RefusesADtypeOrShapeMismatchNamingBothSides) {
  auto steps = std::string(kSteps);
  // post reads mlp's input tensor: FP32 [-1,4] where it wants [-1,2].
  steps.replace(steps.find("key: \"P\" value: \"p\""), 20, "key: \"P\" value: \"s\"");
  ExpectRefused(std::string(kHead) + steps,
                {"step 3 (model 'post') reads tensor 's' as input 'P', TYPE_FP32 [-1,2]",
                 "step 1 (model 'pre') writes it (output 'SCALED') as TYPE_FP32 [-1,4]"});
  // The ensemble's output type differs from its writer's.
  std::string head = kHead;
  head.replace(head.find("TYPE_INT64"), 10, "TYPE_INT32");
  ExpectRefused(head + kSteps, {"ensemble output 'OUT' is TYPE_INT32 [-1,1]", "TYPE_INT64"});
}

TEST(EnsemblePlanTest, RefusesUnknownModelsAndTensorsOfTheStepModel) {
  auto steps = std::string(kSteps);
  steps.replace(steps.find("model_name: \"post\""), 18, "model_name: \"gone\"");
  ExpectRefused(std::string(kHead) + steps, {"step 3 (model 'gone')", "does not exist"});
  steps = kSteps;
  steps.replace(steps.find("key: \"X\""), 8, "key: \"Z\"");
  ExpectRefused(std::string(kHead) + steps,
                {"step 2 (model 'mlp')", "input 'Z'", "its inputs are 'X'"});
  steps = kSteps;
  steps.replace(steps.find("key: \"Y\""), 8, "key: \"W\"");
  ExpectRefused(std::string(kHead) + steps, {"output 'W'", "its outputs are 'Y'"});
}

TEST(EnsemblePlanTest, RefusesDoubleWritesUnusedInputsAndUnwrittenOutputs) {
  auto steps = std::string(kSteps);
  steps.replace(steps.find("key: \"Y\" value: \"p\""), 20, "key: \"Y\" value: \"s\"");
  ExpectRefused(std::string(kHead) + steps, {"writes tensor 's'", "writes it too"});
  ExpectRefused(
      std::string(kHead) + "input { name: \"EXTRA\" data_type: TYPE_FP32 dims: [1] }\n" + kSteps,
      {"ensemble input 'EXTRA' is read by no step"});
  ExpectRefused(
      std::string(kHead) + "output { name: \"MORE\" data_type: TYPE_FP32 dims: [1] }\n" + kSteps,
      {"ensemble output 'MORE' is written by no step"});
}

TEST(EnsemblePlanTest, RefusesItselfAndDecoupledOrSmallerBatchingSteps) {
  auto steps = std::string(kSteps);
  steps.replace(steps.find("model_name: \"post\""), 18, "model_name: \"pipe\"");
  ExpectRefused(std::string(kHead) + steps, {"runs the ensemble itself"});

  auto models = Models();
  models[1].config.mutable_model_transaction_policy()->set_decoupled(true);
  auto plan = PlanEnsemble(Config(std::string(kHead) + kSteps), models);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("step 2 (model 'mlp') is decoupled"), std::string::npos);

  models = Models();
  models[2].config.set_max_batch_size(4);
  plan = PlanEnsemble(Config(std::string(kHead) + kSteps), models);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("batches at most 4 rows"), std::string::npos);
}

}  // namespace
}  // namespace mm

namespace mm {
namespace {

// A decoupled ensemble over a decoupled `gen` (X -> TOKEN, many responses):
// pre -> gen -> post, each response of gen flowing through post.
std::vector<ComposingModel> DecoupledModels() {
  auto models = Models();
  models.push_back({"gen", -1, Config(R"(name: "gen" max_batch_size: 8
    model_transaction_policy { decoupled: true }
    input { name: "X" data_type: TYPE_FP32 dims: [4] }
    output { name: "Y" data_type: TYPE_FP32 dims: [2] })")});
  return models;
}

const char* kDecoupledHead = R"(name: "pipe" platform: "ensemble" max_batch_size: 8
  model_transaction_policy { decoupled: true }
  input { name: "IN" data_type: TYPE_FP32 dims: [4] }
  output { name: "OUT" data_type: TYPE_INT64 dims: [1] }
)";

TEST(EnsemblePlanTest, ADecoupledStepFlowsIntoTheStepsAfterIt) {
  const auto models = DecoupledModels();
  auto plan = PlanEnsemble(Config(std::string(kDecoupledHead) + R"(ensemble_scheduling {
    step { model_name: "pre" input_map { key: "RAW" value: "IN" } output_map { key: "SCALED" value: "s" } }
    step { model_name: "gen" input_map { key: "X" value: "s" } output_map { key: "Y" value: "p" } }
    step { model_name: "post" input_map { key: "P" value: "p" } output_map { key: "LABEL" value: "OUT" } }
  })"),
                           models);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  EXPECT_EQ(plan->decoupled_step, 1);
  EXPECT_EQ(plan->after_decoupled, (std::vector<bool>{false, false, true}));
}

TEST(EnsemblePlanTest, RefusesWhatADecoupledFlowCannotHold) {
  const auto models = DecoupledModels();
  // The ensemble itself must be decoupled.
  std::string head = kDecoupledHead;
  head.replace(head.find("model_transaction_policy { decoupled: true }"), 44, "");
  const std::string steps = R"(ensemble_scheduling {
    step { model_name: "gen" input_map { key: "X" value: "IN" } output_map { key: "Y" value: "p" } }
    step { model_name: "post" input_map { key: "P" value: "p" } output_map { key: "LABEL" value: "OUT" } }
  })";
  auto plan = PlanEnsemble(Config(head + steps), models);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("the ensemble must be decoupled too"), std::string::npos);
  // An output written beside the decoupled step.
  plan = PlanEnsemble(Config(std::string(kDecoupledHead) + R"(
    output { name: "SIDE" data_type: TYPE_FP32 dims: [2] }
    ensemble_scheduling {
    step { model_name: "gen" input_map { key: "X" value: "IN" } output_map { key: "Y" value: "p" } }
    step { model_name: "post" input_map { key: "P" value: "p" } output_map { key: "LABEL" value: "OUT" } }
    step { model_name: "mlp" input_map { key: "X" value: "IN" } output_map { key: "Y" value: "SIDE" } }
  })"),
                      models);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("ensemble output 'SIDE' is written by step 3 (model "
                                         "'mlp'), not by the decoupled step 1 (model 'gen')"),
            std::string::npos)
      << plan.status().message();
  // Two decoupled steps.
  plan = PlanEnsemble(Config(std::string(kDecoupledHead) + R"(
    output { name: "P2" data_type: TYPE_FP32 dims: [2] }
    ensemble_scheduling {
    step { model_name: "gen" input_map { key: "X" value: "IN" } output_map { key: "Y" value: "p" } }
    step { model_name: "gen" input_map { key: "X" value: "IN" } output_map { key: "Y" value: "P2" } }
    step { model_name: "post" input_map { key: "P" value: "p" } output_map { key: "LABEL" value: "OUT" } }
  })"),
                      models);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("expected at most one decoupled step"), std::string::npos);
}

}  // namespace
}  // namespace mm
