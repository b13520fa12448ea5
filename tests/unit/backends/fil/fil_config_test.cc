// ParseFilParameters: Triton FIL's parameters, table-driven.
#include "backends/fil/fil_config.h"

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mm::fil {
namespace {

inference::ModelConfig Config(const std::vector<std::pair<std::string, std::string>>& params) {
  inference::ModelConfig config;
  for (const auto& [key, value] : params) {
    (*config.mutable_parameters())[key].set_string_value(value);
  }
  return config;
}

TEST(FilConfigTest, Defaults) {
  auto p = ParseFilParameters(Config({}));
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->model_type, ModelType::kXGBoost);
  EXPECT_FALSE(p->rule.output_class);
  EXPECT_FALSE(p->rule.predict_proba);
  EXPECT_EQ(p->rule.threshold, 0.5f);
  EXPECT_FALSE(p->allow_unknown_field);
  EXPECT_TRUE(p->warnings.empty());
}

TEST(FilConfigTest, ModelTypesAndTheirFiles) {
  struct Case {
    std::string name;
    ModelType type;
    std::string file;
  };
  const Case cases[] = {
      {"xgboost", ModelType::kXGBoost, "xgboost.model"},
      {"xgboost_json", ModelType::kXGBoostJson, "xgboost.json"},
      {"xgboost_ubj", ModelType::kXGBoostUbj, "xgboost.ubj"},
      {"lightgbm", ModelType::kLightGBM, "model.txt"},
      {"treelite_checkpoint", ModelType::kTreeliteCheckpoint, "checkpoint.tl"},
  };
  for (const Case& c : cases) {
    auto p = ParseFilParameters(Config({{"model_type", c.name}}));
    ASSERT_TRUE(p.ok()) << c.name << ": " << p.status().message();
    EXPECT_EQ(p->model_type, c.type) << c.name;
    EXPECT_EQ(ModelTypeName(c.type), c.name);
    EXPECT_EQ(DefaultModelFileName(c.type), c.file) << c.name;
  }
}

TEST(FilConfigTest, ParsesValues) {
  struct Case {
    std::vector<std::pair<std::string, std::string>> params;
    bool output_class, predict_proba;
    float threshold;
    bool allow_unknown_field;
  };
  const Case cases[] = {
      {{{"is_classifier", "true"}}, true, false, 0.5f, false},
      {{{"output_class", "true"}}, true, false, 0.5f, false},  // FIL's older name
      {{{"is_classifier", "true"}, {"output_class", "true"}}, true, false, 0.5f, false},
      {{{"is_classifier", "false"}, {"output_class", "false"}}, false, false, 0.5f, false},
      {{{"is_classifier", "true"}, {"predict_proba", "true"}}, true, true, 0.5f, false},
      {{{"is_classifier", "true"}, {"threshold", "0.25"}}, true, false, 0.25f, false},
      {{{"threshold", "-3"}}, false, false, -3.0f, false},
      {{{"threshold", "1e-2"}}, false, false, 0.01f, false},
      {{{"threshold", "+0.75"}}, false, false, 0.75f, false},
      {{{"xgboost_allow_unknown_field", "true"}}, false, false, 0.5f, true},
  };
  for (const Case& c : cases) {
    auto p = ParseFilParameters(Config(c.params));
    ASSERT_TRUE(p.ok()) << p.status().message();
    EXPECT_EQ(p->rule.output_class, c.output_class) << c.params[0].first;
    EXPECT_EQ(p->rule.predict_proba, c.predict_proba) << c.params[0].first;
    EXPECT_EQ(p->rule.threshold, c.threshold) << c.params[0].first;
    EXPECT_EQ(p->allow_unknown_field, c.allow_unknown_field) << c.params[0].first;
    EXPECT_TRUE(p->warnings.empty());
  }
}

TEST(FilConfigTest, RefusesWhatItCannotRead) {
  struct Case {
    std::vector<std::pair<std::string, std::string>> params;
    std::vector<std::string> message;  // each part must be in the error
  };
  const Case cases[] = {
      {{{"model_type", "pickle"}},
       {"parameter 'model_type' is 'pickle'",
        "expected one of xgboost, xgboost_json, xgboost_ubj, lightgbm, treelite_checkpoint"}},
      {{{"model_type", "XGBoost"}}, {"'XGBoost'"}},
      {{{"is_classifier", "True"}},
       {"parameter 'is_classifier' is 'True'", "expected exactly 'true' or 'false'"}},
      {{{"output_class", "1"}}, {"parameter 'output_class' is '1'"}},
      {{{"predict_proba", "yes"}}, {"parameter 'predict_proba' is 'yes'"}},
      {{{"xgboost_allow_unknown_field", ""}}, {"parameter 'xgboost_allow_unknown_field' is ''"}},
      {{{"is_classifier", "true"}, {"output_class", "false"}},
       {"'is_classifier' (true) and 'output_class' (false) disagree"}},
      {{{"threshold", "half"}},
       {"parameter 'threshold' is 'half'", "expected a finite number (the default is 0.5)"}},
      {{{"threshold", "0.5x"}}, {"'0.5x'"}},
      {{{"threshold", ""}}, {"parameter 'threshold' is ''"}},
      {{{"threshold", "nan"}}, {"'nan'", "finite"}},
      {{{"threshold", "inf"}}, {"'inf'", "finite"}},
      {{{"threshold", "+"}}, {"'+'"}},
      {{{"threshold", "+-1"}}, {"'+-1'"}},
  };
  for (const Case& c : cases) {
    auto p = ParseFilParameters(Config(c.params));
    ASSERT_FALSE(p.ok()) << c.params[0].first << "=" << c.params[0].second;
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
    for (const std::string& part : c.message) {
      EXPECT_NE(p.status().message().find(part), std::string::npos)
          << p.status().message() << "\nmissing: " << part;
    }
  }
}

TEST(FilConfigTest, SpeedOnlyParametersWarnOnceEachAndNameWhy) {
  const std::vector<std::string> keys = {
      "algo",       "threads_per_tree", "storage_type",       "blocks_per_sm",
      "layout",     "chunk_size",       "transfer_threshold", "use_experimental_optimizations",
      "cpu_nthread"};
  std::vector<std::pair<std::string, std::string>> params;
  for (const auto& key : keys) params.emplace_back(key, "x");
  auto p = ParseFilParameters(Config(params));
  ASSERT_TRUE(p.ok()) << p.status().message();
  ASSERT_EQ(p->warnings.size(), keys.size());
  for (const auto& key : keys) {
    int found = 0;
    for (const auto& w : p->warnings) {
      if (w.find("parameter '" + key + "' ") == 0) {
        ++found;
        EXPECT_NE(w.find("has no effect here: "), std::string::npos) << w;
      }
    }
    EXPECT_EQ(found, 1) << key;
  }
  for (const auto& w : p->warnings) {
    if (w.find("'cpu_nthread'") != std::string::npos) {
      EXPECT_NE(w.find("one thread"), std::string::npos) << w;
      EXPECT_NE(w.find("instance_group count"), std::string::npos) << w;
    }
    if (w.find("'algo'") != std::string::npos) {
      EXPECT_NE(w.find("removed in FIL 25.09"), std::string::npos) << w;
    }
  }
}

TEST(FilConfigTest, UnknownKeysGetOneWarningNamingThem) {
  auto p = ParseFilParameters(Config({{"zeta", "1"}, {"alpha", "2"}, {"model_type", "lightgbm"}}));
  ASSERT_TRUE(p.ok()) << p.status().message();
  ASSERT_EQ(p->warnings.size(), 1u);
  EXPECT_NE(p->warnings[0].find("does not read parameter(s) 'alpha', 'zeta'"), std::string::npos)
      << p->warnings[0];
  EXPECT_EQ(p->model_type, ModelType::kLightGBM);
}

}  // namespace
}  // namespace mm::fil
