// The tables of `ctl models`, `ctl stats` and `ctl usage`, made from the
// server's JSON replies (pure functions: the commands fetch, these format).
// INVALID_ARGUMENT when a reply is not the JSON document expected; fields
// missing inside it show as empty or zero.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/status.h"

namespace mm {

// POST /v2/repository/index's array -> NAME VERSION STATE REASON. With
// `max_width` > 0 the REASON column is truncated ("…") to fit it.
StatusOr<std::string> FormatModelsTable(std::string_view index_json, size_t max_width);

// GET /v2/models/{m}/stats -> one row per model version: its successes,
// failures, executions, inference rows, and the average queue, compute-infer
// and whole-request milliseconds (cumulative ns / count).
StatusOr<std::string> FormatStatsTable(std::string_view stats_json);

// GET /v2/usage -> one row per tenant and model (a tenant without models has
// one row, model "-"); REFUSED, counted per tenant, is on its first row.
StatusOr<std::string> FormatUsageTable(std::string_view usage_json);

}  // namespace mm
