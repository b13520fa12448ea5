#include "observability/request_observer.h"

#include <chrono>

namespace mm {

namespace {

int64_t SteadyToUnixOffset() {
  const auto steady = std::chrono::steady_clock::now().time_since_epoch();
  const auto unix = std::chrono::system_clock::now().time_since_epoch();
  return std::chrono::duration_cast<std::chrono::nanoseconds>(unix).count() -
         std::chrono::duration_cast<std::chrono::nanoseconds>(steady).count();
}

}  // namespace

RequestObserver::RequestObserver(Tracer* tracer, AccessLog* access_log)
    : tracer_(tracer),
      access_log_(access_log),
      tracing_(tracer != nullptr && tracer->Enabled()),
      steady_to_unix_ns_(SteadyToUnixOffset()) {}

RequestObserver::Trace RequestObserver::Begin(std::string_view traceparent) const {
  Trace trace;
  if (!tracing_) return trace;
  if (!traceparent.empty()) {
    if (auto parent = ParseTraceparent(traceparent)) {
      trace.parent = *parent;
      trace.has_parent = true;
    }
  }
  trace.sampled = tracer_->Sample(trace.has_parent ? &trace.parent : nullptr);
  return trace;
}

std::unique_ptr<RequestTrace> RequestObserver::MakeTrace(const RequestRecord& r,
                                                         const Trace& trace) const {
  auto t = std::make_unique<RequestTrace>();
  t->trace_id = trace.has_parent ? trace.parent.trace_id : NewTraceId();
  t->has_parent = trace.has_parent;
  if (trace.has_parent) t->parent_span_id = trace.parent.span_id;
  t->error = r.code != StatusCode::kOk;
  if (t->error)
    t->error_message = std::string(StatusCodeName(r.code)) + ": " + std::string(r.error);

  auto common = [&r](Span& span) {
    span.attributes.push_back({"model", std::string(r.model)});
    if (!r.version.empty()) span.attributes.push_back({"version", std::string(r.version)});
    span.attributes.push_back({"tenant", std::string(r.tenant)});
  };
  const int64_t end = r.encoded_ns > 0 ? r.encoded_ns : r.answered_ns;
  Span& root = t->root;
  root.name = "infer";
  root.span_id = NewSpanId();
  root.start_unix_ns = ToUnixNs(r.received_ns);
  root.end_unix_ns = ToUnixNs(end);
  common(root);
  root.attributes.push_back({"protocol", std::string(r.protocol)});
  if (!r.request_id.empty()) root.attributes.push_back({"request_id", std::string(r.request_id)});
  root.attributes.push_back({"status", std::string(StatusCodeName(r.code))});
  if (r.timing.batch_size > 0) root.attributes.push_back({"batch_size", r.timing.batch_size});

  auto child = [&](const char* name, int64_t from, int64_t to, bool compute) {
    if (from <= 0 || to < from) return;
    Span& s = t->children.emplace_back();
    s.name = name;
    s.span_id = NewSpanId();
    s.start_unix_ns = ToUnixNs(from);
    s.end_unix_ns = ToUnixNs(to);
    common(s);
    if (compute) s.attributes.push_back({"batch_size", r.timing.batch_size});
  };
  child("decode", r.received_ns, r.decoded_ns, false);
  for (const StepTiming& step : r.steps) {  // an ensemble's: a span per step
    if (step.start_ns <= 0 || step.end_ns < step.start_ns) continue;
    Span& span = t->children.emplace_back();
    span.name = "ensemble_step";
    span.span_id = NewSpanId();
    span.start_unix_ns = ToUnixNs(step.start_ns);
    span.end_unix_ns = ToUnixNs(step.end_ns);
    span.attributes.push_back({"step", static_cast<int64_t>(step.step)});
    span.attributes.push_back({"model", step.model});
    if (!step.version.empty()) span.attributes.push_back({"version", step.version});
    span.attributes.push_back({"tenant", std::string(r.tenant)});
    span.attributes.push_back({"queue_ns", step.queue_ns});
    span.attributes.push_back({"batch_size", step.timing.batch_size});
  }
  if (r.timing.start_ns > 0 && r.steps.empty()) {
    const int64_t start = r.timing.start_ns;
    child("queue", start - r.queue_ns, start, false);
    child("compute_input", start, start + r.timing.input_ns, true);
    child("compute_infer", start + r.timing.input_ns, start + r.timing.input_ns + r.timing.infer_ns,
          true);
    child("compute_output", start + r.timing.input_ns + r.timing.infer_ns,
          start + r.timing.input_ns + r.timing.infer_ns + r.timing.output_ns, true);
  }
  child("encode", r.answered_ns, r.encoded_ns, false);
  return t;
}

void RequestObserver::Collect(MetricFamilies& out) const {
  using prometheus::MetricType;
  if (tracer_ != nullptr && tracer_->Enabled()) {
    const Tracer::Counters c = tracer_->counters();
    AddValue(AddFamily(out, "mmserve_traces_sampled_total", "Requests chosen for tracing",
                       MetricType::Counter),
             {}, static_cast<double>(c.sampled));
    AddValue(AddFamily(out, "mmserve_traces_exported_total",
                       "Traces the exporter delivered (OTLP/HTTP or file)", MetricType::Counter),
             {}, static_cast<double>(c.exported));
    AddValue(AddFamily(out, "mmserve_traces_dropped_total",
                       "Traces dropped: the buffer was full, or their export failed",
                       MetricType::Counter),
             {}, static_cast<double>(c.dropped));
    AddValue(AddFamily(out, "mmserve_trace_export_failures_total", "Batches whose export failed",
                       MetricType::Counter),
             {}, static_cast<double>(c.export_failures));
  }
  if (access_log_ != nullptr) {
    AddValue(
        AddFamily(out, "mmserve_access_log_dropped_lines_total",
                  "Access log lines dropped because the writer fell behind", MetricType::Counter),
        {}, static_cast<double>(access_log_->dropped()));
  }
}

namespace {
int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

ObservedRequest::ObservedRequest(const RequestObserver& observer, std::string_view protocol,
                                 const RequestObserver::Trace& trace, std::string_view tenant,
                                 const InferRequest& request, int64_t received_ns)
    : observer_(observer),
      trace_(trace),
      model_(request.model_name),
      id_(request.id),
      tenant_(tenant),
      version_(request.model_version) {
  record_.protocol = protocol;
  record_.request_id = id_;
  record_.tenant = tenant_;
  record_.model = model_;
  record_.received_ns = received_ns;
  record_.decoded_ns = SteadyNowNs();
}

void ObservedRequest::Answered(const StatusOr<std::unique_ptr<InferResponse>>& result) {
  record_.answered_ns = SteadyNowNs();
  if (result.ok()) {
    version_ = (*result)->model_version;
    record_.queue_ns = (*result)->queue_ns;
    record_.timing = (*result)->timing;
    if (!(*result)->steps.empty()) {
      steps_ = (*result)->steps;
      record_.steps = steps_;
    }
  } else {
    record_.code = result.status().code();
    error_ = result.status().message();
  }
}

void ObservedRequest::EncodingFailed(std::string_view message) {
  record_.code = StatusCode::kInternal;
  error_ = message;
}

void ObservedRequest::Encoded() {
  record_.version = version_;
  record_.error = error_;
  record_.encoded_ns = SteadyNowNs();
  observer_.End(record_, trace_);
}

void RequestObserver::End(const RequestRecord& record, const Trace& trace) const {
  if (access_log_ != nullptr) access_log_->Write(record);
  if (trace.sampled) tracer_->Submit(MakeTrace(record, trace));
}

}  // namespace mm
