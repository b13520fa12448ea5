#include "observability/logging.h"

#include "core/json_string.h"

#include <time.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include <spdlog/async.h>
#include <spdlog/async_logger.h>
#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace mm {

namespace {

// "2026-12-02T01:02:03.456789Z"
void AppendUtcTime(std::string& out, std::chrono::system_clock::time_point t) {
  const auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  const time_t secs = static_cast<time_t>(us / 1'000'000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char text[40];
  const int n = std::snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
                              tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                              tm.tm_sec, static_cast<int>(us % 1'000'000));
  out.append(text, static_cast<size_t>(n));
}

class JsonFormatter final : public spdlog::formatter {
 public:
  explicit JsonFormatter(std::string process) : process_(std::move(process)) {}
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string line = "{\"time\":\"";
    AppendUtcTime(line, msg.time);
    line += "\",\"level\":\"";
    const auto level = spdlog::level::to_string_view(msg.level);
    line.append(level.data(), level.size());
    line += "\",\"thread\":";
    line += std::to_string(msg.thread_id);
    if (!process_.empty()) {
      line += ",\"process\":";
      AppendJsonString(line, process_);
    }
    line += ",\"msg\":";
    AppendJsonString(line, std::string_view(msg.payload.data(), msg.payload.size()));
    line += "}\n";
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>(process_);
  }

 private:
  const std::string process_;
};

int64_t Micros(int64_t ns) { return ns > 0 ? ns / 1000 : 0; }
int64_t Between(int64_t from, int64_t to) { return from > 0 && to >= from ? to - from : 0; }

}  // namespace

StatusOr<LogFormat> ParseLogFormat(std::string_view name) {
  if (name == "text") return LogFormat::kText;
  if (name == "json") return LogFormat::kJson;
  return InvalidArgument("log format '" + std::string(name) + "': expected text or json");
}

void ConfigureLogging(LogFormat format, std::string_view process) {
  if (format == LogFormat::kJson) {
    spdlog::set_formatter(std::make_unique<JsonFormatter>(std::string(process)));
  } else if (!process.empty()) {
    spdlog::set_pattern("[%Y-%m-%d %H:%M:%S.%e] [" + std::string(process) + "] [%l] %v");
  }
}

StatusOr<std::unique_ptr<AccessLog>> AccessLog::Create(const std::string& path, LogFormat format,
                                                       size_t queue_lines) {
  spdlog::sink_ptr sink;
  try {
    if (path == "-") {
      sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
    } else {
      sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, /*truncate=*/false);
    }
  } catch (const std::exception& e) {
    return InvalidArgument("--access-log '" + path + "': cannot open it: " + e.what());
  }
  sink->set_pattern("%v");
  auto pool = std::make_shared<spdlog::details::thread_pool>(std::max<size_t>(queue_lines, 16), 1);
  auto logger = std::make_shared<spdlog::async_logger>(
      "access", std::move(sink), pool, spdlog::async_overflow_policy::overrun_oldest);
  logger->set_level(spdlog::level::info);
  logger->flush_on(spdlog::level::info);
  return std::unique_ptr<AccessLog>(new AccessLog(format, std::move(pool), std::move(logger)));
}

AccessLog::AccessLog(LogFormat format, std::shared_ptr<spdlog::details::thread_pool> pool,
                     std::shared_ptr<spdlog::async_logger> logger)
    : format_(format), pool_(std::move(pool)), logger_(std::move(logger)) {}

AccessLog::~AccessLog() {
  Flush();
  logger_.reset();
  pool_.reset();  // joins its thread once the queue is empty
}

std::string AccessLog::Format(const RequestRecord& r) const {
  const int64_t total = Between(r.received_ns, r.encoded_ns > 0 ? r.encoded_ns : r.answered_ns);
  const int64_t decode = Between(r.received_ns, r.decoded_ns);
  const int64_t encode = Between(r.answered_ns, r.encoded_ns);
  const std::string_view status = StatusCodeName(r.code);
  std::string line;
  line.reserve(256);
  if (format_ == LogFormat::kJson) {
    line += "{\"time\":\"";
    AppendUtcTime(line, std::chrono::system_clock::now());
    line += "\",\"protocol\":";
    AppendJsonString(line, r.protocol);
    line += ",\"request_id\":";
    AppendJsonString(line, r.request_id);
    line += ",\"tenant\":";
    AppendJsonString(line, r.tenant);
    line += ",\"model\":";
    AppendJsonString(line, r.model);
    line += ",\"version\":";
    AppendJsonString(line, r.version);
    line += ",\"status\":\"";
    line += status;
    line += '"';
    auto field = [&line](std::string_view key, int64_t value) {
      line += ",\"";
      line += key;
      line += "\":";
      line += std::to_string(value);
    };
    field("total_us", Micros(total));
    field("decode_us", Micros(decode));
    field("queue_us", Micros(r.queue_ns));
    field("compute_input_us", Micros(r.timing.input_ns));
    field("compute_infer_us", Micros(r.timing.infer_ns));
    field("compute_output_us", Micros(r.timing.output_ns));
    field("encode_us", Micros(encode));
    field("batch_size", r.timing.batch_size);
    if (!r.error.empty()) {
      line += ",\"error\":";
      AppendJsonString(line, r.error);
    }
    line += '}';
    return line;
  }
  // Text: key=value pairs; values that are free text are quoted and escaped.
  AppendUtcTime(line, std::chrono::system_clock::now());
  auto quoted = [&line](std::string_view key, std::string_view value) {
    line += ' ';
    line += key;
    line += '=';
    AppendJsonString(line, value);
  };
  auto number = [&line](std::string_view key, int64_t value) {
    line += ' ';
    line += key;
    line += '=';
    line += std::to_string(value);
  };
  line += ' ';
  line += r.protocol;
  quoted("id", r.request_id);
  quoted("tenant", r.tenant);
  quoted("model", r.model);
  quoted("version", r.version);
  line += " status=";
  line += status;
  number("total_us", Micros(total));
  number("decode_us", Micros(decode));
  number("queue_us", Micros(r.queue_ns));
  number("input_us", Micros(r.timing.input_ns));
  number("infer_us", Micros(r.timing.infer_ns));
  number("output_us", Micros(r.timing.output_ns));
  number("encode_us", Micros(encode));
  number("batch", r.timing.batch_size);
  if (!r.error.empty()) quoted("error", r.error);
  return line;
}

void AccessLog::Write(const RequestRecord& record) {
  const std::string line = Format(record);
  logger_->info(std::string_view(line));
}

uint64_t AccessLog::dropped() const { return pool_->overrun_counter(); }

void AccessLog::Flush() {
  // The flush is queued behind the lines; the queue empties as they are written.
  logger_->flush();
  while (pool_->queue_size() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

}  // namespace mm
