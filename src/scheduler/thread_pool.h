// A fixed pool of threads running jobs in submission order (the lifecycle's
// loader threads; model executions use ExecutionSlots). A job must not block
// on another job.
//
// Thread-safety: Submit may be called from any thread, including a job.
// Shutdown runs every job already submitted, then joins the threads; jobs
// submitted after Shutdown began run inline on the submitting thread so that
// no completion callback is ever lost.
#pragma once

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "core/thread_annotations.h"

namespace mm {

class ThreadPool {
 public:
  explicit ThreadPool(size_t threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void Submit(std::function<void()> job) MM_EXCLUDES(mu_);
  void Shutdown() MM_EXCLUDES(mu_);
  size_t size() const { return threads_.size(); }

 private:
  void Loop() MM_EXCLUDES(mu_);

  Mutex mu_;
  CondVar cv_;
  std::deque<std::function<void()>> jobs_ MM_GUARDED_BY(mu_);
  bool stopping_ MM_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;  // constant after construction
};

}  // namespace mm
