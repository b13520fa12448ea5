// Body of Triton's statistics extension over HTTP: GET /v2/models/stats and
// GET /v2/models/{m}[/versions/{v}]/stats. Pure function, no I/O.
#pragma once

#include <string>
#include <vector>

#include "observability/model_stats.h"

namespace mm {

// {"model_stats":[..]}: one entry per snapshot, in order, with Triton's fields
// (name, version, last_inference, inference_count, execution_count,
// inference_stats with success/fail/queue/compute_*/cache_* durations,
// batch_stats, memory_usage) and mmserve's own figures under "mmserve"
// (tenant, in_flight, failures by status code, loads, evictions, drift);
// clients ignore what they do not know. A drift feature not ready yet has
// "psi": null.
std::string EncodeStatistics(const std::vector<ModelStatsSnapshot>& all);

}  // namespace mm
