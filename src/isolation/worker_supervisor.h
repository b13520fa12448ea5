// WorkerSupervisor: the threads behind every worker process.
//
//   mm-reaper   waits (epoll) on the pidfds of the watched workers and calls
//               a worker's on_exit the moment it exits; polls the resident
//               memory of workers with a watchdog limit every 100 ms; and
//               spawns every worker. A worker is started with
//               PR_SET_PDEATHSIG, which follows the *thread* that forked it,
//               so spawning here (a thread that lives as long as the
//               supervisor) ties each worker's life to the server's.
//               Nothing on this thread blocks for long.
//   mm-workers  times delayed jobs (restarts with backoff) and starts each,
//               when due, on a thread of its own (mm-restart): a job may
//               block for as long as a worker's start takes (bounded by its
//               handshake timeout), and never holds up another model's.
//
// Callbacks should capture weak references: one may run shortly after
// Unwatch() returns (it was already taken off the epoll queue); it must then
// find its target gone or stopped and do nothing.
//
// Thread-safety: every method may be called from any thread. The destructor
// stops the threads and waits for the jobs running; no callback runs after it
// returns.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "core/thread_annotations.h"
#include "isolation/worker_process.h"

namespace mm {

class WorkerSupervisor {
 public:
  // INTERNAL when epoll or eventfd cannot be created.
  static StatusOr<std::unique_ptr<WorkerSupervisor>> Create();
  ~WorkerSupervisor();

  // Spawns a worker from the reaper thread (WorkerProcess::Spawn) and waits
  // for the result.
  StatusOr<std::unique_ptr<WorkerProcess>> Spawn(const std::vector<std::string>& argv,
                                                 int nice = 0);

  struct Watch {
    int pidfd = -1;
    pid_t pid = 0;
    std::function<void()> on_exit;  // once, when pidfd turns readable
    // With rss_limit_bytes > 0: called (possibly more than once) when the
    // worker's resident memory exceeds it.
    uint64_t rss_limit_bytes = 0;
    std::function<void(uint64_t rss)> on_over_limit;
  };
  using WatchId = uint64_t;
  WatchId Add(Watch watch);
  void Remove(WatchId id);

  // Runs `job` after `delay` on a thread of its own, so that jobs (one per
  // model's worker at most) run side by side. Jobs still pending at
  // Shutdown() or destruction are dropped unrun.
  void After(std::chrono::milliseconds delay, std::function<void()> job);

  // The server is stopping: no job runs from now on, no worker starts (Spawn
  // answers UNAVAILABLE with `reason`), and every worker this supervisor
  // started that has not exited is killed (SIGKILL), those still in their
  // start-up handshake included. Idempotent; the first reason stays.
  void Shutdown(const std::string& reason);
  // Empty until Shutdown(); then its reason.
  std::string shutdown_reason() const;

 private:
  WorkerSupervisor(int epoll_fd, int wake_fd);
  void ReaperLoop() MM_EXCLUDES(mu_);
  void WorkersLoop() MM_EXCLUDES(mu_);
  void Wake();
  // Closes the pidfds of children that have exited.
  void PruneChildrenLocked() MM_REQUIRES(mu_);

  // The jobs running on their own threads, shared with those threads (a job
  // may drop the last reference to the supervisor, and count itself done after).
  struct Running {
    Mutex mu;
    CondVar cv;
    size_t count MM_GUARDED_BY(mu) = 0;
  };

  const int epoll_fd_;
  const int wake_fd_;

  mutable Mutex mu_;
  bool stopping_ MM_GUARDED_BY(mu_) = false;
  std::string shutdown_reason_ MM_GUARDED_BY(mu_);
  // A pidfd (our own duplicate) of every child spawned and not seen exited.
  std::vector<int> children_ MM_GUARDED_BY(mu_);
  WatchId next_id_ MM_GUARDED_BY(mu_) = 1;
  std::map<WatchId, Watch> watches_ MM_GUARDED_BY(mu_);
  std::vector<std::function<void(bool run)>> reaper_tasks_ MM_GUARDED_BY(mu_);
  std::multimap<std::chrono::steady_clock::time_point, std::function<void()>> jobs_
      MM_GUARDED_BY(mu_);
  CondVar jobs_cv_;
  const std::shared_ptr<Running> running_ = std::make_shared<Running>();
  // Set as the destructor begins. A callback on the reaper thread may drop
  // the last reference, and the destructor then runs on that thread: the
  // loop must not touch this object again once the callback returns.
  const std::shared_ptr<std::atomic<bool>> destroyed_ = std::make_shared<std::atomic<bool>>(false);

  std::thread reaper_;
  std::thread workers_;
};

}  // namespace mm
