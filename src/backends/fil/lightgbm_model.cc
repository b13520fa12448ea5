// lightgbm models (LightGBM's text format), run by LightGBM's own library
// (LGBM_BoosterPredictForMat), which also runs linear trees (linear_tree),
// which Treelite would silently drop.
#include <algorithm>
#include <climits>
#include <cstring>
#include <vector>

#include "backends/fil/engines.h"
#include "backends/fil/fil_output.h"
#include "backends/fil/tree_check.h"

namespace mm::fil {
namespace {

// The footprint (TreeModel::info().bytes) of a loaded LightGBM model, from its
// shape, with constants fitted to the heap that loads keep (tree_model_test.cc,
// Footprint*, checks them within 25%: 12 trees/72 leaves -> 17.8 KB, 25
// trees/600 leaves -> 60.5 KB, ASan's allocator count). Where the bytes go
// (LightGBM 4.7, include/LightGBM/tree.h): a Tree keeps ~16 std::vectors
// indexed by leaf or node (ints, floats, doubles: ~66 B a leaf with its
// internal node), the Tree object and those vectors' headers ~600 B, and the
// GBDT object its configuration and feature names and infos.
constexpr uint64_t kModelBytes = 6000;
constexpr uint64_t kTreeBytes = 600;
constexpr uint64_t kLeafBytes = 66;

struct BoosterDeleter {
  const LightGBMLibrary* library;
  void operator()(void* handle) const { library->booster_free(handle); }
};
using Booster = std::unique_ptr<void, BoosterDeleter>;

Status LibraryError(const LightGBMLibrary& library, const std::string& what) {
  return Internal("LightGBM " + what + ": " + LastError(library.get_last_error));
}

// The value of the header's `key=` line (before the first tree), as LightGBM
// reads it.
std::string HeaderValue(std::string_view text, std::string_view key) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (line.starts_with("Tree=")) break;
    if (line.starts_with(key) && line.size() > key.size() && line[key.size()] == '=') {
      line.remove_prefix(key.size() + 1);
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
      return std::string(line);
    }
    pos = end + 1;
  }
  return "";
}

// Space-separated integers (LightGBM's arrays); false on anything else.
bool ParseInts(std::string_view text, std::vector<int32_t>* out) {
  out->clear();
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && text[i] == ' ') ++i;
    if (i == text.size()) break;
    bool negative = text[i] == '-';
    if (negative) ++i;
    int64_t v = 0;
    size_t digits = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      v = v * 10 + (text[i++] - '0');
      if (++digits > 10) return false;
    }
    if (digits == 0 || (i < text.size() && text[i] != ' ')) return false;
    v = negative ? -v : v;
    if (v < INT32_MIN || v > INT32_MAX) return false;
    out->push_back(static_cast<int32_t>(v));
  }
  return true;
}

// Checks every tree of the text LightGBM loaded and counts the leaves. It
// reads the trees as LightGBM's Tree(const char*) does (src/io/tree.cpp: the
// lines after "Tree=" up to a blank one, key=value, arrays split on ' '),
// but refuses what LightGBM would read differently from us: a line without
// '=' (LightGBM's key would run on into the next line), a key given twice
// (LightGBM keeps the last), more than 22 lines, anything but plain integers.
// And the count of trees must be LightGBM's own, so none is read past. (Asking
// LightGBM for its own text back, LGBM_BoosterSaveModelToString, doubles a
// load's time: 8 ms more for 100 trees.)
Status CheckTrees(std::string_view text, int64_t num_trees, int64_t num_features,
                  uint64_t* leaves) {
  std::vector<int32_t> left, right, split;
  std::vector<std::string_view> keys;
  int64_t num_leaves = -1, trees = 0;
  bool in_tree = false;
  *leaves = 0;
  auto finish = [&]() -> Status {
    if (!in_tree) return OkStatus();
    in_tree = false;
    MM_RETURN_IF_ERROR(CheckLightGBMTree(num_leaves, left, right, split, num_features,
                                         "tree " + std::to_string(trees)));
    *leaves += static_cast<uint64_t>(num_leaves);
    ++trees;
    return OkStatus();
  };
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.starts_with("Tree=")) {
      MM_RETURN_IF_ERROR(finish());
      in_tree = true;
      num_leaves = -1;
      left.clear();
      right.clear();
      split.clear();
      keys.clear();
      continue;
    }
    if (line.empty() || line.starts_with("end of trees")) {
      MM_RETURN_IF_ERROR(finish());
      if (line.starts_with("end of trees")) break;
      continue;
    }
    if (!in_tree) continue;
    const size_t equals = line.find('=');
    if (equals == std::string_view::npos || keys.size() >= 22 ||
        std::find(keys.begin(), keys.end(), line.substr(0, equals)) != keys.end()) {
      return InvalidArgument("tree " + std::to_string(trees) +
                             " has a line without '=', a key twice or over 22 lines");
    }
    keys.push_back(line.substr(0, equals));
    bool ok = true;
    std::vector<int32_t> one;
    if (line.starts_with("num_leaves=")) {
      ok = ParseInts(line.substr(11), &one) && one.size() == 1;
      if (ok) num_leaves = one[0];
    } else if (line.starts_with("left_child=")) {
      ok = ParseInts(line.substr(11), &left);
    } else if (line.starts_with("right_child=")) {
      ok = ParseInts(line.substr(12), &right);
    } else if (line.starts_with("split_feature=")) {
      ok = ParseInts(line.substr(14), &split);
    }
    if (!ok) return InvalidArgument("tree " + std::to_string(trees) + " has a malformed line");
  }
  MM_RETURN_IF_ERROR(finish());
  if (trees != num_trees) {
    return InvalidArgument("LightGBM's copy of the model has " + std::to_string(trees) +
                           " trees where it counts " + std::to_string(num_trees));
  }
  return OkStatus();
}

class LightGBMModel final : public TreeModel {
 public:
  LightGBMModel(const LightGBMLibrary& library, Booster booster, ScoreLayout layout,
                TreeModelInfo info)
      : library_(library), booster_(std::move(booster)), layout_(layout), info_(std::move(info)) {}

  const TreeModelInfo& info() const override { return info_; }

  StatusOr<int64_t> OutputColumns(const OutputRule& rule) const override {
    return OutputColumnsFor(layout_, rule, info_.description.c_str());
  }
  Status Predict(const float* rows, int64_t n_rows, const OutputRule& rule,
                 float* out) const override {
    return Run(rows, capi::kLgbmDtypeFloat32, n_rows, rule, out);
  }
  Status PredictFP64(const double* rows, int64_t n_rows, const OutputRule& rule,
                     float* out) const override {
    return Run(rows, capi::kLgbmDtypeFloat64, n_rows, rule, out);
  }

 private:
  Status Run(const void* rows, int dtype, int64_t n_rows, const OutputRule& rule,
             float* out) const {
    if (n_rows == 0) return OkStatus();
    if (n_rows > INT32_MAX) {
      return InvalidArgument("LightGBM takes at most 2147483647 rows per call, got " +
                             std::to_string(n_rows));
    }
    PrepareThisThread(library_);
    const int64_t k = layout_.score_columns;
    const size_t n_scores = static_cast<size_t>(n_rows * k);
    // LightGBM predicts into doubles; they become FP32 scores here.
    double* values = ThreadScratch<double, LightGBMModel>(n_scores);
    int64_t written = 0;
    if (library_.predict_for_mat(booster_.get(), rows, dtype, static_cast<int32_t>(n_rows),
                                 static_cast<int32_t>(info_.num_features), /*is_row_major=*/1,
                                 capi::kLgbmPredictNormal, /*start_iteration=*/0,
                                 /*num_iteration=*/-1, "num_threads=1", &written, values) != 0) {
      return LibraryError(library_, "prediction failed");
    }
    if (written != n_rows * k) {
      return Internal("LightGBM returned " + std::to_string(written) + " values for " +
                      std::to_string(n_rows) + " rows: expected " + std::to_string(k) + " per row");
    }
    // The scores go straight into `out` where it holds them (ApplyOutputRule
    // works in place); a multiclass model's classes need a scratch.
    const bool in_place = k == 1 || !(rule.output_class && !rule.predict_proba);
    float* scores = in_place ? out : ThreadScratch<float, LightGBMModel>(n_scores);
    for (size_t i = 0; i < n_scores; ++i) scores[i] = static_cast<float>(values[i]);
    ApplyOutputRule(scores, n_rows, layout_, rule, out);
    return OkStatus();
  }

  const LightGBMLibrary& library_;
  Booster booster_;
  const ScoreLayout layout_;
  const TreeModelInfo info_;
};

}  // namespace

StatusOr<std::unique_ptr<TreeModel>> LoadLightGBMModel(const LightGBMLibrary& library,
                                                       const std::string& bytes,
                                                       const std::string& file) {
  if (std::memchr(bytes.data(), '\0', bytes.size()) != nullptr) {
    return InvalidArgument(file + " holds a NUL byte: expected LightGBM's text model format");
  }
  PrepareThisThread(library);
  // The header's tree_sizes line lets LightGBM cut the text into trees and
  // parse them on all cores; it trusts those sizes and reads past the end of
  // a truncated file (seen: SEGV in Tree::Tree). Without it, LightGBM finds
  // each "Tree=" itself and parses them in turn on this thread.
  std::string text = bytes;
  if (size_t at = text.find("\ntree_sizes="), first_tree = text.find("\nTree=");
      at != std::string::npos && at < first_tree) {
    size_t end = text.find('\n', at + 1);
    text.erase(at, (end == std::string::npos ? text.size() : end) - at);
  }
  // Tree::Tree scans for the next '=' and the next newline with no end
  // pointer: a file cut inside a tree would be read past its end. This
  // sentinel stops both scans; LightGBM then refuses the incomplete tree.
  text += "\n\n=\n\n";
  void* handle = nullptr;
  int iterations = 0;
  if (library.load_model_from_string(text.c_str(), &iterations, &handle) != 0) {
    return InvalidArgument("LightGBM could not load " + file + ": " +
                           LastError(library.get_last_error));
  }
  Booster booster(handle, BoosterDeleter{&library});
  int num_features = 0, num_classes = 0, num_trees = 0;
  if (library.get_num_feature(handle, &num_features) != 0 ||
      library.get_num_classes(handle, &num_classes) != 0 ||
      library.number_of_total_model(handle, &num_trees) != 0) {
    return LibraryError(library, "could not describe " + file);
  }
  if (num_features <= 0 || num_features > (1 << 24)) {
    return InvalidArgument(file + ": the model takes " + std::to_string(num_features) +
                           " features: expected 1 to 16777216");
  }
  if (num_trees <= 0) return InvalidArgument(file + " has no trees: expected a trained model");
  // LightGBM counts a binary model as one class (one score, p).
  std::string objective = HeaderValue(bytes, "objective");
  std::string objective_name = objective.substr(0, objective.find(' '));
  ScoreLayout layout;
  if (num_classes > 1) {
    layout = {num_classes, num_classes};
  } else if (objective_name == "binary") {
    layout = {2, 1};
  }
  uint64_t leaves = 0;
  if (Status check = CheckTrees(text, num_trees, num_features, &leaves); !check.ok()) {
    return check.WithContext(file);
  }
  TreeModelInfo info;
  info.num_features = num_features;
  info.num_classes = layout.num_classes;
  info.bytes = kModelBytes + kTreeBytes * static_cast<uint64_t>(num_trees) + kLeafBytes * leaves;
  info.description = "LightGBM, " + (objective_name.empty() ? "regression" : objective_name) +
                     ", " + std::to_string(num_trees) + " trees";
  if (HeaderValue(bytes, "is_linear") == "1" || bytes.find("\nis_linear=1") != std::string::npos) {
    info.description += ", linear";
  }
  return std::unique_ptr<TreeModel>(
      std::make_unique<LightGBMModel>(library, std::move(booster), layout, std::move(info)));
}

}  // namespace mm::fil
