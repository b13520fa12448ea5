#include "observability/tracer.h"

#include "core/json_string.h"

// Boost 1.74's Asio needs <utility> before it under C++20 (see DESIGN.md).
#include <utility>

#include <spdlog/spdlog.h>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <type_traits>

namespace mm {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using SteadyTime = std::chrono::steady_clock::time_point;

// Where batches go. Called from the exporter thread only.
class Tracer::Sink {
 public:
  virtual ~Sink() = default;
  // Delivers one ExportTraceServiceRequest (JSON) before `deadline`; OK when
  // the receiver accepted it.
  virtual Status Send(std::string_view body, SteadyTime deadline) = 0;
  // For log lines: "http://host:port/path" or the file's path.
  virtual const std::string& destination() const = 0;
};

namespace {

// ------------------------------------------------------------------ JSON

// (JSON strings: core/json_string.h; bytes that are not UTF-8 become U+FFFD,
// as OTLP receivers reject invalid UTF-8.)

template <typename T>
void AppendNumber(std::string& out, T v) {
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, res.ptr);
}

// OTLP/JSON writes 64-bit integers as decimal strings.
void AppendQuotedInt(std::string& out, int64_t v) {
  out.push_back('"');
  AppendNumber(out, v);
  out.push_back('"');
}

void AppendAnyValue(std::string& out, const SpanAttribute::Value& value) {
  std::visit(
      [&out](const auto& v) {
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<V, std::string>) {
          out.append("{\"stringValue\":");
          AppendJsonString(out, v);
        } else if constexpr (std::is_same_v<V, int64_t>) {
          out.append("{\"intValue\":");
          AppendQuotedInt(out, v);
        } else if constexpr (std::is_same_v<V, double>) {
          out.append("{\"doubleValue\":");
          if (std::isnan(v)) {
            out.append("\"NaN\"");
          } else if (std::isinf(v)) {
            out.append(v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
          } else {
            AppendNumber(out, v);
          }
        } else {
          out.append("{\"boolValue\":");
          out.append(v ? "true" : "false");
        }
      },
      value);
  out.push_back('}');
}

enum SpanKind { kInternal = 1, kServer = 2 };  // OTLP Span.SpanKind

void AppendSpan(std::string& out, const RequestTrace& trace, const Span& span, SpanKind kind,
                const std::array<uint8_t, 8>* parent) {
  out.append("{\"traceId\":\"");
  AppendHex(out, trace.trace_id);
  out.append("\",\"spanId\":\"");
  AppendHex(out, span.span_id);
  out.push_back('"');
  if (parent != nullptr) {
    out.append(",\"parentSpanId\":\"");
    AppendHex(out, *parent);
    out.push_back('"');
  }
  out.append(",\"name\":");
  AppendJsonString(out, span.name);
  out.append(",\"kind\":");
  AppendNumber(out, static_cast<int>(kind));
  // fixed64 in the proto: a time before 1970 is written as 0.
  out.append(",\"startTimeUnixNano\":");
  AppendQuotedInt(out, std::max<int64_t>(span.start_unix_ns, 0));
  out.append(",\"endTimeUnixNano\":");
  AppendQuotedInt(out, std::max<int64_t>(span.end_unix_ns, 0));
  out.append(",\"attributes\":[");
  for (size_t i = 0; i < span.attributes.size(); ++i) {
    if (i != 0) out.push_back(',');
    out.append("{\"key\":");
    AppendJsonString(out, span.attributes[i].key);
    out.append(",\"value\":");
    AppendAnyValue(out, span.attributes[i].value);
    out.push_back('}');
  }
  out.push_back(']');
  if (kind == kServer && trace.error) {
    out.append(",\"status\":{\"code\":2,\"message\":");  // STATUS_CODE_ERROR
    AppendJsonString(out, trace.error_message);
    out.push_back('}');
  }
  out.push_back('}');
}

// ------------------------------------------------------------ endpoints

struct HttpEndpoint {
  std::string host;  // without brackets: a name, an IPv4 or IPv6 address
  uint16_t port = 80;
  std::string target;       // path (and query) of the request line
  std::string host_header;  // as the URL spells it, with the port unless 80
  std::string url;
};

StatusOr<HttpEndpoint> ParseEndpoint(std::string_view url) {
  auto bad = [&](std::string_view why) {
    return InvalidArgument("trace endpoint '" + std::string(url) + "': " + std::string(why) +
                           "; expected http://host[:port][/path], e.g. "
                           "http://127.0.0.1:4318/v1/traces");
  };
  constexpr std::string_view kHttp = "http://";
  if (url.starts_with("https://")) {
    return bad("https is not supported (send to a local collector over http)");
  }
  if (!url.starts_with(kHttp)) return bad("only http:// is supported");
  std::string_view rest = url.substr(kHttp.size());
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  HttpEndpoint ep;
  ep.url = std::string(url);
  ep.target = slash == std::string_view::npos ? "/v1/traces" : std::string(rest.substr(slash));
  if (ep.target.find('#') != std::string::npos) return bad("a fragment is not allowed");
  for (char c : ep.target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return bad("the path has a space");
  }
  if (authority.find('@') != std::string_view::npos) return bad("user info is not supported");
  std::string_view port;
  if (authority.starts_with('[')) {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unclosed '[' in the host");
    ep.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return bad("unexpected characters after the host");
      port = after.substr(1);
      if (port.empty()) return bad("empty port");
    }
  } else {
    const size_t colon = authority.find(':');
    ep.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return bad("empty port");
    }
  }
  if (ep.host.empty()) return bad("no host");
  for (char c : ep.host) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '[' || c == ']') {
      return bad("invalid character in the host");
    }
  }
  if (!port.empty()) {
    unsigned value = 0;
    const auto res = std::from_chars(port.data(), port.data() + port.size(), value);
    if (res.ec != std::errc() || res.ptr != port.data() + port.size() || value == 0 ||
        value > 65535) {
      return bad("the port must be a number from 1 to 65535");
    }
    ep.port = static_cast<uint16_t>(value);
  }
  ep.host_header = std::string(authority);
  return ep;
}

// ---------------------------------------------------------------- sinks

// A synchronous HTTP/1.1 client over one kept-alive connection. Each step
// (connect, write, read) is an async operation run to completion on a
// private io_context, so that tcp_stream's deadline bounds it.
class HttpSink : public Tracer::Sink {
 public:
  explicit HttpSink(HttpEndpoint endpoint) : endpoint_(std::move(endpoint)) {}

  const std::string& destination() const override { return endpoint_.url; }

  Status Send(std::string_view body, SteadyTime deadline) override {
    const bool reused = stream_.has_value();
    bool answered = false;
    Status status = Attempt(body, deadline, answered);
    // A kept-alive connection the collector closed while idle fails before
    // any answer: try once more on a fresh one.
    if (!status.ok() && reused && !answered && std::chrono::steady_clock::now() < deadline) {
      status = Attempt(body, deadline, answered);
    }
    return status;
  }

 private:
  // Runs the io_context until the started operation (and its timer) is done.
  void Run() {
    ioc_.restart();
    ioc_.run();
  }

  void Close() {
    if (stream_) {
      beast::error_code ignored;
      stream_->socket().shutdown(tcp::socket::shutdown_both, ignored);
      stream_->close();
      stream_.reset();
    }
    read_buffer_.clear();
  }

  Status Fail(std::string_view step, const beast::error_code& ec) {
    Close();
    std::string why = ec == beast::error::timeout ? "timed out" : ec.message();
    return Unavailable(std::string(step) + " " + endpoint_.url + ": " + why);
  }

  Status Resolve() {
    if (!addresses_.empty()) return OkStatus();
    beast::error_code ec;
    const net::ip::address address = net::ip::make_address(endpoint_.host, ec);
    if (!ec) {
      addresses_.emplace_back(address, endpoint_.port);
      return OkStatus();
    }
    tcp::resolver resolver(ioc_);
    const auto results = resolver.resolve(endpoint_.host, std::to_string(endpoint_.port), ec);
    if (ec) return Unavailable("resolving " + endpoint_.host + ": " + ec.message());
    for (const auto& entry : results) addresses_.push_back(entry.endpoint());
    if (addresses_.empty()) return Unavailable("resolving " + endpoint_.host + ": no address");
    return OkStatus();
  }

  Status Attempt(std::string_view body, SteadyTime deadline, bool& answered) {
    beast::error_code ec;
    if (!stream_) {
      MM_RETURN_IF_ERROR(Resolve());
      stream_.emplace(ioc_);
      stream_->expires_at(deadline);
      stream_->async_connect(addresses_,
                             [&ec](const beast::error_code& e, const tcp::endpoint&) { ec = e; });
      Run();
      if (ec) {
        addresses_.clear();  // resolve again next time: the collector may have moved
        return Fail("connecting to", ec);
      }
    }
    bhttp::request<bhttp::span_body<const char>> request{bhttp::verb::post, endpoint_.target, 11};
    request.set(bhttp::field::host, endpoint_.host_header);
    request.set(bhttp::field::user_agent, "mmserve");
    request.set(bhttp::field::content_type, "application/json");
    request.keep_alive(true);
    request.body() = beast::span<const char>(body.data(), body.size());
    request.prepare_payload();
    stream_->expires_at(deadline);
    bhttp::async_write(*stream_, request, [&ec](const beast::error_code& e, size_t) { ec = e; });
    Run();
    if (ec) return Fail("sending spans to", ec);

    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(kMaxResponseBytes);
    stream_->expires_at(deadline);
    bhttp::async_read(*stream_, read_buffer_, parser,
                      [&ec](const beast::error_code& e, size_t) { ec = e; });
    Run();
    answered = parser.got_some() || read_buffer_.size() != 0;
    if (ec) return Fail("reading the answer of", ec);
    const auto& response = parser.get();
    const unsigned code = response.result_int();
    if (!response.keep_alive()) Close();
    if (code < 200 || code > 299) {
      std::string detail = response.body().substr(0, 200);
      return Unavailable(endpoint_.url + " answered " + std::to_string(code) +
                         (detail.empty() ? std::string() : ": " + detail));
    }
    return OkStatus();
  }

  static constexpr uint64_t kMaxResponseBytes = 64 << 10;

  const HttpEndpoint endpoint_;
  net::io_context ioc_;
  std::vector<tcp::endpoint> addresses_;     // empty: resolve before connecting
  std::optional<beast::tcp_stream> stream_;  // the kept-alive connection, if any
  beast::flat_buffer read_buffer_;
};

// Appends one line per batch and flushes it.
class FileSink : public Tracer::Sink {
 public:
  FileSink(std::string path, std::FILE* file) : path_(std::move(path)), file_(file) {}
  ~FileSink() override { std::fclose(file_); }

  const std::string& destination() const override { return path_; }

  Status Send(std::string_view body, SteadyTime) override {
    const bool written = std::fwrite(body.data(), 1, body.size(), file_) == body.size() &&
                         std::fputc('\n', file_) != EOF && std::fflush(file_) == 0;
    if (written) return OkStatus();
    const int err = errno;
    std::clearerr(file_);
    return Unavailable("writing spans to " + path_ + ": " + std::strerror(err));
  }

 private:
  const std::string path_;
  std::FILE* const file_;
};

int64_t SteadyNs(SteadyTime t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

void AppendOtlpJson(std::string& out, std::span<const std::unique_ptr<RequestTrace>> traces,
                    std::string_view service_name) {
  out.append(
      "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
      "\"value\":{\"stringValue\":");
  AppendJsonString(out, service_name);
  out.append("}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"mmserve\"},\"spans\":[");
  bool first = true;
  for (const auto& trace : traces) {
    if (trace == nullptr) continue;
    if (!first) out.push_back(',');
    first = false;
    AppendSpan(out, *trace, trace->root, kServer,
               trace->has_parent ? &trace->parent_span_id : nullptr);
    for (const Span& child : trace->children) {
      out.push_back(',');
      AppendSpan(out, *trace, child, kInternal, &trace->root.span_id);
    }
  }
  out.append("]}]}]}");
}

// ---------------------------------------------------------------- Tracer

StatusOr<std::unique_ptr<Tracer>> Tracer::Create(Options options) {
  if (!(options.rate >= 0 && options.rate <= 1)) {
    return InvalidArgument("trace rate must be between 0 and 1, got " +
                           std::to_string(options.rate));
  }
  if (!options.endpoint.empty() && !options.file.empty()) {
    return InvalidArgument("give a trace endpoint or a trace file, not both");
  }
  if (options.buffer_capacity == 0 || options.max_batch == 0) {
    return InvalidArgument("trace buffer capacity and batch size must be at least 1");
  }
  if (options.flush_interval.count() <= 0 || options.export_timeout.count() <= 0) {
    return InvalidArgument("trace flush interval and export timeout must be positive");
  }
  options.max_batch = std::min(options.max_batch, options.buffer_capacity);
  std::unique_ptr<Sink> sink;
  if (!options.endpoint.empty()) {
    MM_ASSIGN_OR_RETURN(HttpEndpoint endpoint, ParseEndpoint(options.endpoint));
    sink = std::make_unique<HttpSink>(std::move(endpoint));
  } else if (!options.file.empty()) {
    std::FILE* file = std::fopen(options.file.c_str(), "a");
    if (file == nullptr) {
      return InvalidArgument("cannot open trace file " + options.file + ": " +
                             std::strerror(errno));
    }
    sink = std::make_unique<FileSink>(options.file, file);
  } else if (options.rate > 0) {
    return InvalidArgument("a trace rate above 0 needs a trace endpoint or a trace file");
  }
  return std::unique_ptr<Tracer>(new Tracer(std::move(options), std::move(sink)));
}

Tracer::Tracer(Options options, std::unique_ptr<Sink> sink)
    : options_(std::move(options)), sink_(std::move(sink)) {
  if (sink_) thread_ = std::thread([this] { Loop(); });
}

Tracer::~Tracer() {
  if (!thread_.joinable()) return;
  // An export in flight ends by its own deadline (at most export_timeout from
  // now); the final ones may not run past this one.
  stop_deadline_ns_.store(SteadyNs(std::chrono::steady_clock::now() + options_.export_timeout),
                          std::memory_order_relaxed);
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  cv_.NotifyAll();
  thread_.join();
}

bool Tracer::Sample(const TraceContext* parent) {
  if (!sink_) return false;
  bool sampled;
  if (parent != nullptr) {
    sampled = parent->sampled();
  } else if (options_.rate <= 0) {
    sampled = false;
  } else if (options_.rate >= 1) {
    sampled = true;
  } else {
    // 53 random bits as a double in [0, 1).
    sampled = static_cast<double>(TraceRandom64() >> 11) * 0x1.0p-53 < options_.rate;
  }
  if (sampled) sampled_.fetch_add(1, std::memory_order_relaxed);
  return sampled;
}

void Tracer::Submit(std::unique_ptr<RequestTrace> trace) {
  if (!sink_ || trace == nullptr) return;
  submitted_.fetch_add(1, std::memory_order_relaxed);
  bool wake = false;
  {
    MutexLock lock(mu_);
    if (buffer_.size() < options_.buffer_capacity) {
      buffer_.push_back(std::move(trace));
      wake = buffer_.size() == options_.max_batch;
    }
  }
  if (trace != nullptr) {  // not taken: the buffer is full; freed here, outside the lock
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (wake) cv_.NotifyOne();
}

Tracer::Counters Tracer::counters() const {
  Counters c;
  c.sampled = sampled_.load(std::memory_order_relaxed);
  c.submitted = submitted_.load(std::memory_order_relaxed);
  c.exported = exported_.load(std::memory_order_relaxed);
  c.dropped = dropped_.load(std::memory_order_relaxed);
  c.export_failures = export_failures_.load(std::memory_order_relaxed);
  return c;
}

void Tracer::Loop() {
  using Clock = std::chrono::steady_clock;
  std::vector<std::unique_ptr<RequestTrace>> batch;
  batch.reserve(options_.max_batch);
  // Moves up to max_batch traces out of the buffer into `batch`.
  auto take = [&]() MM_REQUIRES(mu_) {
    const size_t n = std::min(buffer_.size(), options_.max_batch);
    for (size_t i = 0; i < n; ++i) {
      batch.push_back(std::move(buffer_.front()));
      buffer_.pop_front();
    }
  };
  auto next_flush = Clock::now() + options_.flush_interval;
  MutexLock lock(mu_);
  while (!stopping_) {
    while (!stopping_ && buffer_.size() < options_.max_batch && cv_.WaitUntil(lock, next_flush)) {
    }
    const bool due = Clock::now() >= next_flush;
    // Full batches at any time; on the timer, whatever waits.
    while (!stopping_ && !buffer_.empty() && (due || buffer_.size() >= options_.max_batch)) {
      take();
      lock.Unlock();
      Export(batch);
      batch.clear();  // frees the traces outside the lock
      lock.Lock();
    }
    if (due) next_flush = Clock::now() + options_.flush_interval;
  }
  // Stopping: a final export of everything buffered, bounded by the deadline.
  while (!buffer_.empty()) {
    take();
    lock.Unlock();
    Export(batch);
    batch.clear();
    lock.Lock();
  }
}

void Tracer::Export(std::vector<std::unique_ptr<RequestTrace>>& batch) {
  const auto now = std::chrono::steady_clock::now();
  const auto stop =
      SteadyTime(std::chrono::nanoseconds(stop_deadline_ns_.load(std::memory_order_relaxed)));
  const SteadyTime deadline = std::min(now + options_.export_timeout, stop);
  const uint64_t n = batch.size();
  if (now >= deadline) {
    dropped_.fetch_add(n, std::memory_order_relaxed);
    export_failures_.fetch_add(1, std::memory_order_relaxed);
    LogFailure(DeadlineExceeded("stopping, and the export timeout is spent"), n);
    return;
  }
  for (auto& trace : batch) {
    if (IsZeroId(trace->trace_id)) trace->trace_id = NewTraceId();
    if (IsZeroId(trace->root.span_id)) trace->root.span_id = NewSpanId();
    for (Span& child : trace->children) {
      if (IsZeroId(child.span_id)) child.span_id = NewSpanId();
    }
  }
  body_.clear();
  AppendOtlpJson(body_, batch, options_.service_name);
  Status status = sink_->Send(body_, deadline);
  if (status.ok()) {
    exported_.fetch_add(n, std::memory_order_relaxed);
  } else {
    dropped_.fetch_add(n, std::memory_order_relaxed);
    export_failures_.fetch_add(1, std::memory_order_relaxed);
    LogFailure(status, n);
  }
  // A rare huge batch should not pin its memory for the process's life.
  if (body_.capacity() > (16u << 20)) std::string().swap(body_);
}

void Tracer::LogFailure(const Status& status, size_t traces) {
  const auto now = std::chrono::steady_clock::now();
  if (last_log_ != SteadyTime{} && now - last_log_ < std::chrono::seconds(10)) {
    ++unlogged_failures_;
    return;
  }
  if (unlogged_failures_ == 0) {
    spdlog::warn("trace export to {} failed, {} traces dropped: {}", sink_->destination(), traces,
                 status.message());
  } else {
    spdlog::warn(
        "trace export to {} failed, {} traces dropped: {} ({} more failed exports since the last "
        "report)",
        sink_->destination(), traces, status.message(), unlogged_failures_);
  }
  last_log_ = now;
  unlogged_failures_ = 0;
}

}  // namespace mm
