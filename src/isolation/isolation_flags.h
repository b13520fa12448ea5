// Process isolation's flags, beside ProcessBackend::Options: where models run
// by default, and how their worker processes are timed, restarted and sized.
#pragma once

#include <cstdint>
#include <string>

#include "core/bounds.h"
#include "core/status.h"
#include "isolation/process_backend.h"

namespace CLI {
class App;
}

namespace mm {

inline constexpr Bounds<int64_t> kWorkerExecutionTimeoutMsBounds{0, 86'400'000};
inline constexpr Bounds<double> kWorkerStartTimeoutSecsBounds{0.1, 86'400.0};
inline constexpr Bounds<int64_t> kWorkerRestartBackoffMsBounds{1, 3'600'000};
inline constexpr Bounds<int64_t> kWorkerMaxRestartBackoffMsBounds{1, 86'400'000};

struct IsolationFlags {
  std::string default_isolation = "in_process";  // or "process"
  int64_t worker_execution_timeout_ms = 0;
  double worker_start_timeout_secs = 60;
  int64_t worker_restart_backoff_ms = 1000;
  int64_t worker_max_restart_backoff_ms = 30000;
  uint64_t worker_mailbox_bytes = 64u << 10;

  bool default_process_isolation() const { return default_isolation == "process"; }
};

// Registers --default-isolation, --worker-execution-timeout-ms,
// --worker-start-timeout-secs, --worker-restart-backoff-ms,
// --worker-max-restart-backoff-ms and --worker-mailbox-bytes into `flags`
// (which must outlive the parse).
void AddIsolationFlags(CLI::App& app, IsolationFlags& flags);

// The ProcessBackend::Options the flags say: workers are this binary
// (/proc/self/exe --worker, even if the file was replaced since it started),
// but Python models' when kPythonWorkerProgram lies beside it (it is built
// with the server: a build without it runs them here, more slowly); serving
// at nice `serve_nice` (the execution threads').
inline constexpr char kPythonWorkerProgram[] = "mmserve-python-worker";
ProcessBackend::Options ProcessBackendOptions(const IsolationFlags& flags, int serve_nice);

// ProcessBackend's options checked, in the flags' words: INVALID_ARGUMENT
// for no worker command, a restart backoff that is not positive or a maximum
// below it, a start timeout that is not positive, or a mailbox out of
// ProcessBackend's range. ProcessBackend::Create calls it (and nothing else).
Status ValidateProcessBackendOptions(const ProcessBackend::Options& options);

}  // namespace mm
