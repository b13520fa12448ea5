// FilBackend and FilInstance with a fake engine (a TreeModel whose answer is
// a simple function of each row): file naming and checks, settings,
// instances, KIND_GPU, the footprint, Execute (views, FP64, misalignment,
// batching, the squeeze rule, binary p alone) and engine errors.
#include "backends/fil/fil_backend.h"

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <tuple>
#include <vector>

namespace mm::fil {
namespace {

namespace fs = std::filesystem;

// Each row's "score" is the sum of its values (NaN = missing = 0). A
// regressor answers the score; a classifier of C classes: class id = score
// mod C, probabilities = 1 at that class; a binary one (C = 2) p = score / 10,
// answered by its "library" as one score per row, or as two (1-p, p) when
// `two_scores` (a scikit-learn forest). The engines' output rules
// (tree_model.h) are followed.
class FakeTreeModel final : public TreeModel {
 public:
  FakeTreeModel(int64_t features, int64_t classes, uint64_t bytes, bool two_scores)
      : info_{.num_features = features,
              .num_classes = classes,
              .bytes = bytes,
              .description = "fake trees"},
        two_scores_(two_scores) {}
  const TreeModelInfo& info() const override { return info_; }
  StatusOr<int64_t> OutputColumns(const OutputRule& rule) const override {
    if (rule.predict_proba && info_.num_classes == 1) {
      return InvalidArgument("predict_proba asks for class probabilities of a regressor");
    }
    if (rule.predict_proba) {
      if (info_.num_classes == 2) return rule.binary_proba_single_column && !two_scores_ ? 1 : 2;
      return info_.num_classes;
    }
    return rule.output_class || info_.num_classes == 2 ? 1 : info_.num_classes;
  }
  Status Predict(const float* rows, int64_t n_rows, const OutputRule& rule,
                 float* out) const override {
    return Run(rows, n_rows, rule, out);
  }
  Status PredictFP64(const double* rows, int64_t n_rows, const OutputRule& rule,
                     float* out) const override {
    ++fp64_calls;
    return Run(rows, n_rows, rule, out);
  }

  mutable std::atomic<int> calls{0};
  mutable std::atomic<int> fp64_calls{0};
  mutable const void* last_rows = nullptr;
  mutable int64_t last_n_rows = -1;
  bool fail = false;
  bool throws = false;

 private:
  template <typename T>
  Status Run(const T* rows, int64_t n_rows, const OutputRule& rule, float* out) const {
    ++calls;
    last_rows = rows;
    last_n_rows = n_rows;
    if (fail) return Internal("libfake: bad trees");
    if (throws) throw std::runtime_error("libfake threw");
    for (int64_t r = 0; r < n_rows; ++r) {
      T score = 0;
      for (int64_t f = 0; f < info_.num_features; ++f) {
        const T v = rows[r * info_.num_features + f];
        if (!std::isnan(v)) score += v;
      }
      const int64_t c = info_.num_classes;
      if (c == 1) {
        out[r] = static_cast<float>(score);
      } else if (c == 2) {
        const float p = static_cast<float>(score / 10);
        if (rule.predict_proba && (two_scores_ || !rule.binary_proba_single_column)) {
          out[r * 2] = 1 - p;
          out[r * 2 + 1] = p;
        } else if (rule.predict_proba) {
          out[r] = p;
        } else {
          out[r] = rule.output_class ? (p > rule.threshold ? 1.0f : 0.0f) : p;
        }
      } else {
        const int64_t k = static_cast<int64_t>(score) % c;
        if (rule.predict_proba || !rule.output_class) {
          for (int64_t j = 0; j < c; ++j) out[r * c + j] = j == k ? 1.0f : 0.0f;
        } else {
          out[r] = static_cast<float>(k);
        }
      }
    }
    return OkStatus();
  }

  TreeModelInfo info_;
  const bool two_scores_;
};

class FilBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("mm_fil_backend_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "m" / "1");
    auto backend = FilBackend::Create(
        {.libraries = {.xgboost = "/x/libxgboost.so"},
         .loader = [this](ModelType type, const fs::path& file, const TreeLibraryPaths& libraries)
             -> StatusOr<std::unique_ptr<TreeModel>> {
           ++loads_;
           loaded_type_ = type;
           loaded_file_ = file;
           loaded_libraries_ = libraries;
           if (!load_error_.ok()) return load_error_;
           if (load_throws_) throw std::runtime_error("loader threw");
           if (load_null_) return std::unique_ptr<TreeModel>();
           auto model = std::make_unique<FakeTreeModel>(features_, classes_, 4321, two_scores_);
           model_ = model.get();
           return std::unique_ptr<TreeModel>(std::move(model));
         }});
    ASSERT_TRUE(backend.ok()) << backend.status().message();
    backend_ = std::move(*backend);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void WriteFile(const std::string& name) { std::ofstream(dir_ / "m" / "1" / name) << "trees"; }

  StatusOr<std::unique_ptr<LoadedModel>> Load(const std::string& config_text) {
    LoadSpec spec;
    spec.model_name = "m";
    spec.version = 1;
    spec.model_dir = dir_ / "m";
    spec.version_dir = dir_ / "m" / "1";
    EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(config_text, &spec.config));
    spec.config.set_name("m");
    spec.has_config = true;
    spec.platform = "fil";
    return backend_->Load(spec);
  }

  // One request of `rows` x features_ FP32 values at `data`.
  static InferRequest Request(const void* data, int64_t rows, int64_t features,
                              DataType dtype = DataType::kFp32) {
    InferRequest request;
    request.model_name = "m";
    Tensor& input = request.inputs.emplace_back();
    input.name = "input__0";
    input.dtype = dtype;
    input.shape = {rows, features};
    input.data = {static_cast<const std::byte*>(data),
                  static_cast<size_t>(rows * features) * DataTypeSize(dtype)};
    return request;
  }

  static std::vector<float> Values(const Tensor& t) {
    auto v = t.as<float>();
    return {v.begin(), v.end()};
  }

  fs::path dir_;
  std::unique_ptr<Backend> backend_;
  int64_t features_ = 3;
  int64_t classes_ = 1;
  bool two_scores_ = false;
  Status load_error_;
  bool load_throws_ = false;
  bool load_null_ = false;
  int loads_ = 0;
  ModelType loaded_type_ = ModelType::kXGBoost;
  fs::path loaded_file_;
  TreeLibraryPaths loaded_libraries_;
  FakeTreeModel* model_ = nullptr;  // owned by the loaded model
};

constexpr char kRegressor[] =
    "backend: \"fil\" max_batch_size: 8\n"
    "parameters { key: \"model_type\" value { string_value: \"xgboost_json\" } }\n";

TEST_F(FilBackendTest, LoadsFilsFileForTheModelTypeAndCompletesTheConfig) {
  WriteFile("xgboost.json");
  auto loaded = Load(kRegressor);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded_type_, ModelType::kXGBoostJson);
  EXPECT_EQ(loaded_file_, dir_ / "m" / "1" / "xgboost.json");
  EXPECT_EQ(loaded_libraries_.xgboost, "/x/libxgboost.so");
  const auto& config = (*loaded)->config;
  EXPECT_EQ(config.input(0).name(), "input__0");
  EXPECT_EQ(config.input(0).dims(0), 3);
  EXPECT_EQ(config.output(0).name(), "output__0");
  EXPECT_EQ(config.output(0).dims(0), 1);
  EXPECT_TRUE((*loaded)->inline_safe);
  EXPECT_EQ((*loaded)->model_bytes, 4321u);
  EXPECT_EQ((*loaded)->instances.size(), 1u);
}

TEST_F(FilBackendTest, DefaultModelFilenameNamesAnotherFile) {
  WriteFile("customer-7.json");
  auto loaded = Load(std::string(kRegressor) + "default_model_filename: \"customer-7.json\"\n");
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded_file_, dir_ / "m" / "1" / "customer-7.json");
}

TEST_F(FilBackendTest, AMissingFileNamesTheFileAndTheModelType) {
  WriteFile("model.txt");  // a LightGBM file, but model_type says xgboost_json
  auto loaded = Load(kRegressor);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kNotFound);
  const std::string& m = loaded.status().message();
  EXPECT_NE(m.find("model 'm' version 1"), std::string::npos) << m;
  EXPECT_NE(m.find("xgboost.json"), std::string::npos) << m;
  EXPECT_NE(m.find("model_type 'xgboost_json' loads 'xgboost.json' from the version folder"),
            std::string::npos)
      << m;
  EXPECT_EQ(loads_, 0);  // the engine never saw it
  // A name that leaves the version folder never reaches the engine either.
  loaded = Load(std::string(kRegressor) + "default_model_filename: \"../../etc/passwd\"\n");
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("must name a file inside the version directory"),
            std::string::npos)
      << loaded.status().message();
  EXPECT_EQ(loads_, 0);
}

TEST_F(FilBackendTest, ConfigErrorsNameTheModel) {
  WriteFile("xgboost.model");
  auto loaded = Load(
      "backend: \"fil\" max_batch_size: 8\n"
      "parameters { key: \"model_type\" value { string_value: \"onnx\" } }\n");
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("model 'm' version 1: parameter 'model_type' is 'onnx'"),
            std::string::npos)
      << loaded.status().message();
  EXPECT_EQ(loads_, 0);
  // The model's feature count against the config's: both named.
  loaded = Load(
      "backend: \"fil\" max_batch_size: 8\n"
      "input { name: \"input__0\" data_type: TYPE_FP32 dims: [2] }\n");
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find(
                "model 'm' version 1: input 'input__0' has dims [2], but the model takes 3 "
                "features; expected dims [3]"),
            std::string::npos)
      << loaded.status().message();
  // predict_proba on a regressor: the engine says why.
  loaded = Load(
      "backend: \"fil\" max_batch_size: 8\n"
      "parameters { key: \"predict_proba\" value { string_value: \"true\" } }\n");
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("model 'm' version 1: predict_proba asks for"),
            std::string::npos)
      << loaded.status().message();
  // The engine's load error (a corrupt file) keeps its words, with the model's.
  load_error_ = InvalidArgument("'xgboost.model': XGBoost: corrupt model");
  loaded = Load("backend: \"fil\" max_batch_size: 8\n");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(loaded.status().message().find(
                "model 'm' version 1 (xgboost): 'xgboost.model': XGBoost: corrupt model"),
            std::string::npos)
      << loaded.status().message();
}

TEST_F(FilBackendTest, InstancesShareOneModelAndGpuIsRefused) {
  WriteFile("xgboost.json");
  auto loaded = Load(std::string(kRegressor) +
                     "instance_group { kind: KIND_CPU count: 2 }\n"
                     "instance_group { kind: KIND_AUTO count: 3 }\n");
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ((*loaded)->instances.size(), 5u);
  EXPECT_EQ(loads_, 1);                      // one TreeModel for all five
  EXPECT_EQ((*loaded)->model_bytes, 4321u);  // counted once
  loaded = Load(std::string(kRegressor) + "instance_group { name: \"g\" kind: KIND_GPU }\n");
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find(
                "instance_group 'g' asks for KIND_GPU, but the fil backend has no GPU engine"),
            std::string::npos)
      << loaded.status().message();
  EXPECT_NE(loaded.status().message().find("use KIND_CPU or KIND_AUTO"), std::string::npos);
}

TEST_F(FilBackendTest, ExecuteReadsTheRequestsRowsWhereTheyLie) {
  WriteFile("xgboost.json");
  auto loaded = Load(kRegressor);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  // A batch of three requests arrives concatenated, as the batcher merges them.
  const std::vector<float> rows = {1, 2, 3, 4, 5, NAN, 0.5f, 0.25f, 0.125f};
  InferRequest request = Request(rows.data(), 3, 3);
  InferResponse response;
  ASSERT_TRUE((*loaded)->instances[0]->Execute(request, response).ok());
  EXPECT_EQ(model_->last_rows, rows.data());  // a view: no copy
  EXPECT_EQ(model_->fp64_calls, 0);
  EXPECT_EQ(model_->last_n_rows, 3);
  ASSERT_EQ(response.outputs.size(), 1u);
  const Tensor& out = response.outputs[0];
  EXPECT_EQ(out.name, "output__0");
  EXPECT_EQ(out.dtype, DataType::kFp32);
  EXPECT_EQ(out.shape, (Shape{3}));  // dims [1] squeezed: [batch]
  EXPECT_EQ(Values(out), (std::vector<float>{6, 9, 0.875f}));
  EXPECT_NE(out.owner, nullptr);
  // Each row's answer is the same alone as in the batch.
  for (int r = 0; r < 3; ++r) {
    InferRequest one = Request(rows.data() + 3 * r, 1, 3);
    InferResponse alone;
    ASSERT_TRUE((*loaded)->instances[0]->Execute(one, alone).ok());
    EXPECT_EQ(alone.outputs[0].shape, (Shape{1}));
    EXPECT_EQ(Values(alone.outputs[0])[0], Values(out)[r]);
  }
}

TEST_F(FilBackendTest, ExecuteRealignsAndConvertsFp64) {
  WriteFile("xgboost.json");
  auto loaded = Load(kRegressor);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  // FP32 one byte off alignment (a binary section after a JSON header).
  std::vector<std::byte> bytes(1 + 6 * sizeof(float));
  const float values[6] = {1, 1, 1, 2, 2, 2};
  std::memcpy(bytes.data() + 1, values, sizeof(values));
  InferRequest request = Request(bytes.data() + 1, 2, 3);
  InferResponse response;
  ASSERT_TRUE((*loaded)->instances[0]->Execute(request, response).ok());
  EXPECT_NE(reinterpret_cast<const void*>(model_->last_rows), bytes.data() + 1);
  EXPECT_EQ(Values(response.outputs[0]), (std::vector<float>{3, 6}));

  auto fp64 = Load(std::string(kRegressor) +
                   "input { name: \"input__0\" data_type: TYPE_FP64 dims: [3] }\n");
  ASSERT_TRUE(fp64.ok()) << fp64.status().message();
  const std::vector<double> doubles = {0.5, 0.25, NAN, 10, 20, 30};
  InferRequest d = Request(doubles.data(), 2, 3, DataType::kFp64);
  InferResponse dr;
  ASSERT_TRUE((*fp64)->instances[0]->Execute(d, dr).ok());
  EXPECT_EQ(Values(dr.outputs[0]), (std::vector<float>{0.75f, 60}));
  EXPECT_EQ(model_->fp64_calls, 1);  // handed to the library as FP64
  EXPECT_EQ(model_->last_rows, doubles.data());
  // Misaligned FP64 is realigned.
  std::vector<std::byte> dbytes(4 + doubles.size() * sizeof(double));
  std::memcpy(dbytes.data() + 4, doubles.data(), doubles.size() * sizeof(double));
  InferRequest dm = Request(dbytes.data() + 4, 2, 3, DataType::kFp64);
  InferResponse dmr;
  ASSERT_TRUE((*fp64)->instances[0]->Execute(dm, dmr).ok());
  EXPECT_NE(model_->last_rows, dbytes.data() + 4);
  EXPECT_EQ(Values(dmr.outputs[0]), (std::vector<float>{0.75f, 60}));
  // An FP32 request to the FP64 model never reaches the engine.
  InferRequest wrong = Request(values, 2, 3);
  InferResponse wr;
  EXPECT_EQ((*fp64)->instances[0]->Execute(wrong, wr).code(), StatusCode::kInvalidArgument);
}

TEST_F(FilBackendTest, OutputsFollowFilsRules) {
  WriteFile("xgboost.json");
  const std::vector<float> rows = {2, 3, 2, 1};  // scores 5 and 3 (features_ = 2)
  features_ = 2;
  auto run = [&](const std::string& config) -> std::pair<Shape, std::vector<float>> {
    auto loaded = Load(config);
    EXPECT_TRUE(loaded.ok()) << loaded.status().message();
    if (!loaded.ok()) return {};
    InferRequest request = Request(rows.data(), 2, 2);
    InferResponse response;
    Status s = (*loaded)->instances[0]->Execute(request, response);
    EXPECT_TRUE(s.ok()) << s.message();
    if (!s.ok()) return {};
    return {response.outputs[0].shape, Values(response.outputs[0])};
  };
  const std::string base = kRegressor;
  auto param = [](const std::string& k, const std::string& v) {
    return "parameters { key: \"" + k + "\" value { string_value: \"" + v + "\" } }\n";
  };
  // Binary (C = 2): p = 0.5 and 0.3.
  classes_ = 2;
  auto [shape, v] = run(base + param("is_classifier", "true"));
  EXPECT_EQ(shape, (Shape{2}));
  EXPECT_EQ(v, (std::vector<float>{0, 0}));  // p > 0.5 is strict
  std::tie(shape, v) = run(base + param("is_classifier", "true") + param("threshold", "0.4"));
  EXPECT_EQ(v, (std::vector<float>{1, 0}));
  std::tie(shape, v) = run(base + param("is_classifier", "true") + param("predict_proba", "true"));
  EXPECT_EQ(shape, (Shape{2, 2}));  // auto-completed dims [2]
  EXPECT_EQ(v, (std::vector<float>{0.5f, 0.5f, 1 - 0.3f, 0.3f}));
  // dims [1]: p alone, [batch]; written by the engine, or kept from its two
  // columns (a forest of two score columns).
  for (bool two : {false, true}) {
    two_scores_ = two;
    std::tie(shape, v) =
        run(base + param("is_classifier", "true") + param("predict_proba", "true") +
            "output { name: \"output__0\" data_type: TYPE_FP32 dims: [1] }\n");
    EXPECT_EQ(shape, (Shape{2})) << two;
    EXPECT_EQ(v, (std::vector<float>{0.5f, 0.3f})) << two;
  }
  two_scores_ = false;
  // Neither flag: the framework's predict(), p.
  std::tie(shape, v) = run(base);
  EXPECT_EQ(shape, (Shape{2}));
  EXPECT_EQ(v, (std::vector<float>{0.5f, 0.3f}));
  // Multiclass (C = 3): class ids [batch]; probabilities [batch, 3].
  classes_ = 3;
  std::tie(shape, v) = run(base + param("output_class", "true"));
  EXPECT_EQ(shape, (Shape{2}));
  EXPECT_EQ(v, (std::vector<float>{2, 0}));
  std::tie(shape, v) = run(base + param("output_class", "true") + param("predict_proba", "true"));
  EXPECT_EQ(shape, (Shape{2, 3}));
  EXPECT_EQ(v, (std::vector<float>{0, 0, 1, 1, 0, 0}));
}

TEST_F(FilBackendTest, EngineErrorsAreInternalNamingTheModel) {
  WriteFile("xgboost.json");
  auto loaded = Load(kRegressor);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  model_->fail = true;
  const std::vector<float> rows = {1, 2, 3};
  InferRequest request = Request(rows.data(), 1, 3);
  InferResponse response;
  Status s = (*loaded)->instances[0]->Execute(request, response);
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_EQ(s.message(), "model 'm': libfake: bad trees");
  // Nothing thrown crosses Execute.
  model_->fail = false;
  model_->throws = true;
  s = (*loaded)->instances[0]->Execute(request, response);
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_EQ(s.message(), "model 'm': the engine failed: libfake threw");
  // Nor Load: a loader that throws, or returns nothing, is a load error.
  load_throws_ = true;
  auto failed = Load(kRegressor);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().message(),
            "model 'm' version 1 (xgboost_json): the engine failed: loader threw");
  load_throws_ = false;
  load_null_ = true;
  failed = Load(kRegressor);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().message(),
            "model 'm' version 1 (xgboost_json): the engine loaded nothing");
}

TEST(FilSettingsTest, LibraryPathsFromBackendConfig) {
  EXPECT_TRUE(TreeLibrariesFromSettings({}).ok());
  const fs::path lib = fs::temp_directory_path() / ("mm_fil_lib_" + std::to_string(::getpid()));
  std::ofstream(lib) << "ELF";
  auto paths = TreeLibrariesFromSettings(
      {{"xgboost-library", lib.string()}, {"treelite-library", lib.string()}});
  ASSERT_TRUE(paths.ok()) << paths.status().message();
  EXPECT_EQ(paths->xgboost, lib);
  EXPECT_EQ(paths->treelite, lib);
  EXPECT_TRUE(paths->lightgbm.empty());
  auto bad = TreeLibrariesFromSettings({{"xgboost", lib.string()}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("unknown setting 'xgboost'; expected xgboost-library, "
                                        "lightgbm-library or treelite-library"),
            std::string::npos)
      << bad.status().message();
  bad = TreeLibrariesFromSettings({{"lightgbm-library", "/nonexistent/lib_lightgbm.so"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'/nonexistent/lib_lightgbm.so', which is not a library "
                                        "file (expected the path of lib_lightgbm.so)"),
            std::string::npos)
      << bad.status().message();
  fs::remove(lib);
  EXPECT_FALSE(FilBackend::Create({}).ok());  // no loader
}

}  // namespace
}  // namespace mm::fil
