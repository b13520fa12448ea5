// A tree ensemble loaded by its framework's own library (XGBoost, LightGBM,
// Treelite), behind one small interface: the FIL backend's engine seam.
//
// Which library serves which FIL model_type (docs/fil.md says why):
//   xgboost_json, xgboost_ubj           -> XGBoost's C API (libxgboost)
//   lightgbm                            -> LightGBM's C API (lib_lightgbm)
//   treelite_checkpoint                 -> Treelite's GTIL (libtreelite)
//   xgboost (legacy binary)             -> Treelite's GTIL (XGBoost >= 3.1
//                                          cannot read it)
// Each library is opened (dlopen) at the first model that needs it and never
// closed; a server with no tree model never maps any of them.
//
// Contract:
//  1. LoadTreeModel runs on a loader thread. On success the caller owns the
//     TreeModel; on failure nothing is left behind and the Status names the
//     file and the library's reason. The file has already passed the
//     repository's checks (size, regular file); its content is hostile.
//  2. A TreeModel is immutable once loaded: Predict may run concurrently on
//     any number of threads, each call on one thread only (the library is
//     told to use one thread: execution slots are the unit of parallelism).
//  3. Predict writes FIL's answer for each row (OutputRule), row-major, FP32,
//     exactly what the framework's own predict / predict_proba gives.
//  4. info().bytes is the library's own size of the model (its trees), not a
//     heap delta: it is what the memory budget charges.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "core/status.h"

namespace mm::fil {

// Triton FIL's model_type parameter.
enum class ModelType { kXGBoost, kXGBoostJson, kXGBoostUbj, kLightGBM, kTreeliteCheckpoint };

// Triton FIL's output parameters (output_class, predict_proba, threshold),
// and what each row's answer is (docs/fil.md, "Outputs"):
//   predict_proba            per-class probabilities, as the framework's
//                            predict_proba: C columns; a binary model with one
//                            score gives (1-p, p), or p alone when
//                            binary_proba_single_column (FIL's output dims [1]);
//   output_class, no proba   the class: binary p > threshold (strict) -> 1.0,
//                            else 0.0; multiclass the argmax (ties: the first);
//   neither                  the framework's predict value(s): a regressor's
//                            value, a binary model's p, a multiclass model's C
//                            probabilities.
// predict_proba on a regressor is refused (OutputColumns).
struct OutputRule {
  bool output_class = false;
  bool predict_proba = false;
  float threshold = 0.5f;
  bool binary_proba_single_column = false;
};

struct TreeModelInfo {
  int64_t num_features = 0;
  // Classes of a classifier (2 for a binary one); 1 for a regressor.
  int64_t num_classes = 1;
  // The library's size of the model in memory, in bytes (contract 4).
  uint64_t bytes = 0;
  // For logs and errors: "XGBoost 3.2.0, binary:logistic, 100 trees".
  std::string description;
};

class TreeModel {
 public:
  virtual ~TreeModel() = default;
  virtual const TreeModelInfo& info() const = 0;
  // The values Predict writes per row under `rule` (the output's dims);
  // INVALID_ARGUMENT when the rule does not fit the model, saying why
  // (predict_proba on a regressor).
  virtual StatusOr<int64_t> OutputColumns(const OutputRule& rule) const = 0;
  // rows: n_rows x num_features FP32, row-major, NaN = missing. out: n_rows x
  // OutputColumns(rule). A library error is INTERNAL naming the library.
  virtual Status Predict(const float* rows, int64_t n_rows, const OutputRule& rule,
                         float* out) const = 0;
  // The same for FP64 rows, handed to the library as FP64 (as the framework's
  // Python predict does with a float64 array), not rounded to FP32 first.
  virtual Status PredictFP64(const double* rows, int64_t n_rows, const OutputRule& rule,
                             float* out) const = 0;
};

// Where the libraries are; an empty path means the one found at build time
// (build/fil.env), under ~/.cache/mmserve/.
struct TreeLibraryPaths {
  std::filesystem::path xgboost;
  std::filesystem::path lightgbm;
  std::filesystem::path treelite;
};

StatusOr<std::unique_ptr<TreeModel>> LoadTreeModel(ModelType type,
                                                   const std::filesystem::path& file,
                                                   const TreeLibraryPaths& libraries);

}  // namespace mm::fil
