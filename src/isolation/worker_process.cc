#include "isolation/worker_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mm {

namespace {

std::string SystemError(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

}  // namespace

std::string WorkerExit::Describe() const {
  if (signal == 0 && exit_code < 0) return "ended, cause unknown";
  if (signal != 0) {
    return "killed by signal " + std::to_string(signal) + " (" + ::strsignal(signal) + ")";
  }
  return "exited with status " + std::to_string(exit_code);
}

StatusOr<std::unique_ptr<WorkerProcess>> WorkerProcess::Spawn(
    const std::vector<std::string>& argv) {
  if (argv.empty()) return InvalidArgument("worker process: no program given");
  // Everything the child needs is prepared before fork: after it, in a
  // process with other threads, only async-signal-safe calls are allowed.
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return Internal(SystemError("worker process: socketpair"));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    Status s = Internal(SystemError("worker process: fork"));
    ::close(fds[0]);
    ::close(fds[1]);
    return s;
  }
  if (pid == 0) {
    // The child. Dies with the spawning thread; if the server is gone
    // already, the signal will never come: leave now.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    // The control socket at a fixed number, without close-on-exec.
    if (fds[1] == kWorkerSocketFd) {
      ::fcntl(kWorkerSocketFd, F_SETFD, 0);
    } else if (::dup2(fds[1], kWorkerSocketFd) < 0) {
      ::_exit(126);
    }
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    Status s = Internal(SystemError("worker process: pidfd_open"));
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    ::close(fds[0]);
    return s;
  }
  ::fcntl(pidfd, F_SETFD, FD_CLOEXEC);
  return std::unique_ptr<WorkerProcess>(new WorkerProcess(pid, fds[0], pidfd));
}

WorkerProcess::~WorkerProcess() {
  if (!exit_) {
    ::kill(pid_, SIGKILL);
    Reap(/*block=*/true);
  }
  ::close(socket_);
  ::close(pidfd_);
}

void WorkerProcess::Kill(int signal) {
  // The pidfd names this very process even after its pid was reused.
  ::syscall(SYS_pidfd_send_signal, pidfd_, signal, nullptr, 0);
}

std::optional<WorkerExit> WorkerProcess::Reap(bool block) {
  if (exit_) return exit_;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0 || (r < 0 && !block)) return std::nullopt;
  WorkerExit e;  // (r < 0 when blocking: reaped elsewhere; the cause is unknown)
  if (r < 0) {
    e.exit_code = -1;
  } else if (WIFSIGNALED(status)) {
    e.signal = WTERMSIG(status);
  } else if (WIFEXITED(status)) {
    e.exit_code = WEXITSTATUS(status);
  }
  exit_ = e;
  return exit_;
}

WorkerExit WorkerProcess::Wait() { return *Reap(/*block=*/true); }

std::optional<WorkerExit> WorkerProcess::TryWait() { return Reap(/*block=*/false); }

}  // namespace mm
