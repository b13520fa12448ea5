#include "scheduler/timer.h"

#include <sys/prctl.h>

#include <chrono>

namespace mm {

Timer::Timer(const Clock* clock, bool with_thread) : clock_(clock) {
  if (with_thread) thread_ = std::thread([this] { Loop(); });
}

Timer::~Timer() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  cv_.NotifyAll();
  if (thread_.joinable()) thread_.join();
}

void Timer::At(int64_t deadline_ns, std::function<void()> fn) {
  bool earliest = false;
  {
    MutexLock lock(mu_);
    earliest = entries_.empty() || deadline_ns < entries_.top().deadline_ns;
    entries_.push(Entry{deadline_ns, seq_++, std::move(fn)});
  }
  if (earliest) cv_.NotifyAll();
}

size_t Timer::RunDue() {
  std::vector<std::function<void()>> due;
  {
    MutexLock lock(mu_);
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
  // Wake at the deadline, not up to 50 µs after it (Linux's default timer
  // slack): a dynamic batch's max_queue_delay_microseconds of 100 would
  // otherwise hold a lone request for about 150.
  ::prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  MutexLock lock(mu_);
  while (!stopping_) {
    if (entries_.empty()) {
      cv_.Wait(lock);
      continue;
    }
    const int64_t wait_ns = entries_.top().deadline_ns - clock_->NowNs();
    if (wait_ns > 0) {
      cv_.WaitFor(lock, std::chrono::nanoseconds(wait_ns));
      continue;
    }
    lock.Unlock();
    RunDue();
    lock.Lock();
  }
}

}  // namespace mm
