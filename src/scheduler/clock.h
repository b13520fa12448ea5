// Clock: where the scheduler reads the time, so that queue timeouts and
// batching delays are deterministic in tests (FakeClock) and real in the
// server (SteadyClock).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace mm {

class Clock {
 public:
  virtual ~Clock() = default;
  // Nanoseconds on a monotonic clock; only differences mean anything.
  virtual int64_t NowNs() const = 0;
};

class SteadyClock final : public Clock {
 public:
  int64_t NowNs() const override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  // The process's one steady clock.
  static const Clock* Get() {
    static const SteadyClock clock;
    return &clock;
  }
};

// A clock that moves only when told to. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t start_ns = 1'000'000'000) : now_(start_ns) {}
  int64_t NowNs() const override { return now_.load(std::memory_order_acquire); }
  void Advance(int64_t ns) { now_.fetch_add(ns, std::memory_order_acq_rel); }
  void AdvanceUs(int64_t us) { Advance(us * 1000); }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace mm
