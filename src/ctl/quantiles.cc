#include "ctl/quantiles.h"

#include <algorithm>

namespace mm {

std::optional<double> HistogramQuantile(double q, std::span<const double> bounds,
                                        std::span<const uint64_t> counts) {
  if (counts.size() != bounds.size() + 1 || bounds.empty()) return std::nullopt;
  uint64_t total = 0;
  for (const uint64_t c : counts) total += c;
  if (total == 0) return std::nullopt;
  q = std::clamp(q, 0.0, 1.0);
  const double rank = q * static_cast<double>(total);
  uint64_t below = 0;  // observations in the buckets before bucket i
  for (size_t i = 0; i < counts.size(); ++i) {
    const uint64_t in_bucket = counts[i];
    if (in_bucket == 0 || static_cast<double>(below + in_bucket) < rank) {
      below += in_bucket;
      continue;
    }
    if (i == bounds.size()) return bounds.back();  // +Inf bucket
    const double lower = i == 0 ? 0.0 : bounds[i - 1];
    const double upper = bounds[i];
    const double into = (rank - static_cast<double>(below)) / static_cast<double>(in_bucket);
    return lower + (upper - lower) * into;
  }
  return bounds.back();
}

}  // namespace mm
