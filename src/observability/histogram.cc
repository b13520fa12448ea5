#include "observability/histogram.h"

namespace mm {

static_assert(LatencyHistogram::kBoundsNs.front() == 50'000, "buckets start at 50 us");
static_assert(LatencyHistogram::kBoundsNs.back() == 60'000'000'000, "buckets end at 60 s");

}  // namespace mm
