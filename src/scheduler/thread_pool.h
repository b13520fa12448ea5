// A fixed pool of threads running jobs in submission order (the lifecycle's
// loader threads; model executions use ExecutionSlots). A job must not block
// on another job.
//
// Thread-safety: Submit may be called from any thread, including a job.
// Shutdown runs every job already submitted, then joins the threads; jobs
// submitted after Shutdown began run inline on the submitting thread so that
// no completion callback is ever lost.
#pragma once

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

 private:
  void Loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;  // guarded by mu_
  bool stopping_ = false;                   // guarded by mu_
  std::vector<std::thread> threads_;        // constant after construction
};

}  // namespace mm
