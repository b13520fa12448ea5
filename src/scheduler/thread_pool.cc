#include "scheduler/thread_pool.h"

namespace mm {

ThreadPool::ThreadPool(size_t threads) {
  if (threads == 0) threads = 1;
  threads_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
}

ThreadPool::~ThreadPool() { Shutdown(); }

void ThreadPool::Submit(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      jobs_.push_back(std::move(job));
      queued_.fetch_add(1, std::memory_order_relaxed);
      cv_.notify_one();
      return;
    }
  }
  job();
}

void ThreadPool::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

bool ThreadPool::TryAcquireSlot() {
  if (queued_.load(std::memory_order_relaxed) != 0) return false;  // queued jobs go first
  size_t busy = busy_.load(std::memory_order_relaxed);
  while (busy < threads_.size()) {
    if (busy_.compare_exchange_weak(busy, busy + 1, std::memory_order_relaxed)) return true;
  }
  return false;
}

void ThreadPool::ReleaseSlot() { busy_.fetch_sub(1, std::memory_order_relaxed); }

void ThreadPool::Loop() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping and drained
      job = std::move(jobs_.front());
      jobs_.pop_front();
      queued_.fetch_sub(1, std::memory_order_relaxed);
    }
    busy_.fetch_add(1, std::memory_order_relaxed);
    job();
    busy_.fetch_sub(1, std::memory_order_relaxed);
  }
}

}  // namespace mm
