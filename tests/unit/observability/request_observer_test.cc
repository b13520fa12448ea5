#include "observability/request_observer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "observability/logging.h"

namespace mm {
namespace {

using Range = std::pair<int64_t, int64_t>;

RequestRecord Record() {
  RequestRecord r;
  r.protocol = "http";
  r.request_id = "id-\"7\"";
  r.tenant = "team-a";
  r.model = "m";
  r.version = "2";
  r.received_ns = 1'000'000;
  r.decoded_ns = 1'010'000;
  r.queue_ns = 5'000;
  r.timing.start_ns = 1'020'000;
  r.timing.input_ns = 1'000;
  r.timing.infer_ns = 30'000;
  r.timing.output_ns = 2'000;
  r.timing.batch_size = 4;
  r.answered_ns = 1'060'000;
  r.encoded_ns = 1'070'000;
  return r;
}

TEST(RequestObserverTest, SpansFollowTheStagesUnderARootThatContinuesTheParent) {
  RequestObserver observer(nullptr, nullptr);
  EXPECT_FALSE(observer.enabled());
  RequestObserver::Trace trace;
  trace.sampled = true;
  trace.has_parent = true;
  trace.parent = *ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  auto t = observer.MakeTrace(Record(), trace);
  EXPECT_EQ(t->trace_id, trace.parent.trace_id);
  EXPECT_TRUE(t->has_parent);
  EXPECT_EQ(t->parent_span_id, trace.parent.span_id);
  EXPECT_NE(t->root.span_id, trace.parent.span_id);  // a span of its own
  EXPECT_EQ(t->root.name, "infer");
  EXPECT_FALSE(t->error);
  ASSERT_EQ(t->children.size(), 6u);
  const char* names[] = {"decode",        "queue",          "compute_input",
                         "compute_infer", "compute_output", "encode"};
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(t->children[i].name, names[i]);
  const int64_t base = t->root.start_unix_ns;  // received
  auto offset = [&](const Span& s) {
    return std::make_pair(s.start_unix_ns - base, s.end_unix_ns - base);
  };
  EXPECT_EQ(offset(t->children[0]), Range(0, 10'000));       // decode
  EXPECT_EQ(offset(t->children[1]), Range(15'000, 20'000));  // queue
  EXPECT_EQ(offset(t->children[2]), Range(20'000, 21'000));
  EXPECT_EQ(offset(t->children[3]), Range(21'000, 51'000));
  EXPECT_EQ(offset(t->children[4]), Range(51'000, 53'000));
  EXPECT_EQ(offset(t->children[5]), Range(60'000, 70'000));
  EXPECT_EQ(t->root.end_unix_ns - base, 70'000);
  // Unix time: the steady time plus the clocks' offset (within a minute).
  auto ns = [](auto t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  };
  const int64_t offset_now =
      ns(std::chrono::system_clock::now()) - ns(std::chrono::steady_clock::now());
  EXPECT_LT(std::abs(base - (offset_now + 1'000'000)), int64_t{60} * 1'000'000'000);
  bool batch = false;
  for (const auto& a : t->children[3].attributes) {
    if (a.key == "batch_size") batch = std::get<int64_t>(a.value) == 4;
  }
  EXPECT_TRUE(batch);
}

TEST(RequestObserverTest, AFailureHasNoExecutionSpans) {
  RequestObserver observer(nullptr, nullptr);
  RequestRecord r = Record();
  r.code = StatusCode::kNotFound;
  r.error = "unknown model 'm'";
  r.timing = {};
  r.queue_ns = 0;
  auto t = observer.MakeTrace(r, {.sampled = true});
  EXPECT_FALSE(t->has_parent);
  EXPECT_TRUE(t->error);
  EXPECT_EQ(t->error_message, "NOT_FOUND: unknown model 'm'");
  ASSERT_EQ(t->children.size(), 2u);
  EXPECT_EQ(t->children[0].name, "decode");
  EXPECT_EQ(t->children[1].name, "encode");
}

TEST(AccessLogTest, TextAndJsonLines) {
  const auto dir = std::filesystem::temp_directory_path() / ("access_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto text = AccessLog::Create((dir / "a.log").string(), LogFormat::kText);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  const std::string line = (*text)->Format(Record());
  EXPECT_NE(line.find(" http id=\"id-\\\"7\\\"\" tenant=\"team-a\" model=\"m\" version=\"2\" "
                      "status=OK total_us=70 decode_us=10 queue_us=5 input_us=1 infer_us=30 "
                      "output_us=2 encode_us=10 batch=4"),
            std::string::npos)
      << line;
  (*text)->Write(Record());
  (*text)->Flush();
  text->reset();
  std::ifstream in(dir / "a.log");
  std::string written;
  std::getline(in, written);
  EXPECT_NE(written.find("status=OK total_us=70"), std::string::npos) << written;

  auto json = AccessLog::Create((dir / "b.log").string(), LogFormat::kJson);
  ASSERT_TRUE(json.ok());
  RequestRecord failed = Record();
  failed.code = StatusCode::kInvalidArgument;
  failed.error = "bad\ninput \"x\"";
  const std::string j = (*json)->Format(failed);
  EXPECT_EQ(j.front(), '{');
  EXPECT_EQ(j.back(), '}');
  EXPECT_NE(j.find("\"request_id\":\"id-\\\"7\\\"\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"status\":\"INVALID_ARGUMENT\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"error\":\"bad\\ninput \\\"x\\\"\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"compute_infer_us\":30"), std::string::npos) << j;
  std::filesystem::remove_all(dir);
}

TEST(AccessLogTest, AFileThatCannotBeOpenedIsAnError) {
  auto log = AccessLog::Create("/dev/null/access.log", LogFormat::kText);  // not a folder
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.status().message().find("--access-log '/dev/null/access.log'"), std::string::npos)
      << log.status().message();
}

TEST(LoggingTest, JsonLinesEscapeTheMessage) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  auto logger = std::make_shared<spdlog::logger>("t", sink);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(logger);
  ConfigureLogging(LogFormat::kJson, "worker m");
  spdlog::warn("a \"quoted\"\tline\x01");
  spdlog::set_default_logger(previous);
  spdlog::set_pattern("%+");  // what later loggers get
  const std::string line = out.str();
  EXPECT_NE(line.find("\"level\":\"warning\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"process\":\"worker m\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"msg\":\"a \\\"quoted\\\"\\tline\\u0001\"}"), std::string::npos) << line;
  EXPECT_EQ(line.back(), '\n');
  EXPECT_FALSE(ParseLogFormat("xml").ok());
}

}  // namespace
}  // namespace mm
