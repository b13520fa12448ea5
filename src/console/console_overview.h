// The console's JSON endpoint (GET /console/api/overview): one snapshot of
// the whole server, for the web console (console_assets.h) and
// `mmserve ctl top`, which poll it. Everything comes from what the server
// already keeps (the index, the statistics, the memory account, the usage
// ledger, the drift monitors, the execution slots); nothing is computed or
// kept on the request path for it. Counters are cumulative: a poller takes
// the difference of two snapshots over `time_ms` to get rates and, from the
// histograms' bucket counts, latency quantiles over the interval.
//
// The document (every field always present unless marked "optional"):
//   {
//     "schema": 1,
//     "server": {"name": str, "version": str, "ready": bool, "time_ms": int (Unix ms),
//                "uptime_s": number, "tenants": bool (a tenants file is in force),
//                "control_mode": "none"|"explicit"|"poll"},
//     "slots": {"size": int, "busy": int, "waiting": int},
//     "latency_bounds_s": [number x 19]   the histograms' finite upper bounds,
//                                          seconds; a histogram has 20 counts,
//                                          the last for +Inf
//     "memory": {"budget": int (bytes, 0: unlimited), "loaded": int, "pinned": int,
//                "evictable": int (idle unpinned copies),
//                "eviction_order": [{"model": str, "version": int, "tenant": str,
//                                    "bytes": int}]   the first 10, next to go first},
//     "models": [{
//        "name": str, "version": int (0: none listed yet: a model not loaded
//        since the server started, or one without a loadable version), "state":
//        "UNAVAILABLE"|"LOADING"|"READY"|"UNLOADING", "reason": str,
//        "tenant": str (the repository's owner in the tenants file, "" for
//        none), "repository": str,
//        "platform": str, "isolation": "in-process"|"process" (READY only, else ""),
//        "instances": int (READY only, else 0), "pinned": bool,
//        "memory_bytes": int, "queued": int, "executing": int,
//        "restarts": int, "last_failure": str,
//        "stats": optional (absent for a version never loaded) {
//           "success": int, "failures": int, "in_flight": int, "executions": int,
//           "rows": int, "loads": int, "load_failures": int, "evictions": int,
//           "last_load_s": number (the last successful load's duration, 0: none),
//           "latency": {"counts": [int x 20], "sum_s": number},  request duration
//           "queue":   {"counts": [int x 20], "sum_s": number},  queue time
//           "compute": {"counts": [int x 20], "sum_s": number}}, model execution
//        "drift": [{"input": str, "feature": int, "psi": number|null (not enough rows yet),
//                   "alerting": bool, "rows": int}]  (empty without a baseline)
//     }],  by name, repository, version
//     "tenants": [{"id": str, "role": "admin"|"user", "weight": number,
//                  "quotas": {"max_concurrency": int, "requests_per_second": number,
//                             "burst": number, "max_loaded_models": int,
//                             "memory_bytes": int}   (0: none),
//                  "in_flight": int (held concurrency slots),
//                  "refused": int, "requests": int, "failures": int,
//                  "compute_s": number, "bytes_in": int, "bytes_out": int}]
//        every tenant of the tenants file, then every other one with usage
//        (the open server's default tenant; one a reload removed)
//   }
//
// Only an admin may read it (the router checks); it names every tenant's models.
// Thread-safety: may be called concurrently from any thread.
#pragma once

#include <cstdint>
#include <string>

#include "service/inference_service.h"

namespace mm {

// Appends the document above to `out`: `service`'s models, memory, tenants
// and its model manager's execution slots.
void AppendConsoleOverview(const InferenceService& service, std::string& out);

}  // namespace mm
