#include "observability/observability_flags.h"

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdlib>

namespace mm {

void AddObservabilityFlags(CLI::App& app, ObservabilityFlags& flags) {
  app.add_option("--allow-metrics", flags.allow_metrics,
                 "Serve Prometheus metrics at /metrics on --metrics-port (no API key asked: "
                 "they name models and tenants; bind them where only operators reach)")
      ->capture_default_str();
  app.add_option("--metrics-address", flags.metrics.address,
                 "Address the metrics endpoint listens on")
      ->capture_default_str();
  app.add_option("--metrics-port", flags.metrics.port, "Metrics port (0 picks a free one)")
      ->capture_default_str();
  app.add_option("--log-format", flags.log_format,
                 "Log lines as text, or as JSON objects (one per line)")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--access-log", flags.access_log,
                 "Write one line per inference request (id, tenant, model, version, status, "
                 "durations) to this file, or - for standard output; in --log-format");
  app.add_option("--trace-rate", flags.tracer.rate,
                 "Fraction of requests without a W3C traceparent that are traced (a request "
                 "with one follows its sampled flag); needs --trace-endpoint or --trace-file")
      ->capture_default_str()
      ->check(CLI::Range(kTraceRateBounds.min, kTraceRateBounds.max));
  app.add_option("--trace-endpoint", flags.tracer.endpoint,
                 "OTLP/HTTP JSON collector for traces, e.g. http://127.0.0.1:4318/v1/traces");
  app.add_option("--trace-file", flags.tracer.file,
                 "Append traces to this file instead, one OTLP JSON export request per line");
  app.add_option("--trace-buffer", flags.tracer.buffer_capacity,
                 "Traces waiting for export at most; more are dropped (and counted)")
      ->capture_default_str()
      ->check(CLI::Range(kTraceBufferBounds.min, kTraceBufferBounds.max));
  app.add_option("--trace-flush-ms", flags.trace_flush_ms,
                 "Longest wait before traces are exported")
      ->capture_default_str()
      ->check(CLI::Range(kTraceFlushMsBounds.min, kTraceFlushMsBounds.max))
      ->group("");
  app.add_option("--log-level", flags.log_level,
                 "trace, debug, info, warn, error (the last one given)")
      ->capture_default_str()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
}

LogFormat ConfigureLoggingFromFlags(const ObservabilityFlags& flags) {
  spdlog::set_level(spdlog::level::from_str(flags.log_level));
  const LogFormat format = flags.log_format == "json" ? LogFormat::kJson : LogFormat::kText;
  ConfigureLogging(format);
  if (format == LogFormat::kJson) setenv("MMSERVE_LOG_FORMAT", "json", 1);  // for workers
  return format;
}

StatusOr<std::unique_ptr<AccessLog>> OpenAccessLog(const ObservabilityFlags& flags,
                                                   LogFormat format) {
  if (flags.access_log.empty()) return std::unique_ptr<AccessLog>();
  return AccessLog::Create(flags.access_log, format);
}

StatusOr<std::unique_ptr<Tracer>> CreateTracer(const ObservabilityFlags& flags) {
  Tracer::Options options = flags.tracer;
  options.flush_interval = std::chrono::milliseconds(flags.trace_flush_ms);
  auto tracer = Tracer::Create(std::move(options));
  if (!tracer.ok()) return tracer.status().WithContext("tracing (--trace-*)");
  if ((*tracer)->Enabled()) {
    spdlog::info(
        "tracing {} of requests without a traceparent (and those whose parent is "
        "sampled) to {}",
        flags.tracer.rate,
        flags.tracer.endpoint.empty() ? flags.tracer.file : flags.tracer.endpoint);
  }
  return tracer;
}

}  // namespace mm
