// What `ctl top` shows, computed from two successive overview snapshots
// (overview.h) and rendered as text lines: pure functions, so that the live
// loop (top_command.cc) only fetches, waits and draws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ctl/overview.h"

namespace mm {

struct TopRow {
  std::string name;
  int64_t version = 0;
  std::string state;
  std::string tenant;
  std::optional<double> requests_per_s;  // nullopt: no earlier snapshot yet
  std::optional<double> errors_per_s;
  std::optional<double> p50_s;  // nullopt: no request finished in the interval
  std::optional<double> p99_s;
  int64_t queued = 0;
  int64_t executing = 0;
  int64_t memory_bytes = 0;
};

// One row per model version of `current`. With `previous` (the snapshot
// taken before it), rates are the counters' differences over the servers'
// time_ms difference (`fallback_interval_s` when that is not positive), and
// p50/p99 come from the latency histograms' differences (quantiles.h). A
// version absent from `previous` counts from zero; a counter that went down
// (the version reloaded) counts from zero too. Sorted by req/s descending,
// then name, then version.
std::vector<TopRow> ComputeTopRows(const Overview* previous, const Overview& current,
                                   double fallback_interval_s);

// The frame: a header line (server name and version, uptime, slots, memory),
// a blank line, the table (MODEL VERSION STATE TENANT REQ/S ERR/S P50 MS
// P99 MS QUEUE EXEC MEMORY), then `footer` when not empty. Lines end in '\n'
// and fit `width` columns when it is > 0 (the MODEL column shrinks first).
std::string RenderTopFrame(const Overview& current, const std::vector<TopRow>& rows, size_t width,
                           const std::string& footer);

}  // namespace mm
