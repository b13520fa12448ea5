// A fixed pool of execution threads shared by every model: the server's
// execution slots. Jobs run in submission order; a job must not block on
// another job.
//
// Slots: size() bounds how many model executions run at once, on pool threads
// or inline on a caller's thread. A caller may claim an idle slot with
// TryAcquireSlot() to execute a short request where it is (no thread hop) and
// must ReleaseSlot() after.
//
// Thread-safety: Submit may be called from any thread, including a job.
// Shutdown runs every job already submitted, then joins the threads; jobs
// submitted after Shutdown began run inline on the submitting thread so that
// no completion callback is ever lost.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace mm {

class ThreadPool {
 public:
  explicit ThreadPool(size_t threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void Submit(std::function<void()> job);
  void Shutdown();
  size_t size() const { return threads_.size(); }

  // Claims an execution slot for inline work when one is idle and no job is
  // waiting for a thread; false otherwise.
  bool TryAcquireSlot();
  void ReleaseSlot();

 private:
  void Loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;  // guarded by mu_
  bool stopping_ = false;                   // guarded by mu_
  // Slots in use: jobs running on pool threads plus inline claims.
  std::atomic<size_t> busy_{0};
  std::atomic<size_t> queued_{0};     // jobs_.size(), readable without mu_
  std::vector<std::thread> threads_;  // constant after construction
};

}  // namespace mm
