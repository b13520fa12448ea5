// Timer: runs callbacks at deadlines on the scheduler's clock — how a request
// that times out in a queue is answered at its deadline, not whenever the
// queue next moves.
//
// With a thread (the server), a background thread sleeps until the earliest
// deadline (the clock must be SteadyClock's). Without one (tests, with a
// FakeClock), nothing runs until RunDue() is called. Callbacks run without
// the timer's lock held and must be short; they may call At().
// Thread-safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <queue>
#include <thread>
#include <vector>

#include "core/thread_annotations.h"
#include "scheduler/clock.h"

namespace mm {

class Timer {
 public:
  Timer(const Clock* clock, bool with_thread);
  ~Timer();  // drops what has not run
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // Runs `fn` at `deadline_ns` (at once on the next RunDue / wake-up when it
  // has passed).
  void At(int64_t deadline_ns, std::function<void()> fn) MM_EXCLUDES(mu_);
  // Runs every callback whose deadline has come; returns how many ran.
  size_t RunDue() MM_EXCLUDES(mu_);

  const Clock* clock() const { return clock_; }

 private:
  struct Entry {
    int64_t deadline_ns;
    uint64_t seq;  // keeps same-deadline callbacks in order
    std::function<void()> fn;
    bool operator>(const Entry& o) const {
      return deadline_ns != o.deadline_ns ? deadline_ns > o.deadline_ns : seq > o.seq;
    }
  };
  void Loop() MM_EXCLUDES(mu_);

  const Clock* const clock_;
  Mutex mu_;
  CondVar cv_;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> entries_ MM_GUARDED_BY(mu_);
  uint64_t seq_ MM_GUARDED_BY(mu_) = 0;
  bool stopping_ MM_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace mm
