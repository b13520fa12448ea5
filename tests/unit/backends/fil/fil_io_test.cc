// CompleteFilConfig: FIL's rules for max_batch_size, the input and the
// output, auto-complete and the squeeze rule, without a model.
#include "backends/fil/fil_io.h"

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mm::fil {
namespace {

inference::ModelConfig Parse(const std::string& text) {
  inference::ModelConfig config;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &config)) << text;
  return config;
}

TreeModelInfo Info(int64_t features, int64_t classes) {
  return {.num_features = features, .num_classes = classes, .bytes = 1000, .description = "fake"};
}

FilParameters Params(bool output_class, bool proba) {
  FilParameters p;
  p.rule.output_class = output_class;
  p.rule.predict_proba = proba;
  return p;
}

// The engines' rule (tree_model.h): a model of `classes` classes whose
// library answers `scores` values per row (1 for a regressor and for a
// binary XGBoost / LightGBM model, C for a multiclass one, 2 for a binary
// scikit-learn forest).
OutputColumnsFn Engine(int64_t classes, int64_t scores) {
  return [=](const OutputRule& rule) -> StatusOr<int64_t> {
    if (rule.predict_proba) {
      if (classes < 2) return InvalidArgument("predict_proba on a regressor");
      if (scores == 1) return rule.binary_proba_single_column ? 1 : 2;
      return scores;
    }
    return rule.output_class ? 1 : scores;
  };
}

constexpr char kBatch[] = "max_batch_size: 64\n";

TEST(FilIoTest, FillsInputAndOutputFromTheModel) {
  // Regression: one value per row.
  auto io = CompleteFilConfig("m", Parse(kBatch), Info(30, 1), Params(false, false), Engine(1, 1));
  ASSERT_TRUE(io.ok()) << io.status().message();
  EXPECT_EQ(io->config.name(), "m");
  EXPECT_EQ(io->config.backend(), "fil");
  ASSERT_EQ(io->config.input_size(), 1);
  EXPECT_EQ(io->config.input(0).name(), "input__0");
  EXPECT_EQ(io->config.input(0).data_type(), inference::TYPE_FP32);
  EXPECT_EQ(
      std::vector<int64_t>(io->config.input(0).dims().begin(), io->config.input(0).dims().end()),
      std::vector<int64_t>{30});
  ASSERT_EQ(io->config.output_size(), 1);
  EXPECT_EQ(io->config.output(0).name(), "output__0");
  EXPECT_EQ(io->config.output(0).data_type(), inference::TYPE_FP32);
  EXPECT_EQ(io->config.output(0).dims(0), 1);
  EXPECT_EQ(io->columns, 1);
  EXPECT_TRUE(io->squeezed_dims.empty());  // [batch]
  ASSERT_EQ(io->config.instance_group_size(), 1);
  EXPECT_EQ(io->config.instance_group(0).count(), 1);

  // Probabilities of 3 classes: [3] -> [batch, 3].
  io = CompleteFilConfig("m", Parse(kBatch), Info(4, 3), Params(true, true), Engine(3, 3));
  ASSERT_TRUE(io.ok()) << io.status().message();
  EXPECT_EQ(io->config.output(0).dims(0), 3);
  EXPECT_EQ(io->squeezed_dims, std::vector<int64_t>{3});
  EXPECT_EQ(io->columns, 3);
}

TEST(FilIoTest, MaxBatchSizeMustBePositive) {
  for (const std::string text : {"", "max_batch_size: 0\n", "max_batch_size: -1\n"}) {
    auto io = CompleteFilConfig("m", Parse(text), Info(4, 1), Params(false, false), Engine(1, 1));
    ASSERT_FALSE(io.ok()) << text;
    EXPECT_NE(io.status().message().find("expected more than 0: Triton's FIL backend"),
              std::string::npos)
        << io.status().message();
  }
}

TEST(FilIoTest, TakesTheUsersInput) {
  // Any name (FIL takes the first input); FP64 converted; -1 tightened.
  auto io = CompleteFilConfig(
      "m", Parse(std::string(kBatch) + "input { name: \"x\" data_type: TYPE_FP64 dims: [-1] }"),
      Info(7, 1), Params(false, false), Engine(1, 1));
  ASSERT_TRUE(io.ok()) << io.status().message();
  EXPECT_EQ(io->config.input(0).name(), "x");
  EXPECT_EQ(io->config.input(0).dims(0), 7);
  EXPECT_EQ(io->input_dtype, DataType::kFp64);
}

TEST(FilIoTest, RefusesInputsThatDoNotFitTheModel) {
  struct Case {
    std::string inputs;
    std::string message;
  };
  const Case cases[] = {
      {"input { name: \"input__0\" data_type: TYPE_FP32 dims: [29] }",
       "input 'input__0' has dims [29], but the model takes 30 features; expected dims [30]"},
      {"input { name: \"input__0\" data_type: TYPE_FP32 dims: [1, 30] }",
       "has dims [1,30], but the model takes 30 features"},
      {"input { name: \"input__0\" data_type: TYPE_INT32 dims: [30] }",
       "input 'input__0' is TYPE_INT32; expected TYPE_FP32 (as Triton's FIL backend) or TYPE_FP64"},
      {"input { name: \"a\" data_type: TYPE_FP32 dims: [30] }"
       "input { name: \"b\" data_type: TYPE_FP32 dims: [30] }",
       "the config has 2 inputs; expected one (input__0, TYPE_FP32 [30])"},
      {"input { name: \"input__0\" data_type: TYPE_FP32 dims: [30] reshape { shape: [30] } }",
       "input 'input__0' has a reshape"},
  };
  for (const Case& c : cases) {
    auto io = CompleteFilConfig("m", Parse(kBatch + c.inputs), Info(30, 1), Params(false, false),
                                Engine(1, 1));
    ASSERT_FALSE(io.ok()) << c.inputs;
    EXPECT_EQ(io.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(io.status().message().find(c.message), std::string::npos) << io.status().message();
  }
}

TEST(FilIoTest, OutputDimsFollowTheRule) {
  struct Case {
    std::string dims;
    int64_t classes, scores;
    bool output_class, proba;
    bool ok;
    int64_t engine_columns, columns;
    bool single_column;
    std::vector<int64_t> squeezed;
    std::string message;
  };
  const Case cases[] = {
      // Class ids and regression: [1] -> [batch].
      {"[1]", 3, 3, true, false, true, 1, 1, false, {}, ""},
      {"[1]", 1, 1, false, false, true, 1, 1, false, {}, ""},
      {"[-1]", 1, 1, false, false, true, 1, 1, false, {}, ""},
      {"[2]",
       1,
       1,
       false,
       false,
       false,
       0,
       0,
       false,
       {},
       "has dims [2], but the model answers 1 value per row"},
      // Probabilities: [C] -> [batch, C]; FIL's buffer is dims' product, squeezed.
      {"[3]", 3, 3, true, true, true, 3, 3, false, {3}, ""},
      {"[1, 3]", 3, 3, true, true, true, 3, 3, false, {3}, ""},
      {"[1]", 3, 3, true, true, false, 0, 0, false, {}, "expected dims [3]"},
      {"[4]",
       3,
       3,
       true,
       true,
       false,
       0,
       0,
       false,
       {},
       "has dims [4], but the model answers 3 values per row (is_classifier true, "
       "predict_proba true); expected dims [3]"},
      // A multiclass model's predict() without is_classifier: C values.
      {"[3]", 3, 3, false, false, true, 3, 3, false, {3}, ""},
      // A binary classifier's probabilities: [2] (1-p, p) or [1] (p alone),
      // which the engine writes itself ...
      {"[2]", 2, 1, true, true, true, 2, 2, false, {2}, ""},
      {"[1]", 2, 1, true, true, true, 1, 1, true, {}, ""},
      // ... or, for a forest of two score columns, Execute keeps from two.
      {"[1]", 2, 2, true, true, true, 2, 1, true, {}, ""},
      {"[3]", 2, 1, true, true, false, 0, 0, false, {}, "expected dims [2] (or [1] for p alone)"},
      {"[0]", 1, 1, false, false, false, 0, 0, false, {}, "has dims [0]"},
      {"[]", 1, 1, false, false, false, 0, 0, false, {}, "has dims []"},
  };
  for (const Case& c : cases) {
    auto io = CompleteFilConfig(
        "m",
        Parse(std::string(kBatch) +
              "output { name: \"output__0\" data_type: TYPE_FP32 dims: " + c.dims + " }"),
        Info(4, c.classes), Params(c.output_class, c.proba), Engine(c.classes, c.scores));
    ASSERT_EQ(io.ok(), c.ok) << c.dims << ": " << io.status().message();
    if (!c.ok) {
      EXPECT_NE(io.status().message().find(c.message), std::string::npos) << io.status().message();
      continue;
    }
    EXPECT_EQ(io->engine_columns, c.engine_columns) << c.dims;
    EXPECT_EQ(io->columns, c.columns) << c.dims;
    EXPECT_EQ(io->rule.binary_proba_single_column, c.single_column) << c.dims;
    EXPECT_EQ(io->squeezed_dims, c.squeezed) << c.dims;
  }
}

TEST(FilIoTest, TheEnginesRefusalIsTheError) {
  auto io = CompleteFilConfig("m", Parse(kBatch), Info(4, 1), Params(false, true), Engine(1, 1));
  ASSERT_FALSE(io.ok());
  EXPECT_EQ(io.status().message(), "predict_proba on a regressor");
  io = CompleteFilConfig("m", Parse(kBatch), Info(4, 1), Params(false, false),
                         [](const OutputRule&) -> StatusOr<int64_t> { return 0; });
  ASSERT_FALSE(io.ok());
  EXPECT_EQ(io.status().code(), StatusCode::kInternal);
}

TEST(FilIoTest, RefusesOtherOutputs) {
  struct Case {
    std::string outputs;
    std::string message;
  };
  const Case cases[] = {
      {"output { name: \"output__0\" data_type: TYPE_FP32 dims: [1] }"
       "output { name: \"treeshap_output\" data_type: TYPE_FP32 dims: [5] }",
       "output 'treeshap_output' asks for SHAP values, which the fil backend does not compute"},
      {"output { name: \"treeshap_output\" data_type: TYPE_FP32 dims: [5] }", "SHAP values"},
      {"output { name: \"a\" data_type: TYPE_FP32 dims: [1] }"
       "output { name: \"b\" data_type: TYPE_FP32 dims: [1] }",
       "the config has 2 outputs; expected one (output__0, TYPE_FP32 [1])"},
      {"output { name: \"output__0\" data_type: TYPE_FP64 dims: [1] }",
       "output 'output__0' is TYPE_FP64; expected TYPE_FP32"},
      {"output { name: \"output__0\" data_type: TYPE_FP32 dims: [1] reshape { shape: [] } }",
       "output 'output__0' has a reshape"},
  };
  for (const Case& c : cases) {
    auto io = CompleteFilConfig("m", Parse(kBatch + c.outputs), Info(4, 1), Params(false, false),
                                Engine(1, 1));
    ASSERT_FALSE(io.ok()) << c.outputs;
    EXPECT_NE(io.status().message().find(c.message), std::string::npos) << io.status().message();
  }
}

}  // namespace
}  // namespace mm::fil
