// xgboost_json and xgboost_ubj models, run by XGBoost's own library
// (XGBoosterPredictFromDense: in-place prediction on the caller's rows).
#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "backends/fil/engines.h"
#include "backends/fil/fil_output.h"
#include "backends/fil/xgboost_check.h"

namespace mm::fil {
namespace {

// The footprint (TreeModel::info().bytes) of a loaded XGBoost model. XGBoost
// has no size API, so it is computed from the model's shape, with constants
// fitted to the heap that loads keep (tree_model_test.cc, Footprint*, checks
// them within 25%: 12 trees/154 nodes -> 16.5 KB, 25 trees/1497 nodes ->
// 90.7 KB, ASan's allocator count). Where the bytes go (XGBoost 3.2,
// include/xgboost/tree_model.h): per node RegTree::Node 20 B + RTreeNodeStat
// 16 B + split type 1 B + category segment 16 B; per tree the RegTree object
// and its vectors' headers; per model the Learner, GBTree, objective and
// configuration.
constexpr uint64_t kModelBytes = 2800;
constexpr uint64_t kTreeBytes = 500;
constexpr uint64_t kNodeBytes = 50;

struct BoosterDeleter {
  const XGBoostLibrary* library;
  void operator()(void* handle) const { library->booster_free(handle); }
};
using Booster = std::unique_ptr<void, BoosterDeleter>;

Status LibraryError(const XGBoostLibrary& library, const std::string& what) {
  return Internal("XGBoost " + what + ": " + LastError(library.get_last_error));
}

struct Objective {
  std::string name;
  ScoreLayout layout;
  bool margin_softmax = false;  // multi:softmax: predict margins, softmax them ourselves
};

class XGBoostModel final : public TreeModel {
 public:
  XGBoostModel(const XGBoostLibrary& library, Booster booster, Objective objective,
               TreeModelInfo info)
      : library_(library),
        booster_(std::move(booster)),
        objective_(std::move(objective)),
        info_(std::move(info)) {
    // type 0: the objective's transform (probabilities); 1: margins.
    std::snprintf(config_, sizeof(config_),
                  "{\"type\":%d,\"training\":false,\"iteration_begin\":0,\"iteration_end\":0,"
                  "\"strict_shape\":false,\"missing\":NaN,\"cache_id\":0}",
                  objective_.margin_softmax ? 1 : 0);
  }

  const TreeModelInfo& info() const override { return info_; }

  StatusOr<int64_t> OutputColumns(const OutputRule& rule) const override {
    return OutputColumnsFor(objective_.layout, rule, info_.description.c_str());
  }

  Status Predict(const float* rows, int64_t n_rows, const OutputRule& rule,
                 float* out) const override {
    return Run(rows, "<f4", n_rows, rule, out);
  }
  Status PredictFP64(const double* rows, int64_t n_rows, const OutputRule& rule,
                     float* out) const override {
    return Run(rows, "<f8", n_rows, rule, out);
  }

  // Predicts one row of NaN: configures the booster (XGBoost does it at the
  // first prediction) on the loader thread and proves the model runs.
  Status Warm() const {
    ScoreLayout l = objective_.layout;
    std::vector<float> row(static_cast<size_t>(std::max<int64_t>(info_.num_features, 1)), NAN);
    std::vector<float> out(static_cast<size_t>(l.score_columns));
    return Predict(row.data(), 1, OutputRule{}, out.data());
  }

 private:
  Status Run(const void* rows, const char* typestr, int64_t n_rows, const OutputRule& rule,
             float* out) const {
    if (n_rows == 0) return OkStatus();
    PrepareThisThread(library_);
    char array[192];
    std::snprintf(array, sizeof(array),
                  "{\"data\":[%" PRIuPTR ",true],\"shape\":[%" PRId64 ",%" PRId64
                  "],\"strides\":null,\"typestr\":\"%s\",\"version\":3}",
                  reinterpret_cast<uintptr_t>(rows), n_rows, info_.num_features, typestr);
    const capi::bst_ulong* shape = nullptr;
    capi::bst_ulong dims = 0;
    const float* result = nullptr;
    if (library_.predict_from_dense(booster_.get(), array, config_, ThisThreadProxy(library_),
                                    &shape, &dims, &result) != 0) {
      return LibraryError(library_, "prediction failed");
    }
    const int64_t k = objective_.layout.score_columns;
    uint64_t size = 1;
    for (capi::bst_ulong d = 0; d < dims; ++d) size *= shape[d];
    if (result == nullptr || size != static_cast<uint64_t>(n_rows * k)) {
      return Internal("XGBoost returned " + std::to_string(size) + " values for " +
                      std::to_string(n_rows) + " rows: expected " + std::to_string(k) + " per row");
    }
    if (!objective_.margin_softmax || (rule.output_class && !rule.predict_proba)) {
      // Classes of multi:softmax are the argmax of the margins, as XGBoost's.
      ApplyOutputRule(result, n_rows, objective_.layout, rule, out);
      return OkStatus();
    }
    float* probabilities = ThreadScratch<float, XGBoostModel>(static_cast<size_t>(n_rows * k));
    std::memcpy(probabilities, result, sizeof(float) * static_cast<size_t>(n_rows * k));
    for (int64_t r = 0; r < n_rows; ++r) SoftmaxInPlace(probabilities + r * k, k);
    ApplyOutputRule(probabilities, n_rows, objective_.layout, rule, out);
    return OkStatus();
  }

  const XGBoostLibrary& library_;
  Booster booster_;
  const Objective objective_;
  const TreeModelInfo info_;
  char config_[160];
};

// The learner's configuration (XGBoosterSaveJsonConfig): objective, classes,
// booster; refuses what FIL cannot serve.
StatusOr<Objective> ReadObjective(const XGBoostLibrary& library, void* booster,
                                  uint64_t* num_trees) {
  capi::bst_ulong length = 0;
  const char* json = nullptr;
  if (library.save_json_config(booster, &length, &json) != 0) {
    return LibraryError(library, "could not give the model's configuration");
  }
  simdjson::dom::parser parser;
  simdjson::dom::element config;
  if (parser.parse(json, length).get(config) != simdjson::SUCCESS) {
    return Internal("XGBoost gave a configuration that is not JSON");
  }
  auto text = [&](const char* pointer) -> std::string {
    std::string_view value;
    if (config.at_pointer(pointer).get_string().get(value) != simdjson::SUCCESS) return "";
    return std::string(value);
  };
  auto number = [&](const char* pointer, int64_t fallback) -> int64_t {
    std::string value = text(pointer);
    if (value.empty()) return fallback;
    char* end = nullptr;
    long long n = std::strtoll(value.c_str(), &end, 10);
    return end == value.c_str() ? fallback : n;
  };
  std::string booster_name = text("/learner/gradient_booster/name");
  if (booster_name == "gblinear") {
    return InvalidArgument(
        "the model's booster is gblinear (a linear model): expected trees (gbtree or dart)");
  }
  if (booster_name != "gbtree" && booster_name != "dart") {
    return InvalidArgument("the model's booster is '" + booster_name +
                           "': expected trees (gbtree or dart)");
  }
  if (int64_t targets = number("/learner/learner_model_param/num_target", 1); targets != 1) {
    return InvalidArgument("the model has " + std::to_string(targets) +
                           " targets: expected one (FIL serves no multi-target model)");
  }
  if (text("/learner/learner_train_param/multi_strategy") == "multi_output_tree") {
    return InvalidArgument(
        "the model has vector leaves (multi_strategy multi_output_tree): expected one output "
        "per tree");
  }
  const char* trees_pointer = booster_name == "dart"
                                  ? "/learner/gradient_booster/gbtree/gbtree_model_param/"
                                    "num_trees"
                                  : "/learner/gradient_booster/gbtree_model_param/num_trees";
  *num_trees = static_cast<uint64_t>(std::max<int64_t>(number(trees_pointer, 0), 0));

  Objective objective;
  objective.name = text("/learner/objective/name");
  int64_t num_class = number("/learner/learner_model_param/num_class", 0);
  if (objective.name.starts_with("binary:")) {
    objective.layout = {2, 1};
  } else if (objective.name.starts_with("multi:")) {
    if (num_class < 2 || num_class > 1'000'000) {
      return InvalidArgument("the model's objective is " + objective.name + " with num_class " +
                             std::to_string(num_class) + ": expected 2 or more classes");
    }
    objective.layout = {num_class, num_class};
    objective.margin_softmax = objective.name == "multi:softmax";
  } else {
    objective.layout = {1, 1};
  }
  return objective;
}

// XGBoost decides JSON or UBJSON by the bytes; FIL's model_type says which
// the file is meant to be, and a file of the other kind is refused.
bool LooksLikeJson(const std::string& bytes) {
  size_t i = 0;
  while (i < bytes.size() && std::isspace(static_cast<unsigned char>(bytes[i]))) ++i;
  if (i == bytes.size() || bytes[i] != '{') return false;
  ++i;
  while (i < bytes.size() && std::isspace(static_cast<unsigned char>(bytes[i]))) ++i;
  return i < bytes.size() && (bytes[i] == '"' || bytes[i] == '}');
}

}  // namespace

StatusOr<std::unique_ptr<TreeModel>> LoadXGBoostModel(const XGBoostLibrary& library, ModelType type,
                                                      const std::string& bytes,
                                                      const std::string& file) {
  const bool json = LooksLikeJson(bytes);
  if (type == ModelType::kXGBoostJson && !json) {
    return InvalidArgument("model_type xgboost_json but " + file +
                           " is not XGBoost JSON (expected a JSON object; a UBJSON model is "
                           "model_type xgboost_ubj)");
  }
  if (type == ModelType::kXGBoostUbj && json) {
    return InvalidArgument("model_type xgboost_ubj but " + file +
                           " is JSON text: expected UBJSON (a JSON model is model_type "
                           "xgboost_json)");
  }
  XGBoostShape shape;
  MM_RETURN_IF_ERROR(
      (json ? CheckXGBoostJson(bytes, &shape) : CheckUbjson(bytes, &shape)).WithContext(file));
  PrepareThisThread(library);
  void* handle = nullptr;
  if (library.booster_create(nullptr, 0, &handle) != 0) {
    return LibraryError(library, "could not create a booster");
  }
  Booster booster(handle, BoosterDeleter{&library});
  // One thread from the start: XGBoost parses the trees in an OpenMP loop.
  if (library.set_param(handle, "nthread", "1") != 0) {
    return LibraryError(library, "refused nthread=1");
  }
  if (library.load_model_from_buffer(handle, bytes.data(), bytes.size()) != 0) {
    return InvalidArgument("XGBoost could not load " + file + ": " +
                           LastError(library.get_last_error));
  }
  if (library.set_param(handle, "nthread", "1") != 0) {
    return LibraryError(library, "refused nthread=1");
  }
  capi::bst_ulong num_features = 0;
  if (library.get_num_feature(handle, &num_features) != 0) {
    return LibraryError(library, "could not give the number of features");
  }
  uint64_t num_trees = 0;
  auto objective = ReadObjective(library, handle, &num_trees);
  if (!objective.ok()) return objective.status().WithContext(file);
  if (num_features == 0 || num_features > (1u << 24)) {
    return InvalidArgument(file + ": the model takes " + std::to_string(num_features) +
                           " features: expected 1 to 16777216");
  }

  // What XGBoost loaded is what was checked.
  if (shape.trees != num_trees) {
    return InvalidArgument(file + ": XGBoost loaded " + std::to_string(num_trees) +
                           " trees where the file's trees arrays hold " +
                           std::to_string(shape.trees));
  }
  if (shape.max_split_feature >= static_cast<int64_t>(num_features)) {
    return InvalidArgument(file + ": a tree splits on feature " +
                           std::to_string(shape.max_split_feature) + " but the model takes " +
                           std::to_string(num_features) + " features");
  }
  const uint64_t nodes = shape.nodes;

  TreeModelInfo info;
  info.num_features = static_cast<int64_t>(num_features);
  info.num_classes = objective->layout.num_classes;
  info.bytes = kModelBytes + kTreeBytes * num_trees + kNodeBytes * nodes;
  info.description = "XGBoost " + library.version + ", " + objective->name + ", " +
                     std::to_string(num_trees) + " trees";
  auto model = std::make_unique<XGBoostModel>(library, std::move(booster), std::move(*objective),
                                              std::move(info));
  if (Status warm = model->Warm(); !warm.ok()) return warm.WithContext(file);
  return std::unique_ptr<TreeModel>(std::move(model));
}

}  // namespace mm::fil
