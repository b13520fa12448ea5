// Observability's flags, beside the Options of what they configure: the log
// (level, format), the access log, tracing (Tracer::Options) and the metrics
// endpoint (MetricsServer::Options).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/bounds.h"
#include "core/status.h"
#include "observability/logging.h"
#include "observability/metrics.h"
#include "observability/tracer.h"

namespace CLI {
class App;
}

namespace mm {

inline constexpr Bounds<double> kTraceRateBounds{0.0, 1.0};
inline constexpr Bounds<size_t> kTraceBufferBounds{1, size_t{1} << 20};
inline constexpr Bounds<int64_t> kTraceFlushMsBounds{1, 3'600'000};

struct ObservabilityFlags {
  std::string log_level = "info";
  std::string log_format = "text";
  std::string access_log;  // empty: none; "-": standard output
  // rate, endpoint, file, buffer_capacity (flush_interval: trace_flush_ms).
  Tracer::Options tracer;
  int64_t trace_flush_ms = 1000;
  bool allow_metrics = true;
  MetricsServer::Options metrics;
};

// Registers --log-level, --log-format, --access-log, --trace-rate,
// --trace-endpoint, --trace-file, --trace-buffer, --trace-flush-ms,
// --allow-metrics, --metrics-address and --metrics-port into `flags` (which
// must outlive the parse).
void AddObservabilityFlags(CLI::App& app, ObservabilityFlags& flags);

// Sets this process's log level and format; the format reaches the worker
// processes through MMSERVE_LOG_FORMAT. Returns the format.
LogFormat ConfigureLoggingFromFlags(const ObservabilityFlags& flags);

// The access log of --access-log in `format`; null when the flag is not given.
StatusOr<std::unique_ptr<AccessLog>> OpenAccessLog(const ObservabilityFlags& flags,
                                                   LogFormat format);

// The tracer the --trace-* flags say (off without a destination), logging
// what it traces when on. Errors name the flags.
StatusOr<std::unique_ptr<Tracer>> CreateTracer(const ObservabilityFlags& flags);

}  // namespace mm
