// The FIL engine (backends/fil/tree_model.h) against the frameworks' own
// answers: data/make_test_models.py trained each model and wrote what XGBoost,
// LightGBM and scikit-learn predict for the same rows into data/expected.json.
#include "backends/fil/tree_model.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <thread>
#include <vector>

#include "core/memory.h"
#include "source_dir.h"

namespace mm::fil {
namespace {

const std::filesystem::path kData =
    std::filesystem::path(MMSERVE_SOURCE_DIR) / "tests/unit/backends/fil/data";

struct Case {
  std::string name;
  std::string file;
  ModelType type;
  int64_t num_features;
  int64_t num_classes;
  std::vector<float> rows;  // n x num_features, NaN = missing
  std::vector<double> value, proba;
  std::vector<int64_t> classes;
  int64_t n_rows() const { return static_cast<int64_t>(rows.size()) / num_features; }
};

ModelType TypeOf(std::string_view name) {
  if (name == "xgboost") return ModelType::kXGBoost;
  if (name == "xgboost_json") return ModelType::kXGBoostJson;
  if (name == "xgboost_ubj") return ModelType::kXGBoostUbj;
  if (name == "lightgbm") return ModelType::kLightGBM;
  return ModelType::kTreeliteCheckpoint;
}

std::map<std::string, Case> LoadCases() {
  simdjson::dom::parser parser;
  simdjson::dom::element root = parser.load((kData / "expected.json").string());
  std::map<std::string, Case> cases;
  for (auto [key, m] : root["models"].get_object()) {
    Case c;
    c.name = std::string(key);
    c.file = std::string(std::string_view(m["file"]));
    c.type = TypeOf(std::string_view(m["model_type"]));
    c.num_features = int64_t(m["num_features"]);
    c.num_classes = int64_t(m["num_classes"]);
    std::string_view rows_key = "rows";
    if (m["rows"].error() == simdjson::SUCCESS) rows_key = std::string_view(m["rows"]);
    for (auto row : root[rows_key].get_array()) {
      for (auto v : row.get_array()) {
        c.rows.push_back(v.is_null() ? NAN : static_cast<float>(double(v)));
      }
    }
    for (auto v : m["value"].get_array()) c.value.push_back(double(v));
    if (!m["proba"].is_null()) {
      for (auto v : m["proba"].get_array()) c.proba.push_back(double(v));
    }
    if (!m["classes"].is_null()) {
      for (auto v : m["classes"].get_array()) c.classes.push_back(int64_t(v));
    }
    cases.emplace(c.name, std::move(c));
  }
  return cases;
}

const std::map<std::string, Case>& Cases() {
  static const auto* cases = new std::map<std::string, Case>(LoadCases());
  return *cases;
}

std::unique_ptr<TreeModel> Load(const Case& c) {
  auto model = LoadTreeModel(c.type, kData / c.file, {});
  EXPECT_TRUE(model.ok()) << c.name << ": " << model.status().ToString();
  return model.ok() ? std::move(model).value() : nullptr;
}

std::vector<float> Answer(const TreeModel& model, const Case& c, const OutputRule& rule) {
  auto columns = model.OutputColumns(rule);
  EXPECT_TRUE(columns.ok()) << columns.status().ToString();
  std::vector<float> out(static_cast<size_t>(c.n_rows() * *columns), -7.0f);
  Status s = model.Predict(c.rows.data(), c.n_rows(), rule, out.data());
  EXPECT_TRUE(s.ok()) << c.name << ": " << s.ToString();
  return out;
}

// Floats within 1e-6 relative of the framework's (the bar), with an
// absolute floor of 1e-6 for values near zero.
void ExpectClose(const std::vector<float>& got, const std::vector<double>& want,
                 const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], std::max(1e-6, 1e-6 * std::fabs(want[i]))) << what << " at " << i;
  }
}

class EngineTest : public testing::TestWithParam<std::string> {};

TEST_P(EngineTest, MatchesTheFrameworksOwnPredictions) {
  const Case& c = Cases().at(GetParam());
  auto model = Load(c);
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->info().num_features, c.num_features);
  EXPECT_EQ(model->info().num_classes, c.num_classes);
  EXPECT_GT(model->info().bytes, 0u);
  EXPECT_FALSE(model->info().description.empty());

  // Neither output_class nor predict_proba: the framework's predict value(s).
  ExpectClose(Answer(*model, c, OutputRule{}), c.value, c.name + " value");
  if (c.num_classes == 1) {
    OutputRule proba{.predict_proba = true};
    auto refused = model->OutputColumns(proba);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(refused.status().message().find("regressor"), std::string::npos)
        << refused.status().message();
    return;
  }
  // predict_proba: n x C, as predict_proba.
  ExpectClose(Answer(*model, c, OutputRule{.output_class = true, .predict_proba = true}), c.proba,
              c.name + " proba");
  // output_class: the class ids, exactly.
  std::vector<float> classes = Answer(*model, c, OutputRule{.output_class = true});
  ASSERT_EQ(classes.size(), c.classes.size());
  for (size_t i = 0; i < classes.size(); ++i) {
    EXPECT_EQ(classes[i], static_cast<float>(c.classes[i])) << c.name << " row " << i;
  }
  // FP64 rows give the same answers.
  std::vector<double> rows64(c.rows.begin(), c.rows.end());
  std::vector<float> out64(c.proba.size());
  ASSERT_TRUE(
      model->PredictFP64(rows64.data(), c.n_rows(), OutputRule{.predict_proba = true}, out64.data())
          .ok());
  ExpectClose(out64, c.proba, c.name + " FP64 proba");
}

INSTANTIATE_TEST_SUITE_P(Models, EngineTest,
                         testing::Values("xgb_binary_json", "xgb_binary_ubj", "xgb_softprob",
                                         "xgb_softmax", "xgb_regression", "xgb_legacy",
                                         "lgb_binary", "lgb_multiclass", "lgb_multiclassova",
                                         "lgb_regression", "lgb_linear", "sk_rf_binary",
                                         "sk_gb_regression", "sk_hgb_multiclass"),
                         [](const auto& info) { return info.param; });

// A binary model with one score: threshold (strict >), (1-p, p), or p alone.
TEST(OutputRules, BinaryThresholdAndProbabilityColumns) {
  for (const char* name : {"xgb_binary_json", "lgb_binary", "xgb_legacy"}) {
    const Case& c = Cases().at(name);
    auto model = Load(c);
    ASSERT_NE(model, nullptr);
    const std::vector<double>& p = c.value;
    EXPECT_EQ(*model->OutputColumns(OutputRule{.output_class = true}), 1);
    EXPECT_EQ(*model->OutputColumns(OutputRule{.predict_proba = true}), 2);
    EXPECT_EQ(*model->OutputColumns(
                  OutputRule{.predict_proba = true, .binary_proba_single_column = true}),
              1);
    for (float threshold : {0.2f, 0.5f, 0.8f}) {
      auto out = Answer(*model, c, OutputRule{.output_class = true, .threshold = threshold});
      for (size_t i = 0; i < out.size(); ++i) {
        EXPECT_EQ(out[i], static_cast<float>(p[i]) > threshold ? 1.0f : 0.0f) << name << i;
      }
    }
    // The threshold equal to a row's p: strictly greater is needed.
    float exact = static_cast<float>(p[0]);
    EXPECT_EQ(Answer(*model, c, OutputRule{.output_class = true, .threshold = exact})[0], 0.0f);
    auto single =
        Answer(*model, c, OutputRule{.predict_proba = true, .binary_proba_single_column = true});
    ExpectClose(single, p, std::string(name) + " single column");
  }
}

// A multiclass model: the class is the argmax, threshold plays no part.
TEST(OutputRules, MulticlassIgnoresThreshold) {
  const Case& c = Cases().at("xgb_softprob");
  auto model = Load(c);
  ASSERT_NE(model, nullptr);
  auto a = Answer(*model, c, OutputRule{.output_class = true, .threshold = 0.01f});
  auto b = Answer(*model, c, OutputRule{.output_class = true, .threshold = 0.99f});
  EXPECT_EQ(a, b);
  EXPECT_EQ(*model->OutputColumns(OutputRule{.predict_proba = true}), 3);
  EXPECT_EQ(
      *model->OutputColumns(OutputRule{.predict_proba = true, .binary_proba_single_column = true}),
      3);
}

TEST(Engine, AllNanRowTakesTheDefaultBranches) {
  // Row 8 of the test rows is all NaN; the frameworks answered it too, so it
  // is in MatchesTheFrameworksOwnPredictions. Here: a batch of only NaN rows.
  const Case& c = Cases().at("xgb_regression");
  auto model = Load(c);
  ASSERT_NE(model, nullptr);
  std::vector<float> rows(3 * 4, NAN), out(3);
  ASSERT_TRUE(model->Predict(rows.data(), 3, {}, out.data()).ok());
  EXPECT_NEAR(out[0], c.value[8], 1e-6);
  EXPECT_EQ(out[0], out[2]);
}

TEST(Engine, ZeroRowsIsANoOp) {
  auto model = Load(Cases().at("lgb_regression"));
  ASSERT_NE(model, nullptr);
  float out = 3.0f;
  EXPECT_TRUE(model->Predict(nullptr, 0, {}, &out).ok());
  EXPECT_EQ(out, 3.0f);
}

TEST(Engine, ConcurrentPredictionsAgree) {
  for (const char* name : {"xgb_softprob", "lgb_multiclass", "sk_hgb_multiclass"}) {
    const Case& c = Cases().at(name);
    auto model = Load(c);
    ASSERT_NE(model, nullptr);
    std::vector<std::vector<float>> results(4);
    std::vector<std::thread> threads;
    for (auto& result : results) {
      threads.emplace_back([&] {
        for (int i = 0; i < 20; ++i) {
          std::vector<float> out(c.proba.size());
          if (!model->Predict(c.rows.data(), c.n_rows(), {.predict_proba = true}, out.data())
                   .ok()) {
            return;
          }
          result = out;
        }
      });
    }
    for (auto& t : threads) t.join();
    for (auto& result : results) ExpectClose(result, c.proba, std::string(name) + " threads");
  }
}

// ------------------------------------------------------------ hostile files
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/mm_fil_test_XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::filesystem::path Write(const std::string& name, const std::string& bytes) const {
    std::ofstream(path_ / name, std::ios::binary) << bytes;
    return path_ / name;
  }

 private:
  std::filesystem::path path_;
};

std::string ReadAll(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST(HostileFiles, TruncatedAndCorruptFilesAreErrorsNotCrashes) {
  TempDir dir;
  for (const auto& [name, c] : Cases()) {
    std::string bytes = ReadAll(kData / c.file);
    std::vector<std::string> variants = {
        "",                                 // empty
        bytes.substr(0, 1),                 // one byte
        bytes.substr(0, bytes.size() / 2),  // cut in half
        bytes.substr(0, bytes.size() - 3),  // cut short
        std::string(4096, '\xff'),          // garbage
        bytes.substr(bytes.size() / 2),     // the second half
    };
    for (size_t i = 0; i < variants.size(); ++i) {
      auto path = dir.Write(name + std::to_string(i), variants[i]);
      auto model = LoadTreeModel(c.type, path, {});
      if (!model.ok()) {
        EXPECT_NE(model.status().message(), "") << name << i;
        continue;
      }
      // Cut only where nothing of the trees was (LightGBM's trailing parameter
      // section, padding): then it is the same model, answering the same.
      ASSERT_EQ((*model)->info().num_features, c.num_features) << name << i;
      ExpectClose(Answer(**model, c, {}), c.value, name + " variant " + std::to_string(i));
    }
  }
}

TEST(HostileFiles, ByteFlipsNeverCrash) {
  // Every 97th byte of each model flipped in turn: the library may refuse the
  // file or serve a changed model, but nothing crashes (ASan watches).
  TempDir dir;
  for (const auto& [name, c] : Cases()) {
    // Treelite checkpoints too: Treelite trusts their array lengths (a
    // flipped one asked for terabytes), so treelite_check.h checks them first.
    std::string bytes = ReadAll(kData / c.file);
    for (size_t pos = 7; pos < bytes.size(); pos += 97) {
      std::string damaged = bytes;
      damaged[pos] = static_cast<char>(damaged[pos] ^ 0x5a);
      SCOPED_TRACE(name + " byte " + std::to_string(pos));
      auto model = LoadTreeModel(c.type, dir.Write("flip", damaged), {});
      if (!model.ok()) continue;
      auto columns = (*model)->OutputColumns({});
      if (!columns.ok() || (*model)->info().num_features != c.num_features) continue;
      std::vector<float> out(static_cast<size_t>(c.n_rows() * *columns));
      (void)(*model)->Predict(c.rows.data(), c.n_rows(), {}, out.data());
    }
  }
}

// A child pointing back at the root: XGBoost crashed (SEGV) and LightGBM
// looped forever on such trees; both are refused at load, naming the tree.
TEST(HostileFiles, CyclicTreesAreRefused) {
  TempDir dir;
  auto replace_first = [](std::string text, const std::string& from, const std::string& to) {
    size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return at == std::string::npos ? text : text.replace(at, from.size(), to);
  };
  std::string json = ReadAll(kData / "xgb_regression.json");
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"\"left_children\":[1,", "\"left_children\":[0,"},
           {"\"parents\":[2147483647,0", "\"parents\":[2147483647,99"}}) {
    auto model = LoadTreeModel(ModelType::kXGBoostJson,
                               dir.Write("x.json", replace_first(json, from, to)), {});
    ASSERT_FALSE(model.ok()) << to;
    EXPECT_EQ(model.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(model.status().message().find("tree 0"), std::string::npos)
        << model.status().message();
  }
  std::string text = ReadAll(kData / "lgb_regression.txt");
  auto model = LoadTreeModel(
      ModelType::kLightGBM,
      dir.Write("l.txt", replace_first(text, "left_child=2 3 -1 -2 -4", "left_child=2 0 -1 -2 -4")),
      {});
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("tree 0"), std::string::npos) << model.status().message();
}

TEST(HostileFiles, WrongFormatForTheModelType) {
  auto ubj_as_json = LoadTreeModel(ModelType::kXGBoostJson, kData / "xgb_binary.ubj", {});
  ASSERT_FALSE(ubj_as_json.ok());
  EXPECT_NE(ubj_as_json.status().message().find("xgboost_ubj"), std::string::npos)
      << ubj_as_json.status().message();
  auto json_as_ubj = LoadTreeModel(ModelType::kXGBoostUbj, kData / "xgb_binary.json", {});
  ASSERT_FALSE(json_as_ubj.ok());
  EXPECT_NE(json_as_ubj.status().message().find("xgboost_json"), std::string::npos);
  EXPECT_FALSE(LoadTreeModel(ModelType::kLightGBM, kData / "xgb_binary.json", {}).ok());
  EXPECT_FALSE(LoadTreeModel(ModelType::kTreeliteCheckpoint, kData / "lgb_binary.txt", {}).ok());
  EXPECT_FALSE(LoadTreeModel(ModelType::kXGBoost, kData / "xgb_binary.json", {}).ok());
  auto missing = LoadTreeModel(ModelType::kLightGBM, kData / "no_such_model.txt", {});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("no_such_model.txt"), std::string::npos);
}

TEST(HostileFiles, GblinearIsRefused) {
  auto model = LoadTreeModel(ModelType::kXGBoostJson, kData / "xgb_gblinear.json", {});
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(model.status().message().find("gblinear"), std::string::npos)
      << model.status().message();
}

// ------------------------------------------------------------ libraries
TEST(Libraries, AMissingLibrarySaysHowToGetIt) {
  TreeLibraryPaths paths{.xgboost = "/nonexistent/libxgboost.so"};
  auto model = LoadTreeModel(ModelType::kXGBoostJson, kData / "xgb_binary.json", paths);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), StatusCode::kFailedPrecondition);
  const std::string& m = model.status().message();
  EXPECT_NE(m.find("/nonexistent/libxgboost.so"), std::string::npos) << m;
  EXPECT_NE(m.find("install-deps.sh"), std::string::npos) << m;
  EXPECT_NE(m.find("--backend-config=fil,xgboost-library=PATH"), std::string::npos) << m;
}

TEST(Libraries, AFileThatIsNoLibraryIsRefused) {
  TreeLibraryPaths paths{.lightgbm = kData / "lgb_binary.txt"};
  auto model = LoadTreeModel(ModelType::kLightGBM, kData / "lgb_binary.txt", paths);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(model.status().message().find("could not be opened"), std::string::npos)
      << model.status().message();
}

TEST(Libraries, AnotherLibraryMissesTheSymbols) {
  // A real library, but LightGBM's where XGBoost's is expected.
  auto lightgbm = LoadTreeModel(ModelType::kLightGBM, kData / "lgb_binary.txt", {});
  ASSERT_TRUE(lightgbm.ok()) << lightgbm.status().ToString();
  // The default LightGBM path, found by asking for a model with an empty path
  // first, is in the build's definitions; the test finds it from fil.env.
  std::ifstream env(std::filesystem::path(MMSERVE_SOURCE_DIR) / "build/fil.env");
  std::string line, lightgbm_path;
  while (std::getline(env, line)) {
    if (line.starts_with("FIL_LIGHTGBM_LIBRARY=")) lightgbm_path = line.substr(21);
  }
  ASSERT_FALSE(lightgbm_path.empty());
  TreeLibraryPaths paths{.xgboost = lightgbm_path};
  auto model = LoadTreeModel(ModelType::kXGBoostJson, kData / "xgb_binary.json", paths);
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("has no symbol XGB"), std::string::npos)
      << model.status().message();
}

}  // namespace
}  // namespace mm::fil

namespace mm::fil {
namespace {

// ------------------------------------------------------------ footprint
// info().bytes is computed from the model's shape (each engine's constants);
// the heap a load really keeps must be within 25% of it. 40 copies of each
// model, loaded on this one thread after a first load has paid the library's
// one-off costs, measured by the allocator (core/memory.h).
struct FootprintCase {
  const char* file;
  ModelType type;
};

class FootprintTest : public testing::TestWithParam<FootprintCase> {};

TEST_P(FootprintTest, ComputedBytesMatchTheHeapWithin25Percent) {
  const auto path = kData / GetParam().file;
  auto first = LoadTreeModel(GetParam().type, path, {});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  const uint64_t computed = (*first)->info().bytes;
  constexpr int kCopies = 40;
  std::vector<std::unique_ptr<TreeModel>> models;
  models.reserve(kCopies);
  ReleaseFreeMemory();
  const uint64_t before = HeapInUseBytes();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kCopies; ++i) {
    auto model = LoadTreeModel(GetParam().type, path, {});
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    models.push_back(std::move(model).value());
  }
  const double load_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() /
      kCopies;
  const uint64_t after = HeapInUseBytes();
  const double measured = static_cast<double>(after - before) / kCopies;
  std::printf("footprint %s (%s): computed %llu B, measured %.0f B (%.2fx); load %.2f ms\n",
              GetParam().file, (*first)->info().description.c_str(),
              static_cast<unsigned long long>(computed), measured, computed / measured, load_ms);
  EXPECT_NEAR(static_cast<double>(computed), measured, 0.25 * measured);
}

INSTANTIATE_TEST_SUITE_P(
    Models, FootprintTest,
    testing::Values(FootprintCase{"footprint_xgb.ubj", ModelType::kXGBoostUbj},
                    FootprintCase{"xgb_softprob.json", ModelType::kXGBoostJson},
                    FootprintCase{"footprint_lgb.txt", ModelType::kLightGBM},
                    FootprintCase{"lgb_multiclass.txt", ModelType::kLightGBM},
                    FootprintCase{"footprint_sk_rf.tl", ModelType::kTreeliteCheckpoint},
                    FootprintCase{"sk_hgb_multiclass.tl", ModelType::kTreeliteCheckpoint},
                    FootprintCase{"xgb_legacy.model", ModelType::kXGBoost}),
    [](const auto& info) {
      std::string name = info.param.file;
      for (char& ch : name) {
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      }
      return name;
    });

}  // namespace
}  // namespace mm::fil
