// Latency quantiles from histogram bucket counts, as Prometheus's
// histogram_quantile computes them: find the bucket holding rank q * total,
// then interpolate linearly between its lower and upper bounds. `top` feeds
// it the difference of two snapshots' counts, so the quantile is over the
// interval between them.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace mm {

// `bounds`: the finite upper bounds, ascending (the first bucket's lower
// bound is 0). `counts`: per-bucket (not cumulative) counts, one per bound
// plus a last one for +Inf. `q` in [0, 1].
// Returns nullopt when there are no observations or the sizes do not match
// (counts.size() != bounds.size() + 1). A rank in the +Inf bucket answers the
// highest finite bound, as Prometheus does.
std::optional<double> HistogramQuantile(double q, std::span<const double> bounds,
                                        std::span<const uint64_t> counts);

}  // namespace mm
