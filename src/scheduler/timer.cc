#include "scheduler/timer.h"

#include <chrono>

namespace mm {

Timer::Timer(const Clock* clock, bool with_thread) : clock_(clock) {
  if (with_thread) thread_ = std::thread([this] { Loop(); });
}

Timer::~Timer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Timer::At(int64_t deadline_ns, std::function<void()> fn) {
  bool earliest = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    earliest = entries_.empty() || deadline_ns < entries_.top().deadline_ns;
    entries_.push(Entry{deadline_ns, seq_++, std::move(fn)});
  }
  if (earliest) cv_.notify_all();
}

size_t Timer::RunDue() {
  std::vector<std::function<void()>> due;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t now = clock_->NowNs();
    while (!entries_.empty() && entries_.top().deadline_ns <= now) {
      due.push_back(std::move(const_cast<Entry&>(entries_.top()).fn));
      entries_.pop();
    }
  }
  for (auto& fn : due) fn();
  return due.size();
}

void Timer::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    if (entries_.empty()) {
      cv_.wait(lock);
      continue;
    }
    const int64_t wait_ns = entries_.top().deadline_ns - clock_->NowNs();
    if (wait_ns > 0) {
      cv_.wait_for(lock, std::chrono::nanoseconds(wait_ns));
      continue;
    }
    lock.unlock();
    RunDue();
    lock.lock();
  }
}

}  // namespace mm
