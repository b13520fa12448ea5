// The parts of the console's overview document (GET /console/api/overview,
// specified in console/console_overview.h) that `ctl top` shows, parsed into
// plain structs. Counters are cumulative; top_view.h takes the differences.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace mm {

struct OverviewModel {
  std::string name;
  int64_t version = 0;
  std::string state;
  std::string tenant;
  std::string repository;
  int64_t memory_bytes = 0;
  int64_t queued = 0;
  int64_t executing = 0;
  bool has_stats = false;  // "stats" is absent for a version never loaded
  uint64_t success = 0;
  uint64_t failures = 0;
  std::vector<uint64_t> latency_counts;  // per bucket; bounds + 1 entries (+Inf last)
};

struct Overview {
  std::string server_name;
  std::string server_version;
  bool ready = false;
  int64_t time_ms = 0;  // Unix ms, the server's clock
  double uptime_s = 0;
  bool tenants = false;
  int64_t slots_size = 0;
  int64_t slots_busy = 0;
  int64_t slots_waiting = 0;
  std::vector<double> latency_bounds_s;
  int64_t memory_budget = 0;  // 0: unlimited
  int64_t memory_loaded = 0;
  std::vector<OverviewModel> models;
};

// INVALID_ARGUMENT when `json` is not an overview document (not JSON, no
// "server" object or "models" array, or a schema other than 1).
StatusOr<Overview> ParseOverview(std::string_view json);

}  // namespace mm
