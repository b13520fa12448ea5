// What the transports do around each inference request for tracing and the
// access log: one door for both, so that HTTP and gRPC do the same.
//
//   Begin  when the request's bytes are in hand: parses its W3C
//          `traceparent` (HTTP header, gRPC metadata) and decides whether it
//          is traced (Tracer::Sample: a parent's sampled flag, else
//          --trace-rate);
//   End    once its reply is encoded: writes its access log line and, when
//          traced, submits its spans: a root server span (the client's span
//          as parent, when it sent one) with children decode, queue,
//          compute_input, compute_infer, compute_output and encode, each
//          with the model, version and tenant (and the batch size on the
//          compute spans and the root). An ensemble's trace has one
//          ensemble_step span per step instead of queue and compute spans,
//          each with its step number, its model and version, its queue
//          time and batch size.
//
// Cost: with neither tracing nor an access log the transports skip it all
// (enabled() is false). With tracing only, an unsampled request costs a
// header lookup and a random number. Thread-safety: every method may be
// called concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "observability/logging.h"
#include "observability/metrics.h"
#include "observability/request_record.h"
#include "observability/trace_context.h"
#include "observability/tracer.h"

namespace mm {

class RequestObserver {
 public:
  // Either may be null (not owned; they outlive the observer).
  RequestObserver(Tracer* tracer, AccessLog* access_log);

  bool enabled() const { return tracing_ || access_log_ != nullptr; }
  bool tracing() const { return tracing_; }

  struct Trace {
    bool sampled = false;
    bool has_parent = false;
    TraceContext parent;  // the client's span, when has_parent
  };
  // `traceparent`: the header's value, empty when absent. A malformed one
  // is ignored (a new trace starts, as the W3C spec says).
  Trace Begin(std::string_view traceparent) const;
  // Whether a request Begin answered `trace` for needs observing at all (an
  // ObservedRequest): it is traced, or the access log is on. Otherwise the
  // transport skips it, paying nothing more.
  bool Wants(const Trace& trace) const { return trace.sampled || access_log_ != nullptr; }
  void End(const RequestRecord& record, const Trace& trace) const;

  // mmserve_traces_* and mmserve_access_log_dropped_lines_total, for the
  // metrics (a MetricsCollector).
  void Collect(MetricFamilies& out) const;

  // The spans End would submit for `record` (tests).
  std::unique_ptr<RequestTrace> MakeTrace(const RequestRecord& record, const Trace& trace) const;

 private:
  int64_t ToUnixNs(int64_t steady_ns) const { return steady_ns + steady_to_unix_ns_; }

  Tracer* const tracer_;
  AccessLog* const access_log_;
  const bool tracing_;
  const int64_t steady_to_unix_ns_;  // add to a steady-clock time for Unix time
};

// One inference request under observation, from its bytes to its reply:
// what both transports do with a RequestObserver. Made when the request is
// decoded (only when the observer is enabled), kept (shared) by the request's
// completion until the reply is encoded. Not copyable: the record points into
// it.
class ObservedRequest {
 public:
  // `protocol`: a literal ("http", "grpc"); `trace`: what observer.Begin
  // said; `received_ns`: when the request's bytes were in hand (steady
  // clock); decoding ends now.
  ObservedRequest(const RequestObserver& observer, std::string_view protocol,
                  const RequestObserver::Trace& trace, std::string_view tenant,
                  const InferRequest& request, int64_t received_ns);
  ObservedRequest(const ObservedRequest&) = delete;
  ObservedRequest& operator=(const ObservedRequest&) = delete;

  // The service's answer, before the transport encodes it.
  void Answered(const StatusOr<std::unique_ptr<InferResponse>>& result);
  // Encoding the answer failed after all: the record says so.
  void EncodingFailed(std::string_view message);
  // The reply is encoded: the record goes to the access log and the tracer.
  void Encoded();

 private:
  const RequestObserver& observer_;
  const RequestObserver::Trace trace_;
  const std::string model_, id_, tenant_;
  std::string version_, error_;
  std::vector<StepTiming> steps_;  // an ensemble's
  RequestRecord record_;           // its views point into the members above
};

}  // namespace mm
