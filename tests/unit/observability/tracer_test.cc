#include "observability/tracer.h"

// Boost 1.74's Asio needs <utility> before it under C++20 (see DESIGN.md).
#include <utility>

#include <gtest/gtest.h>
#include <simdjson.h>
#include <unistd.h>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace mm {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

// Generous: these bound waits for things that happen in milliseconds.
constexpr auto kWaitLimit = 20s;

bool WaitUntil(const std::function<bool()>& done) {
  const auto limit = std::chrono::steady_clock::now() + kWaitLimit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > limit) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// A tiny OTLP/HTTP receiver on 127.0.0.1: records every request, and answers
// 200, answers 500, never answers (holding the connection open), or answers
// 200 with keep-alive and then closes the connection anyway (as a collector's
// idle timeout does).
class Receiver {
 public:
  enum class Mode { kOk, kStatus500, kNeverAnswer, kOkThenClose };
  struct Request {
    std::string method, target, content_type, body;
  };

  explicit Receiver(Mode mode)
      : mode_(mode), acceptor_(ioc_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    Accept();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~Receiver() { Stop(); }

  std::string endpoint() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/v1/traces";
  }

  // The requests received once there are at least `n` (fewer after the limit).
  std::vector<Request> WaitFor(size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, kWaitLimit, [&] { return requests_.size() >= n; });
    return requests_;
  }
  size_t connections() {
    std::lock_guard lock(mu_);
    return connections_;
  }

  // Stops serving and closes the listening socket and every connection.
  void Stop() {
    if (!thread_.joinable()) return;
    work_.reset();
    ioc_.stop();
    thread_.join();
    beast::error_code ec;
    acceptor_.close(ec);
    for (auto& weak : conns_) {
      if (auto conn = weak.lock()) conn->socket.close(ec);
    }
    held_.clear();
  }

 private:
  struct Conn {
    explicit Conn(tcp::socket s) : socket(std::move(s)) {}
    tcp::socket socket;
    beast::flat_buffer buffer;
    bhttp::request<bhttp::string_body> request;
    bhttp::response<bhttp::string_body> response;
  };

  void Accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec) return;
      auto conn = std::make_shared<Conn>(std::move(socket));
      conns_.push_back(conn);
      {
        std::lock_guard lock(mu_);
        ++connections_;
      }
      Read(conn);
      Accept();
    });
  }

  void Read(std::shared_ptr<Conn> conn) {
    conn->request = {};
    bhttp::async_read(conn->socket, conn->buffer, conn->request,
                      [this, conn](beast::error_code ec, size_t) {
                        if (ec) return;
                        Record(conn->request);
                        if (mode_ == Mode::kNeverAnswer) {
                          held_.push_back(conn);
                          return;
                        }
                        Answer(conn);
                      });
  }

  void Answer(std::shared_ptr<Conn> conn) {
    auto& res = conn->response;
    res = {};
    res.version(11);
    const bool ok = mode_ != Mode::kStatus500;
    res.result(ok ? bhttp::status::ok : bhttp::status::internal_server_error);
    res.set(bhttp::field::content_type, "application/json");
    res.body() = ok ? "{}" : "{\"message\":\"collector is unwell\"}";
    res.keep_alive(conn->request.keep_alive());
    res.prepare_payload();
    bhttp::async_write(conn->socket, res, [this, conn](beast::error_code ec, size_t) {
      if (ec || !conn->response.keep_alive()) return;
      if (mode_ == Mode::kOkThenClose) {
        conn->socket.close(ec);
        return;
      }
      Read(conn);
    });
  }

  void Record(const bhttp::request<bhttp::string_body>& req) {
    Request r;
    r.method = std::string(req.method_string());
    r.target = std::string(req.target());
    r.content_type = std::string(req[bhttp::field::content_type]);
    r.body = req.body();
    {
      std::lock_guard lock(mu_);
      requests_.push_back(std::move(r));
    }
    cv_.notify_all();
  }

  const Mode mode_;
  net::io_context ioc_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_{
      ioc_.get_executor()};
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::vector<std::weak_ptr<Conn>> conns_;   // the io thread, then Stop
  std::vector<std::shared_ptr<Conn>> held_;  // never answered; the io thread, then Stop
  std::thread thread_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Request> requests_;  // guarded by mu_
  size_t connections_ = 0;         // guarded by mu_
};

// One span of an export, read back from its JSON.
struct ParsedSpan {
  std::string trace_id, span_id, parent_span_id, name;
  int64_t kind = 0;
  std::string start, end;
  std::map<std::string, std::string> attributes;  // "s:text", "i:42", "d:1.5", "b:true"
  int64_t status_code = 0;                        // 0: no status
  std::string status_message;
};

struct ParsedExport {
  std::string service_name, scope_name;
  std::vector<ParsedSpan> spans;
};

// Parses an ExportTraceServiceRequest; fails the test (by exception) when it
// is not valid JSON of the expected shape.
ParsedExport Parse(const std::string& body) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(body);
  ParsedExport out;
  for (simdjson::dom::element rs : doc["resourceSpans"].get_array()) {
    for (simdjson::dom::element attr : rs["resource"]["attributes"].get_array()) {
      if (std::string_view(attr["key"]) == "service.name") {
        out.service_name = std::string(std::string_view(attr["value"]["stringValue"]));
      }
    }
    for (simdjson::dom::element ss : rs["scopeSpans"].get_array()) {
      out.scope_name = std::string(std::string_view(ss["scope"]["name"]));
      for (simdjson::dom::element sp : ss["spans"].get_array()) {
        ParsedSpan span;
        span.trace_id = std::string(std::string_view(sp["traceId"]));
        span.span_id = std::string(std::string_view(sp["spanId"]));
        std::string_view parent;
        if (sp["parentSpanId"].get(parent) == simdjson::SUCCESS) {
          span.parent_span_id = std::string(parent);
        }
        span.name = std::string(std::string_view(sp["name"]));
        span.kind = int64_t(sp["kind"]);
        span.start = std::string(std::string_view(sp["startTimeUnixNano"]));
        span.end = std::string(std::string_view(sp["endTimeUnixNano"]));
        for (simdjson::dom::element attr : sp["attributes"].get_array()) {
          const std::string key = std::string(std::string_view(attr["key"]));
          simdjson::dom::object value = attr["value"];
          std::string_view s;
          double d;
          bool b;
          if (value["stringValue"].get(s) == simdjson::SUCCESS) {
            span.attributes[key] = "s:" + std::string(s);
          } else if (value["intValue"].get(s) == simdjson::SUCCESS) {
            span.attributes[key] = "i:" + std::string(s);
          } else if (value["doubleValue"].get(d) == simdjson::SUCCESS) {
            span.attributes[key] = "d:" + std::to_string(d);
          } else if (value["doubleValue"].get(s) == simdjson::SUCCESS) {
            span.attributes[key] = "d:" + std::string(s);
          } else if (value["boolValue"].get(b) == simdjson::SUCCESS) {
            span.attributes[key] = b ? "b:true" : "b:false";
          } else {
            ADD_FAILURE() << "attribute " << key << " has no known value type";
          }
        }
        simdjson::dom::object status;
        if (sp["status"].get(status) == simdjson::SUCCESS) {
          span.status_code = int64_t(status["code"]);
          std::string_view message;
          if (status["message"].get(message) == simdjson::SUCCESS) {
            span.status_message = std::string(message);
          }
        }
        out.spans.push_back(std::move(span));
      }
    }
  }
  return out;
}

Span MakeSpan(std::string name, int64_t start) {
  Span span;
  span.name = std::move(name);
  span.span_id = NewSpanId();
  span.start_unix_ns = start;
  span.end_unix_ns = start + 1000;
  return span;
}

// A request trace like the server's: a root and two stages.
std::unique_ptr<RequestTrace> MakeTrace(std::optional<TraceContext> parent = std::nullopt) {
  auto trace = std::make_unique<RequestTrace>();
  if (parent) {
    trace->trace_id = parent->trace_id;
    trace->parent_span_id = parent->span_id;
    trace->has_parent = true;
  } else {
    trace->trace_id = NewTraceId();
  }
  trace->root = MakeSpan("POST /v2/models/m/infer", 1'700'000'000'000'000'000);
  trace->root.attributes = {{"model", std::string("m")},
                            {"version", int64_t{3}},
                            {"tenant", std::string("acme")},
                            {"request_id", std::string("r-1")}};
  Span queue = MakeSpan("queue", 1'700'000'000'000'000'100);
  queue.attributes = {{"batch_size", int64_t{4}}};
  trace->children.push_back(std::move(queue));
  trace->children.push_back(MakeSpan("compute_infer", 1'700'000'000'000'000'200));
  return trace;
}

std::filesystem::path TempFile(const std::string& name) {
  auto path = std::filesystem::temp_directory_path() /
              ("mmserve_tracer_" + std::to_string(::getpid()) + "_" + name + ".jsonl");
  std::filesystem::remove(path);
  return path;
}

std::vector<std::string> ReadLines(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// A port on 127.0.0.1 where nothing listens (taken, then released).
uint16_t ClosedPort() {
  net::io_context ioc;
  tcp::acceptor acceptor(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  return acceptor.local_endpoint().port();
}

std::unique_ptr<Tracer> MustCreate(Tracer::Options options) {
  auto tracer = Tracer::Create(std::move(options));
  EXPECT_TRUE(tracer.ok()) << tracer.status().ToString();
  return tracer.ok() ? std::move(tracer).value() : nullptr;
}

// ------------------------------------------------------------------ tests

TEST(TracerTest, CreateRejectsBadOptions) {
  auto expect_invalid = [](Tracer::Options options, std::string_view mentions) {
    auto tracer = Tracer::Create(options);
    ASSERT_FALSE(tracer.ok());
    EXPECT_EQ(tracer.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(tracer.status().message().find(mentions), std::string::npos)
        << tracer.status().message();
  };
  Tracer::Options o;
  o.endpoint = "http://127.0.0.1:4318/v1/traces";
  o.rate = -0.1;
  expect_invalid(o, "rate");
  o.rate = 1.5;
  expect_invalid(o, "rate");
  o.rate = std::numeric_limits<double>::quiet_NaN();
  expect_invalid(o, "rate");
  o.rate = 0.5;
  for (const char* bad : {"127.0.0.1:4318", "ftp://h/", "http://", "http://:4318/v1/traces",
                          "http://h:0/", "http://h:65536/", "http://h:x/", "http://h:/",
                          "http://[::1/", "http://u@h/", "http://h/a b"}) {
    o.endpoint = bad;
    expect_invalid(o, "expected http://host");
  }
  o.endpoint = "https://collector:4318/v1/traces";
  expect_invalid(o, "https is not supported");

  o.endpoint = "http://127.0.0.1:4318/v1/traces";
  o.file = TempFile("both").string();
  expect_invalid(o, "not both");

  Tracer::Options no_destination;
  no_destination.rate = 0.1;
  expect_invalid(no_destination, "needs a trace endpoint or a trace file");

  Tracer::Options bad_file;
  bad_file.file = "/nonexistent-dir-for-mmserve/traces.jsonl";
  expect_invalid(bad_file, "cannot open trace file");

  Tracer::Options zero_buffer;
  zero_buffer.file = TempFile("zero").string();
  zero_buffer.buffer_capacity = 0;
  expect_invalid(zero_buffer, "at least 1");
}

TEST(TracerTest, AcceptsEndpointForms) {
  for (const char* good :
       {"http://127.0.0.1:4318/v1/traces", "http://collector", "http://collector:4318",
        "http://[::1]:4318/v1/traces", "http://localhost/otlp/v1/traces?x=1"}) {
    Tracer::Options o;
    o.endpoint = good;
    auto tracer = Tracer::Create(o);
    EXPECT_TRUE(tracer.ok()) << good << ": " << tracer.status().ToString();
    if (tracer.ok()) EXPECT_TRUE((*tracer)->Enabled());
  }
}

TEST(TracerTest, WithoutDestinationTracingIsOff) {
  auto tracer = MustCreate({});
  ASSERT_NE(tracer, nullptr);
  EXPECT_FALSE(tracer->Enabled());
  TraceContext parent = NewRootContext(/*sampled=*/true);
  EXPECT_FALSE(tracer->Sample(&parent));
  EXPECT_FALSE(tracer->Sample(nullptr));
  tracer->Submit(MakeTrace());
  const Tracer::Counters c = tracer->counters();
  EXPECT_EQ(c.sampled, 0u);
  EXPECT_EQ(c.submitted, 0u);
}

TEST(TracerTest, SamplingFollowsParentThenRate) {
  const TraceContext sampled_parent = NewRootContext(true);
  const TraceContext unsampled_parent = NewRootContext(false);
  auto make = [](double rate) {
    Tracer::Options o;
    o.rate = rate;
    o.file = TempFile("sampling").string();
    return MustCreate(o);
  };

  auto never = make(0);
  ASSERT_NE(never, nullptr);
  for (int i = 0; i < 1000; ++i) ASSERT_FALSE(never->Sample(nullptr));
  EXPECT_TRUE(never->Sample(&sampled_parent));
  EXPECT_FALSE(never->Sample(&unsampled_parent));
  EXPECT_EQ(never->counters().sampled, 1u);

  auto always = make(1);
  ASSERT_NE(always, nullptr);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(always->Sample(nullptr));
  EXPECT_FALSE(always->Sample(&unsampled_parent));
  EXPECT_TRUE(always->Sample(&sampled_parent));
  EXPECT_EQ(always->counters().sampled, 1001u);

  auto half = make(0.5);
  ASSERT_NE(half, nullptr);
  constexpr int kDraws = 20000;
  int yes = 0;
  for (int i = 0; i < kDraws; ++i) yes += half->Sample(nullptr) ? 1 : 0;
  // Expect 10000 ± 71 (one standard deviation): these bounds are 20 of them.
  EXPECT_GT(yes, 8600);
  EXPECT_LT(yes, 11400);
  EXPECT_EQ(half->counters().sampled, static_cast<uint64_t>(yes));
}

TEST(TracerTest, ExportsOtlpJsonOverHttp) {
  Receiver receiver(Receiver::Mode::kOk);
  Tracer::Options o;
  o.endpoint = receiver.endpoint();
  o.flush_interval = 10ms;
  o.service_name = "mmserve-test";
  auto tracer = MustCreate(o);
  ASSERT_NE(tracer, nullptr);

  const TraceContext parent =
      *ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  auto trace = MakeTrace(parent);
  trace->error = true;
  trace->error_message = "model \"m\" failed:\n\tbad input";
  const std::string root_id = ToHex(trace->root.span_id);
  tracer->Submit(std::move(trace));

  const auto requests = receiver.WaitFor(1);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].target, "/v1/traces");
  EXPECT_EQ(requests[0].content_type, "application/json");

  const ParsedExport parsed = Parse(requests[0].body);
  EXPECT_EQ(parsed.service_name, "mmserve-test");
  EXPECT_EQ(parsed.scope_name, "mmserve");
  ASSERT_EQ(parsed.spans.size(), 3u);
  const ParsedSpan& root = parsed.spans[0];
  EXPECT_EQ(root.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(root.span_id, root_id);
  EXPECT_EQ(root.parent_span_id, "00f067aa0ba902b7");
  EXPECT_EQ(root.name, "POST /v2/models/m/infer");
  EXPECT_EQ(root.kind, 2);
  EXPECT_EQ(root.start, "1700000000000000000");
  EXPECT_EQ(root.end, "1700000000000001000");
  EXPECT_EQ(root.attributes.at("model"), "s:m");
  EXPECT_EQ(root.attributes.at("version"), "i:3");
  EXPECT_EQ(root.attributes.at("tenant"), "s:acme");
  EXPECT_EQ(root.attributes.at("request_id"), "s:r-1");
  EXPECT_EQ(root.status_code, 2);
  EXPECT_EQ(root.status_message, "model \"m\" failed:\n\tbad input");

  EXPECT_EQ(parsed.spans[1].name, "queue");
  EXPECT_EQ(parsed.spans[2].name, "compute_infer");
  for (size_t i = 1; i < 3; ++i) {
    const ParsedSpan& child = parsed.spans[i];
    EXPECT_EQ(child.trace_id, root.trace_id);
    EXPECT_EQ(child.parent_span_id, root_id);
    EXPECT_EQ(child.kind, 1);
    EXPECT_EQ(child.status_code, 0);
    EXPECT_EQ(child.span_id.size(), 16u);
    EXPECT_NE(child.span_id, root_id);
  }
  EXPECT_EQ(parsed.spans[1].attributes.at("batch_size"), "i:4");

  ASSERT_TRUE(WaitUntil([&] { return tracer->counters().exported == 1; }));
  const Tracer::Counters c = tracer->counters();
  EXPECT_EQ(c.submitted, 1u);
  EXPECT_EQ(c.dropped, 0u);
  EXPECT_EQ(c.export_failures, 0u);
}

TEST(TracerTest, RootWithoutParentHasNoParentSpanIdAndNoErrorStatus) {
  Receiver receiver(Receiver::Mode::kOk);
  Tracer::Options o;
  o.endpoint = receiver.endpoint();
  o.flush_interval = 10ms;
  auto tracer = MustCreate(o);
  ASSERT_NE(tracer, nullptr);
  tracer->Submit(MakeTrace());
  const auto requests = receiver.WaitFor(1);
  ASSERT_EQ(requests.size(), 1u);
  const ParsedExport parsed = Parse(requests[0].body);
  ASSERT_EQ(parsed.spans.size(), 3u);
  EXPECT_EQ(parsed.service_name, "mmserve");
  EXPECT_EQ(parsed.spans[0].parent_span_id, "");
  EXPECT_EQ(parsed.spans[0].status_code, 0);
  EXPECT_EQ(parsed.spans[0].trace_id.size(), 32u);
}

TEST(TracerTest, ReusesTheConnectionBetweenExports) {
  Receiver receiver(Receiver::Mode::kOk);
  Tracer::Options o;
  o.endpoint = receiver.endpoint();
  o.flush_interval = 10ms;
  auto tracer = MustCreate(o);
  ASSERT_NE(tracer, nullptr);
  tracer->Submit(MakeTrace());
  ASSERT_EQ(receiver.WaitFor(1).size(), 1u);
  tracer->Submit(MakeTrace());
  ASSERT_EQ(receiver.WaitFor(2).size(), 2u);
  EXPECT_EQ(receiver.connections(), 1u);
  ASSERT_TRUE(WaitUntil([&] { return tracer->counters().exported == 2; }));
}

TEST(TracerTest, ReconnectsOnceWhenTheKeptConnectionWasClosed) {
  Receiver receiver(Receiver::Mode::kOkThenClose);
  Tracer::Options o;
  o.endpoint = receiver.endpoint();
  o.flush_interval = 10ms;
  auto tracer = MustCreate(o);
  ASSERT_NE(tracer, nullptr);
  tracer->Submit(MakeTrace());
  ASSERT_TRUE(WaitUntil([&] { return tracer->counters().exported == 1; }));
  tracer->Submit(MakeTrace());
  ASSERT_TRUE(WaitUntil([&] { return tracer->counters().exported == 2; }));
  EXPECT_EQ(tracer->counters().export_failures, 0u);
  EXPECT_EQ(receiver.WaitFor(2).size(), 2u);
  EXPECT_EQ(receiver.connections(), 2u);
}

TEST(TracerTest, ExportsAsSoonAsABatchIsFull) {
  Receiver receiver(Receiver::Mode::kOk);
  Tracer::Options o;
  o.endpoint = receiver.endpoint();
  o.flush_interval = std::chrono::hours(1);  // only a full batch can trigger the export
  o.max_batch = 3;
  auto tracer = MustCreate(o);
  ASSERT_NE(tracer, nullptr);
  for (int i = 0; i < 3; ++i) tracer->Submit(MakeTrace());
  const auto requests = receiver.WaitFor(1);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(Parse(requests[0].body).spans.size(), 9u);  // 3 traces of 3 spans
}

TEST(TracerTest, DestructionExportsWhatIsBuffered) {
  Receiver receiver(Receiver::Mode::kOk);
  Tracer::Options o;
  o.endpoint = receiver.endpoint();
  o.flush_interval = std::chrono::hours(1);
  auto tracer = MustCreate(o);
  ASSERT_NE(tracer, nullptr);
  tracer->Submit(MakeTrace());
  tracer->Submit(MakeTrace());
  tracer.reset();
  const auto requests = receiver.WaitFor(1);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(Parse(requests[0].body).spans.size(), 6u);
}

TEST(TracerTest, CollectorErrorIsCountedAndTheBatchDropped) {
  Receiver receiver(Receiver::Mode::kStatus500);
  Tracer::Options o;
  o.endpoint = receiver.endpoint();
  o.flush_interval = 10ms;
  auto tracer = MustCreate(o);
  ASSERT_NE(tracer, nullptr);
  tracer->Submit(MakeTrace());
  ASSERT_TRUE(WaitUntil([&] { return tracer->counters().export_failures == 1; }));
  const Tracer::Counters c = tracer->counters();
  EXPECT_EQ(c.exported, 0u);
  EXPECT_EQ(c.dropped, 1u);
  // One attempt: a failed batch is not sent again.
  EXPECT_EQ(receiver.WaitFor(1).size(), 1u);
}

TEST(TracerTest, UnreachableCollectorIsCounted) {
  Tracer::Options o;
  o.endpoint = "http://127.0.0.1:" + std::to_string(ClosedPort()) + "/v1/traces";
  o.flush_interval = 10ms;
  auto tracer = MustCreate(o);
  ASSERT_NE(tracer, nullptr);
  tracer->Submit(MakeTrace());
  tracer->Submit(MakeTrace());
  ASSERT_TRUE(WaitUntil([&] { return tracer->counters().dropped == 2; }));
  const Tracer::Counters c = tracer->counters();
  EXPECT_GE(c.export_failures, 1u);
  EXPECT_EQ(c.exported, 0u);
  tracer->Submit(MakeTrace());
  tracer.reset();  // returns: the final export fails at once
}

TEST(TracerTest, FullBufferDropsAndCountsWithoutBlocking) {
  Receiver receiver(Receiver::Mode::kNeverAnswer);
  Tracer::Options o;
  o.endpoint = receiver.endpoint();
  o.buffer_capacity = 4;
  o.max_batch = 2;
  o.flush_interval = std::chrono::hours(1);
  o.export_timeout = std::chrono::minutes(5);  // the stuck export ends when the receiver stops
  auto tracer = MustCreate(o);
  ASSERT_NE(tracer, nullptr);
  constexpr uint64_t kTraces = 100;
  for (uint64_t i = 0; i < kTraces; ++i) tracer->Submit(MakeTrace());
  Tracer::Counters c = tracer->counters();
  EXPECT_EQ(c.submitted, kTraces);
  // At most one batch in flight and a full buffer are held; the rest is dropped.
  EXPECT_GE(c.dropped, kTraces - o.buffer_capacity - o.max_batch);
  EXPECT_EQ(c.exported, 0u);

  // The collector goes away: the stuck export fails, and so do the rest.
  receiver.Stop();
  ASSERT_TRUE(WaitUntil([&] {
    const Tracer::Counters now = tracer->counters();
    return now.dropped + now.exported == kTraces;
  }));
  c = tracer->counters();
  EXPECT_EQ(c.exported, 0u);
  EXPECT_GE(c.export_failures, 1u);
}

TEST(TracerTest, DestructionWithAnUnresponsiveCollectorReturns) {
  Receiver receiver(Receiver::Mode::kNeverAnswer);
  Tracer::Options o;
  o.endpoint = receiver.endpoint();
  o.max_batch = 1;
  o.flush_interval = std::chrono::hours(1);
  o.export_timeout = 200ms;
  auto tracer = MustCreate(o);
  ASSERT_NE(tracer, nullptr);
  tracer->Submit(MakeTrace());
  ASSERT_EQ(receiver.WaitFor(1).size(), 1u);  // an export is now waiting for an answer
  tracer->Submit(MakeTrace());
  tracer.reset();  // bounded by export_timeout: the test would hang otherwise
  SUCCEED();
}

TEST(TracerTest, FileModeAppendsOneJsonLinePerBatch) {
  const auto path = TempFile("file_mode");
  Tracer::Options o;
  o.file = path.string();
  o.flush_interval = std::chrono::hours(1);
  {
    auto tracer = MustCreate(o);
    ASSERT_NE(tracer, nullptr);
    tracer->Submit(MakeTrace());
    tracer->Submit(MakeTrace());
  }
  {
    auto tracer = MustCreate(o);  // appends, does not truncate
    ASSERT_NE(tracer, nullptr);
    auto trace = MakeTrace();
    trace->children.clear();
    trace->trace_id = {};  // zero ids are filled in at export
    trace->root.span_id = {};
    Span child;
    child.name = "decode";
    trace->children.push_back(child);
    tracer->Submit(std::move(trace));
  }
  const auto lines = ReadLines(path);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(Parse(lines[0]).spans.size(), 6u);
  const ParsedExport second = Parse(lines[1]);
  ASSERT_EQ(second.spans.size(), 2u);
  const std::string zero_trace(32, '0'), zero_span(16, '0');
  EXPECT_NE(second.spans[0].trace_id, zero_trace);
  EXPECT_NE(second.spans[0].span_id, zero_span);
  EXPECT_NE(second.spans[1].span_id, zero_span);
  EXPECT_EQ(second.spans[1].trace_id, second.spans[0].trace_id);
  EXPECT_EQ(second.spans[1].parent_span_id, second.spans[0].span_id);
  std::filesystem::remove(path);
}

TEST(TracerTest, JsonEscapesStringsAndEncodesEveryValueType) {
  auto trace = MakeTrace();
  const std::string tricky = std::string("q\"\\/\n\r\t\b\f\x01\x1f end\0!", 17);
  trace->root.name = tricky;
  trace->root.attributes = {
      {"s", tricky},
      {"utf8", std::string("caf\xC3\xA9")},
      {"bad_utf8", std::string("a\xFF"
                               "b")},
      {"neg", std::numeric_limits<int64_t>::min()},
      {"pi", 3.25},
      {"nan", std::numeric_limits<double>::quiet_NaN()},
      {"inf", -std::numeric_limits<double>::infinity()},
      {"yes", true},
      {"no", false},
      {"key \"quoted\"", int64_t{1}},
  };
  std::vector<std::unique_ptr<RequestTrace>> traces;
  traces.push_back(std::move(trace));
  std::string json;
  AppendOtlpJson(json, traces, "svc \"x\"");
  const ParsedExport parsed = Parse(json);
  EXPECT_EQ(parsed.service_name, "svc \"x\"");
  ASSERT_EQ(parsed.spans.size(), 3u);
  const ParsedSpan& root = parsed.spans[0];
  EXPECT_EQ(root.name, tricky);
  EXPECT_EQ(root.attributes.at("s"), "s:" + tricky);
  EXPECT_EQ(root.attributes.at("utf8"), "s:caf\xC3\xA9");
  EXPECT_EQ(root.attributes.at("bad_utf8"),
            "s:a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(root.attributes.at("neg"), "i:-9223372036854775808");
  EXPECT_EQ(root.attributes.at("pi"), "d:" + std::to_string(3.25));
  EXPECT_EQ(root.attributes.at("nan"), "d:NaN");
  EXPECT_EQ(root.attributes.at("inf"), "d:-Infinity");
  EXPECT_EQ(root.attributes.at("yes"), "b:true");
  EXPECT_EQ(root.attributes.at("no"), "b:false");
  EXPECT_EQ(root.attributes.at("key \"quoted\""), "i:1");
  // No raw newline: a batch is one line of a trace file.
  EXPECT_EQ(json.find('\n'), std::string::npos);
}

TEST(TracerTest, ConcurrentSubmitsAreAllAccountedFor) {
  Receiver receiver(Receiver::Mode::kOk);
  Tracer::Options o;
  o.endpoint = receiver.endpoint();
  o.flush_interval = 5ms;
  o.max_batch = 16;
  auto tracer = MustCreate(o);
  ASSERT_NE(tracer, nullptr);
  constexpr int kThreads = 4, kPerThread = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        if (tracer->Sample(nullptr)) tracer->Submit(MakeTrace());
      }
    });
  }
  for (auto& thread : threads) thread.join();
  // rate 0 and no parent: nothing sampled, nothing submitted.
  EXPECT_EQ(tracer->counters().sampled, 0u);
  for (int t = 0; t < kThreads; ++t) {
    threads[t] = std::thread([&] {
      for (int i = 0; i < kPerThread; ++i) tracer->Submit(MakeTrace());
    });
  }
  for (auto& thread : threads) thread.join();
  constexpr uint64_t kTotal = kThreads * kPerThread;
  ASSERT_TRUE(WaitUntil([&] {
    const Tracer::Counters c = tracer->counters();
    return c.exported + c.dropped == kTotal;
  }));
  EXPECT_EQ(tracer->counters().submitted, kTotal);
  EXPECT_EQ(tracer->counters().export_failures, 0u);
}

}  // namespace
}  // namespace mm
