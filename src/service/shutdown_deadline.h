// ShutdownDeadline: the server's shutdown has --exit-timeout-secs to finish.
//
// Arm() starts the clock when the shutdown begins. If the shutdown has not
// finished (this object's destruction) when it runs out, `cancel` runs (on
// this object's thread: the server kills its workers, which answers their
// requests), and if the shutdown still has not finished a grace period
// later, the process exits at once with status 1 (a worker dies with the
// server, PR_SET_PDEATHSIG). expired() says whether the clock ran out.
//
// Lifetime: construct it after what `cancel` touches, so that it is destroyed
// first. Arm() at most once; expired() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

#include "core/thread_annotations.h"

namespace mm {

class ShutdownDeadline {
 public:
  explicit ShutdownDeadline(std::function<void()> cancel);
  // Ends the clock (the shutdown finished) and joins its thread.
  ~ShutdownDeadline();
  ShutdownDeadline(const ShutdownDeadline&) = delete;
  ShutdownDeadline& operator=(const ShutdownDeadline&) = delete;

  void Arm(std::chrono::seconds timeout, std::chrono::milliseconds grace);
  bool expired() const { return expired_.load(); }

 private:
  // Waits until done_ or `deadline`; true when done_.
  bool WaitDone(std::chrono::steady_clock::time_point deadline) MM_EXCLUDES(mu_);

  const std::function<void()> cancel_;
  Mutex mu_;
  CondVar cv_;
  bool done_ MM_GUARDED_BY(mu_) = false;
  std::atomic<bool> expired_{false};
  std::thread thread_;
};

}  // namespace mm
