// Tracer: decides which requests are traced and ships their spans to an
// OpenTelemetry collector (OTLP/HTTP with JSON encoding) or to a file, off the
// request path.
//
// One request is one RequestTrace: a SERVER span for the whole request and
// INTERNAL child spans for its stages. The request path asks Sample() whether
// to trace, fills a RequestTrace when it does, and hands it to Submit(). A
// background thread sends what was submitted in batches, every flush_interval
// or as soon as max_batch traces wait.
//
// Loss, never back-pressure: Submit never waits for I/O. A trace that finds
// the buffer full is dropped; a batch the collector does not accept (error
// status, refused connection, timeout) is dropped after one attempt (plus one
// reconnect when a kept-alive connection turned out closed). Both are
// counted. Counters: submitted == exported + dropped + (still buffered).
//
// Thread-safety: Sample, Submit and counters may be called from any thread,
// concurrently. The destructor must not run concurrently with them.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "core/status.h"
#include "core/thread_annotations.h"
#include "observability/trace_context.h"

namespace mm {

struct SpanAttribute {
  using Value = std::variant<std::string, int64_t, double, bool>;
  std::string key;
  Value value;
};

struct Span {
  std::string name;
  std::array<uint8_t, 8> span_id{};  // all zero: a fresh id is given at export
  int64_t start_unix_ns = 0, end_unix_ns = 0;
  std::vector<SpanAttribute> attributes;
};

// The spans of one request. The root is the SERVER span; its parent is the
// caller's span (parent_span_id) when the request came with a traceparent.
// Children are INTERNAL spans whose parent is root.span_id.
struct RequestTrace {
  std::array<uint8_t, 16> trace_id{};  // all zero: a fresh id is given at export
  std::array<uint8_t, 8> parent_span_id{};
  bool has_parent = false;
  Span root;
  std::vector<Span> children;
  bool error = false;         // the root's status is ERROR with error_message
  std::string error_message;  // otherwise its status is left UNSET
};

// Appends one OTLP ExportTraceServiceRequest in JSON to `out`: one resource
// (service.name = service_name), one scope, every span of `traces`. Strings are
// escaped (invalid UTF-8 bytes become U+FFFD); ids are lowercase hex; times
// and integer attributes are decimal strings; non-finite doubles are "NaN",
// "Infinity", "-Infinity". Zero ids must have been replaced before (the
// exporter does it); they are written as they are.
void AppendOtlpJson(std::string& out, std::span<const std::unique_ptr<RequestTrace>> traces,
                    std::string_view service_name);

class Tracer {
 public:
  struct Options {
    // Fraction 0..1 of requests WITHOUT a traceparent that are sampled. A
    // request with one follows its sampled flag, whatever the rate.
    double rate = 0;
    // "http://host[:port][/path]": OTLP/HTTP JSON, e.g.
    // http://127.0.0.1:4318/v1/traces. Port 80 and path /v1/traces when left
    // out. https is not supported (run a local collector). Empty: none.
    std::string endpoint;
    // A file that gets one ExportTraceServiceRequest JSON per line, appended
    // and flushed per batch. Empty: none. At most one of endpoint and file.
    std::string file;
    size_t buffer_capacity = 4096;  // traces held before export; more are dropped
    std::chrono::milliseconds flush_interval{1000};
    size_t max_batch = 512;  // traces per request to the collector
    std::string service_name = "mmserve";
    // Bounds one export (connect, send, answer), and the destructor's final
    // export of what is buffered. Host name resolution is not bounded by it
    // (use an IP address for a hard bound); it happens once and again after
    // a failure.
    std::chrono::milliseconds export_timeout{5000};
  };

  struct Counters {
    uint64_t sampled = 0;          // Sample() calls that answered true
    uint64_t submitted = 0;        // traces given to Submit
    uint64_t exported = 0;         // traces the collector (or the file) accepted
    uint64_t dropped = 0;          // traces lost: buffer full, or in a failed batch
    uint64_t export_failures = 0;  // batches that could not be delivered
  };

  // INVALID_ARGUMENT for a rate outside 0..1, an endpoint that is not
  // http://host[:port][/path], both an endpoint and a file, a rate above 0
  // with neither, or a file that cannot be opened for appending. With neither
  // endpoint nor file (and rate 0) tracing is off: Enabled() is false,
  // Sample() always false, Submit() discards; no thread is started.
  static StatusOr<std::unique_ptr<Tracer>> Create(Options options);

  // Exports what is still buffered (bounded by export_timeout), then stops
  // the background thread.
  ~Tracer();
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

  bool Enabled() const { return sink_ != nullptr; }

  // Whether to trace a request: the parent's sampled flag when there is a
  // parent, else a draw against `rate`. No lock, no allocation.
  bool Sample(const TraceContext* parent);

  // Queues `trace` for export; never blocks on I/O (a short lock). Drops it,
  // counted, when the buffer is full.
  void Submit(std::unique_ptr<RequestTrace> trace);

  Counters counters() const;
  const Options& options() const { return options_; }

  class Sink;  // where batches go (HTTP or file); tracer.cc

 private:
  Tracer(Options options, std::unique_ptr<Sink> sink);
  void Loop() MM_EXCLUDES(mu_);
  void Export(std::vector<std::unique_ptr<RequestTrace>>& batch);
  void LogFailure(const Status& status, size_t traces);

  // Constant after construction.
  const Options options_;
  const std::unique_ptr<Sink> sink_;  // null: tracing off

  std::atomic<uint64_t> sampled_{0};
  std::atomic<uint64_t> submitted_{0};
  std::atomic<uint64_t> exported_{0};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> export_failures_{0};
  // steady_clock ns after which no export may run: set by the destructor.
  std::atomic<int64_t> stop_deadline_ns_{INT64_MAX};

  Mutex mu_;
  CondVar cv_;
  std::deque<std::unique_ptr<RequestTrace>> buffer_ MM_GUARDED_BY(mu_);
  bool stopping_ MM_GUARDED_BY(mu_) = false;

  // Exporter thread only.
  std::string body_;  // reused per batch
  std::chrono::steady_clock::time_point last_log_{};
  uint64_t unlogged_failures_ = 0;

  std::thread thread_;  // last: started after everything above exists
};

}  // namespace mm
