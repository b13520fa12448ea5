#include "isolation/isolation_flags.h"

#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <string>

namespace mm {

void AddIsolationFlags(CLI::App& app, IsolationFlags& flags) {
  app.add_option("--default-isolation", flags.default_isolation,
                 "Where models run unless their config says (mmserve { isolation }): in_process, "
                 "or process (each instance in a worker process of its own: a crash, a memory "
                 "limit or a hang takes down only that model, which restarts)")
      ->capture_default_str()
      ->check(CLI::IsMember({"in_process", "process"}));
  app.add_option("--worker-execution-timeout-ms", flags.worker_execution_timeout_ms,
                 "Models in worker processes: a batch running longer is killed with its worker, "
                 "which restarts (0: no limit; mmserve { execution_timeout_ms } overrides it)")
      ->capture_default_str()
      ->check(CLI::Range(kWorkerExecutionTimeoutMsBounds.min, kWorkerExecutionTimeoutMsBounds.max));
  app.add_option("--worker-start-timeout-secs", flags.worker_start_timeout_secs,
                 "Models in worker processes: a worker must start and load its model within "
                 "this long, else it is killed (the load fails; a restart is retried)")
      ->capture_default_str()
      ->check(CLI::Range(kWorkerStartTimeoutSecsBounds.min, kWorkerStartTimeoutSecsBounds.max));
  app.add_option("--worker-restart-backoff-ms", flags.worker_restart_backoff_ms,
                 "Models in worker processes: wait before the first restart of a failed worker, "
                 "doubling with each failure in a row")
      ->capture_default_str()
      ->check(CLI::Range(kWorkerRestartBackoffMsBounds.min, kWorkerRestartBackoffMsBounds.max));
  app.add_option("--worker-max-restart-backoff-ms", flags.worker_max_restart_backoff_ms,
                 "The longest wait between restarts of a failed worker")
      ->capture_default_str()
      ->check(
          CLI::Range(kWorkerMaxRestartBackoffMsBounds.min, kWorkerMaxRestartBackoffMsBounds.max));
  app.add_option("--worker-mailbox-bytes", flags.worker_mailbox_bytes,
                 "Size of each worker's mailbox; requests and replies larger than half of it "
                 "go through the worker's socket (for tests)")
      ->capture_default_str()
      ->group("");
}

namespace {

// mmserve-python-worker, opened once, as the server starts: a worker started
// later (a restart, a load) runs this very file, even after an upgrade in
// place replaced the one on disk, as mmserve's own workers run
// /proc/self/exe (a newer build would speak another protocol version). The
// descriptor (64 or above) is close-on-exec; executing /proc/self/fd/N in the child
// resolves it before the exec closes it (as glibc's fexecve does). -1: the
// program was not built beside this binary.
int PythonWorkerProgram() {
  static const int fd = [] {
    std::error_code error;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", error);
    if (error) return -1;
    const auto path = self.parent_path() / kPythonWorkerProgram;
    if (::access(path.c_str(), X_OK) != 0) return -1;
    const int opened = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (opened < 0) return -1;
    // Above the numbers a child sets up before its exec (its control socket
    // goes to descriptor 3, which this would otherwise likely be).
    const int high = ::fcntl(opened, F_DUPFD_CLOEXEC, 64);
    ::close(opened);
    return high;
  }();
  return fd;
}

}  // namespace

ProcessBackend::Options ProcessBackendOptions(const IsolationFlags& flags, int serve_nice) {
  ProcessBackend::Options options;
  options.worker_command = {"/proc/self/exe", "--worker"};
  // Python models run in mmserve-python-worker when it was built beside this
  // binary (ProcessBackend::Options::worker_commands says why); else here.
  if (const int program = PythonWorkerProgram(); program >= 0) {
    options.worker_commands["python"] = {"/proc/self/fd/" + std::to_string(program), "--worker"};
  }
  options.execution_timeout = std::chrono::milliseconds(flags.worker_execution_timeout_ms);
  options.start_timeout = std::chrono::milliseconds(
      std::max<int64_t>(1, std::llround(flags.worker_start_timeout_secs * 1000)));
  options.restart_backoff = std::chrono::milliseconds(flags.worker_restart_backoff_ms);
  options.max_restart_backoff = std::chrono::milliseconds(flags.worker_max_restart_backoff_ms);
  options.mailbox_bytes = flags.worker_mailbox_bytes;
  options.serve_nice = serve_nice;
  return options;
}

Status ValidateProcessBackendOptions(const ProcessBackend::Options& options) {
  if (options.worker_command.empty()) {
    return InvalidArgument("process isolation: no worker command");
  }
  if (options.restart_backoff.count() <= 0) {
    return InvalidArgument("--worker-restart-backoff-ms " +
                           std::to_string(options.restart_backoff.count()) +
                           ": the restart backoff must be > 0");
  }
  if (options.max_restart_backoff < options.restart_backoff) {
    return InvalidArgument(
        "--worker-max-restart-backoff-ms must be at least --worker-restart-backoff-ms");
  }
  if (options.start_timeout.count() <= 0) {
    return InvalidArgument("--worker-start-timeout-secs: the worker start timeout must be > 0");
  }
  if (options.mailbox_bytes < ProcessBackend::kMinMailboxBytes ||
      options.mailbox_bytes > ProcessBackend::kMaxMailboxBytes) {
    return InvalidArgument("--worker-mailbox-bytes " + std::to_string(options.mailbox_bytes) +
                           ": expected " + std::to_string(ProcessBackend::kMinMailboxBytes) +
                           " to " + std::to_string(ProcessBackend::kMaxMailboxBytes));
  }
  return OkStatus();
}

}  // namespace mm
