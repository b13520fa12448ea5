// Logging: the server's own messages through spdlog as text or as JSON lines
// (--log-format), and an optional access log with one line per inference
// request (--access-log).
//
// The access log never blocks a request on I/O: lines go through a bounded
// queue to a thread of its own, and when the queue is full the oldest line
// waiting is dropped (and counted). Formatting a line costs an allocation or
// two, only when the access log is on.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"
#include "observability/request_record.h"

namespace spdlog {
class async_logger;
namespace details {
class thread_pool;
}
}  // namespace spdlog

namespace mm {

enum class LogFormat { kText, kJson };
// "text" or "json"; INVALID_ARGUMENT otherwise.
StatusOr<LogFormat> ParseLogFormat(std::string_view name);

// Sets the format of every line the default logger writes from now on.
// JSON lines: {"time":"2026-12-02T01:02:03.456789Z","level":"info","thread":123,"msg":"..."}.
// `process`: a tag for every line (a worker's model name), empty for none.
void ConfigureLogging(LogFormat format, std::string_view process = "");

class AccessLog {
 public:
  // `path`: a file to append to, or "-" for standard output. INVALID_ARGUMENT
  // naming the file when it cannot be opened. `queue_lines`: lines waiting
  // at most.
  static StatusOr<std::unique_ptr<AccessLog>> Create(const std::string& path, LogFormat format,
                                                     size_t queue_lines = 8192);
  // Writes what is queued, then stops.
  ~AccessLog();

  // One line for `record` (see docs/observability.md for the fields).
  void Write(const RequestRecord& record);
  // The line Write would queue (tests).
  std::string Format(const RequestRecord& record) const;
  // Lines dropped because the queue was full.
  uint64_t dropped() const;
  // Waits until every line queued so far is written (tests, shutdown).
  void Flush();

 private:
  AccessLog(LogFormat format, std::shared_ptr<spdlog::details::thread_pool> pool,
            std::shared_ptr<spdlog::async_logger> logger);
  const LogFormat format_;
  std::shared_ptr<spdlog::details::thread_pool> pool_;
  std::shared_ptr<spdlog::async_logger> logger_;
};

}  // namespace mm
