// WorkerProcess: a model's worker, a child process started by the server
// (the mmserve binary in worker mode, or any program in tests) with one end
// of a Unix socketpair as its control socket.
//
// Guarantees:
//  1. The child dies with the server: it is started with PR_SET_PDEATHSIG
//     SIGKILL (and exits at once if the server died before that took hold),
//     so not even a SIGKILL of the server leaves a worker behind. The signal
//     follows the *thread* that spawned the child: spawn from a thread that
//     lives as long as the worker (not a short-lived pool thread).
//  2. Its death is noticed at once: pidfd() becomes readable when it exits
//     (poll/epoll on it), and Wait()/TryWait() reap it and say why it ended.
//  3. Nothing leaks: the destructor kills (SIGKILL) and reaps a child still
//     running, and closes both descriptors. The child inherits its standard
//     streams, its control socket, and no descriptor the server opened
//     close-on-exec (the socketpair and pidfd here are).
//
// Thread-safety: Kill() may be called from any thread; Wait()/TryWait() from
// one thread at a time.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace mm {

struct WorkerExit {
  int exit_code = -1;  // when it exited
  int signal = 0;      // when a signal killed it
  // "exited with status 3", "killed by signal 11 (Segmentation fault)".
  std::string Describe() const;
};

class WorkerProcess {
 public:
  // Starts `argv[0]` (a path) with `argv` as its arguments and its control
  // socket as descriptor `kWorkerSocketFd`, at nice value `nice` (0: the
  // spawning thread's), until someone changes it. INVALID_ARGUMENT for an empty
  // argv; INTERNAL when the system refuses (clone, socketpair, pidfd). A
  // program that cannot be executed exits with status 127 (as a shell's).
  static StatusOr<std::unique_ptr<WorkerProcess>> Spawn(const std::vector<std::string>& argv,
                                                        int nice = 0);
  static constexpr int kWorkerSocketFd = 3;

  ~WorkerProcess();
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  pid_t pid() const { return pid_; }
  int socket() const { return socket_; }  // the server's end
  int pidfd() const { return pidfd_; }    // readable once the child has exited

  // Sends `signal` unless the child was reaped already.
  void Kill(int signal);
  // Blocks until the child exits and reaps it (once; later calls return the
  // same exit).
  WorkerExit Wait();
  // The exit when the child has exited (reaping it), else nullopt.
  std::optional<WorkerExit> TryWait();

 private:
  WorkerProcess(pid_t pid, int socket, int pidfd) : pid_(pid), socket_(socket), pidfd_(pidfd) {}
  std::optional<WorkerExit> Reap(bool block);

  const pid_t pid_;
  const int socket_;
  const int pidfd_;
  std::optional<WorkerExit> exit_;  // set once reaped
};

}  // namespace mm
