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
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

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

  void Submit(std::string_view tenant, std::function<void()> job);

  // See the contract above. No deadline: waits as long as it takes.
  bool WaitIdle(std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt);
  bool Shutdown(std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt);

  // For tests: threads alive now, and jobs running now.
  size_t threads() const;
  size_t running() const;

 private:
  struct Worker {
    std::thread thread;
    std::condition_variable cv;
    std::function<void()> job;  // handed over by Dispatch; guarded by mu_
    std::string tenant;         // the job's; guarded by mu_
    bool has_job = false;       // guarded by mu_
    bool finished = false;      // guarded by mu_: its loop has returned
  };
  struct TenantJobs {
    std::deque<std::function<void()>> queued;
    size_t running = 0;
    uint64_t last_served = 0;  // dispatch sequence number of its last job
  };

  // Require mu_. The tenant whose job starts next (fair order), or null.
  std::map<std::string, TenantJobs, std::less<>>::iterator NextLocked();
  // Require mu_. Takes the next job for `worker`; false when none may start.
  bool TakeLocked(Worker& worker);
  // Require mu_. Hands every job that may start to an idle or new thread.
  void DispatchLocked();
  // Require mu_. Whether no job is queued or running.
  bool IdleLocked() const;
  // Require mu_. Joins the threads that have left (never the caller's own).
  void ReapLocked();
  void Loop(Worker* worker);

  const Options options_;
  mutable std::mutex mu_;
  std::condition_variable finished_cv_;                     // a worker finished its loop
  std::condition_variable idle_cv_;                         // nothing queued or running any more
  std::map<std::string, TenantJobs, std::less<>> tenants_;  // guarded by mu_
  std::list<std::unique_ptr<Worker>> workers_;              // guarded by mu_
  std::vector<Worker*> idle_;                               // guarded by mu_
  uint64_t sequence_ = 0;                                   // guarded by mu_
  size_t running_ = 0;                                      // guarded by mu_
  bool stopping_ = false;                                   // guarded by mu_
};

}  // namespace mm
