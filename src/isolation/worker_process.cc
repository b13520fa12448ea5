#include "isolation/worker_process.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
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

namespace {

// What the child needs, prepared before it exists.
struct ChildPlan {
  char** argv;
  int socket;  // the child's end, close-on-exec until moved to kWorkerSocketFd
  pid_t parent;
  int nice;
  sigset_t mask;  // the signal mask the program starts with
};

// The child, from clone(CLONE_VM | CLONE_VFORK) to exec: it shares the
// server's memory (and the spawning thread is suspended until it execs or
// exits), so it makes system calls only, touches nothing but its own stack,
// and every libc function it calls is bound at start-up (-z now).
int ChildMain(void* arg) {
  const ChildPlan& plan = *static_cast<const ChildPlan*>(arg);
  // Signal handlers are the server's code: none may run here. Dispositions
  // are the child's own (no CLONE_SIGHAND): reset the caught ones, as
  // posix_spawn does, then take the program's mask.
  for (int sig = 1; sig < NSIG; ++sig) {
    struct sigaction sa;
    if (::sigaction(sig, nullptr, &sa) == 0 && sa.sa_handler != SIG_IGN &&
        sa.sa_handler != SIG_DFL) {
      sa.sa_handler = SIG_DFL;
      sa.sa_flags = 0;
      ::sigaction(sig, &sa, nullptr);
    }
  }
  // Dies with the spawning thread; if the server is gone already, the signal
  // will never come: leave now.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != plan.parent) ::_exit(1);
  // The control socket at a fixed number, without close-on-exec.
  if (plan.socket == WorkerProcess::kWorkerSocketFd) {
    ::fcntl(plan.socket, F_SETFD, 0);
  } else if (::dup2(plan.socket, WorkerProcess::kWorkerSocketFd) < 0) {
    ::_exit(126);
  }
  if (plan.nice != 0) ::setpriority(PRIO_PROCESS, 0, plan.nice);
  ::sigprocmask(SIG_SETMASK, &plan.mask, nullptr);
  ::execv(plan.argv[0], plan.argv);
  ::_exit(127);
}

}  // namespace

StatusOr<std::unique_ptr<WorkerProcess>> WorkerProcess::Spawn(const std::vector<std::string>& argv,
                                                              int nice) {
  if (argv.empty()) return InvalidArgument("worker process: no program given");
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return Internal(SystemError("worker process: socketpair"));
  }
  ChildPlan plan{args.data(), fds[1], ::getpid(), nice, {}};
  sigemptyset(&plan.mask);
  // No signal handler may run in the child while it shares our memory: block
  // them all around the clone (the child resets its handlers before it
  // unblocks).
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  // vfork semantics: no copy of the server's page tables (a fork of a large
  // server takes milliseconds and stalls its other threads' page faults),
  // and this thread waits until the child has exec'd.
  constexpr size_t kStackBytes = 64 << 10;
  auto stack = std::make_unique<char[]>(kStackBytes);
  const pid_t pid =
      ::clone(ChildMain, stack.get() + kStackBytes, CLONE_VM | CLONE_VFORK | SIGCHLD, &plan);
  const int clone_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::close(fds[1]);
  if (pid < 0) {
    errno = clone_errno;
    Status s = Internal(SystemError("worker process: clone"));
    ::close(fds[0]);
    return s;
  }
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
