#include "backends/fil/fil_output.h"

#include <cmath>
#include <cstring>
#include <string>

namespace mm::fil {

StatusOr<int64_t> OutputColumnsFor(const ScoreLayout& layout, const OutputRule& rule,
                                   const char* what) {
  if (rule.predict_proba) {
    if (layout.num_classes < 2) {
      return InvalidArgument(std::string("predict_proba is set but the model (") + what +
                             ") is a regressor: expected a classifier, or predict_proba false");
    }
    if (layout.score_columns == 1) return rule.binary_proba_single_column ? 1 : 2;
    return layout.score_columns;
  }
  if (rule.output_class) return 1;
  return layout.score_columns;
}

int64_t ArgMax(const float* values, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (values[i] > values[best]) best = i;
  }
  return best;
}

void SoftmaxInPlace(float* values, int64_t n) {
  float max = values[0];
  for (int64_t i = 1; i < n; ++i) max = std::fmax(max, values[i]);
  double sum = 0.0;  // as XGBoost's common::Softmax
  for (int64_t i = 0; i < n; ++i) {
    values[i] = std::exp(values[i] - max);
    sum += values[i];
  }
  for (int64_t i = 0; i < n; ++i) values[i] /= static_cast<float>(sum);
}

void ApplyOutputRule(const float* scores, int64_t n_rows, const ScoreLayout& layout,
                     const OutputRule& rule, float* out) {
  const int64_t k = layout.score_columns;
  if (rule.predict_proba && k == 1 && !rule.binary_proba_single_column) {
    // (1-p, p), last row first so that scores == out works.
    for (int64_t r = n_rows - 1; r >= 0; --r) {
      float p = scores[r];
      out[2 * r] = 1.0f - p;
      out[2 * r + 1] = p;
    }
    return;
  }
  if (rule.output_class && !rule.predict_proba) {
    // Row r's class goes to out[r], at or before its scores: in place is safe.
    for (int64_t r = 0; r < n_rows; ++r) {
      const float* row = scores + r * k;
      out[r] =
          k == 1 ? (row[0] > rule.threshold ? 1.0f : 0.0f) : static_cast<float>(ArgMax(row, k));
    }
    return;
  }
  if (scores != out) std::memcpy(out, scores, sizeof(float) * static_cast<size_t>(n_rows * k));
}

}  // namespace mm::fil
