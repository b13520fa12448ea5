// LoadQueue: the lifecycle's loader threads, shared fairly by tenants.
//
// Control operations (loads, warmups, unloads, drops) are queued per tenant
// (the owner of the model's repository; "" for nobody's) and started in
// fair order: the next job is the oldest of the tenant served least recently
// among those that may start one (round robin across tenants, FIFO within
// one). A tenant runs at most `per_tenant` jobs at once. A job that may start
// never waits for a thread while another tenant's job runs: when no thread is
// idle, one is started (up to `max_threads`; only past that do jobs wait for
// a thread, still in fair order). So one tenant's many or slow loads and
// warmups delay only its own; idle threads leave after `linger`.
//
// Contract:
//  1. A job must not block on another job of the same tenant.
//  2. Jobs submitted once Shutdown began run inline on the submitting thread,
//     so that no completion callback is ever lost.
//  3. WaitIdle(deadline) waits until no job is queued or running (false at
//     the deadline); jobs may still be submitted meanwhile and afterwards.
//  4. Shutdown(deadline) runs the jobs still queued on the calling thread
//     (whatever their tenant), then waits for the running ones until the
//     deadline. It returns false when some job was still running then: the
//     queue (and whatever that job uses) must then outlive it, so the caller
//     exits the process instead of destroying them. The destructor waits
//     without a deadline.
//
// Thread-safety: every method may be called concurrently, from jobs too.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/thread_annotations.h"

namespace mm {

class LoadQueue {
 public:
  struct Options {
    size_t per_tenant = 1;     // jobs of one tenant running at once (>= 1)
    size_t max_threads = 256;  // threads in all (>= per_tenant)
    // Nice value of the loader threads: a load competes with requests for
    // the CPU, and requests should win (0: unchanged).
    int nice = 0;
    std::chrono::milliseconds linger{10000};  // an idle thread leaves after this
  };
  explicit LoadQueue(Options options);
  ~LoadQueue();
  LoadQueue(const LoadQueue&) = delete;
  LoadQueue& operator=(const LoadQueue&) = delete;

  void Submit(std::string_view tenant, std::function<void()> job) MM_EXCLUDES(mu_);

  // See the contract above. No deadline: waits as long as it takes.
  bool WaitIdle(std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt)
      MM_EXCLUDES(mu_);
  bool Shutdown(std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt)
      MM_EXCLUDES(mu_);

  // For tests: threads alive now, and jobs running now.
  size_t threads() const MM_EXCLUDES(mu_);
  size_t running() const MM_EXCLUDES(mu_);

 private:
  // A loader thread. Its fields are guarded by the queue's mu_ (which the
  // analysis cannot name from a nested type: every access is in a
  // MM_REQUIRES(mu_) function or under a MutexLock of mu_).
  struct Worker {
    std::thread thread;
    CondVar cv;                 // waited on with mu_
    std::function<void()> job;  // handed over by Dispatch
    std::string tenant;         // the job's
    bool has_job = false;
    bool finished = false;  // its loop has returned
  };
  struct TenantJobs {
    std::deque<std::function<void()>> queued;
    size_t running = 0;
    uint64_t last_served = 0;  // dispatch sequence number of its last job
  };

  // The tenant whose job starts next (fair order), or null.
  std::map<std::string, TenantJobs, std::less<>>::iterator NextLocked() MM_REQUIRES(mu_);
  // Takes the next job for `worker`; false when none may start.
  bool TakeLocked(Worker& worker) MM_REQUIRES(mu_);
  // Hands every job that may start to an idle or new thread.
  void DispatchLocked() MM_REQUIRES(mu_);
  // Whether no job is queued or running.
  bool IdleLocked() const MM_REQUIRES(mu_);
  // Whether every thread but the caller's own has left its loop.
  bool AllFinishedLocked() const MM_REQUIRES(mu_);
  // Joins the threads that have left (never the caller's own).
  void ReapLocked() MM_REQUIRES(mu_);
  void Loop(Worker* worker) MM_EXCLUDES(mu_);

  const Options options_;  // constant after construction
  mutable Mutex mu_;
  CondVar finished_cv_;  // a worker finished its loop
  CondVar idle_cv_;      // nothing queued or running any more
  std::map<std::string, TenantJobs, std::less<>> tenants_ MM_GUARDED_BY(mu_);
  std::list<std::unique_ptr<Worker>> workers_ MM_GUARDED_BY(mu_);
  std::vector<Worker*> idle_ MM_GUARDED_BY(mu_);
  uint64_t sequence_ MM_GUARDED_BY(mu_) = 0;
  size_t running_ MM_GUARDED_BY(mu_) = 0;
  bool stopping_ MM_GUARDED_BY(mu_) = false;
};

}  // namespace mm
