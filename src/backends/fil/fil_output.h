// FIL's output rules (tree_model.h, OutputRule), written once for the three
// engines: from each row's scores, as the library computed them, to the
// answer Predict writes. Pure functions, no allocation. Private to
// src/backends/fil/.
#pragma once

#include <cstdint>

#include "backends/fil/tree_model.h"
#include "core/status.h"

namespace mm::fil {

// What an engine's scores are, per row.
struct ScoreLayout {
  // 1: a regressor; 2: a binary classifier; C: a multiclass one.
  int64_t num_classes = 1;
  // Scores per row: 1 (a value, or a binary model's p) or num_classes
  // (per-class probabilities).
  int64_t score_columns = 1;
};

// The values per row under `rule`; INVALID_ARGUMENT for predict_proba on a
// regressor. `what` names the model in the message ("XGBoost reg:squarederror").
StatusOr<int64_t> OutputColumnsFor(const ScoreLayout& layout, const OutputRule& rule,
                                   const char* what);

// Writes n_rows x OutputColumnsFor(...) into out from n_rows x
// layout.score_columns scores (transformed: probabilities for a classifier).
// `scores` may be `out` when the columns are the same (the answer is the
// scores, or the rule reduces each row to one value).
void ApplyOutputRule(const float* scores, int64_t n_rows, const ScoreLayout& layout,
                     const OutputRule& rule, float* out);

// Index of the largest of n values; ties and NaN go to the first.
int64_t ArgMax(const float* values, int64_t n);

// XGBoost's softmax of one row of margins, in place (multi:softprob's
// formula: exp(x - max) / sum, in float as XGBoost computes it).
void SoftmaxInPlace(float* values, int64_t n);

}  // namespace mm::fil
