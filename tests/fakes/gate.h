// A gate for tests: threads Wait() at it until the test Open()s it, and the
// test can AwaitWaiters(n) to know they have arrived. Nothing depends on timing.
#pragma once

#include <condition_variable>
#include <mutex>

namespace mm {

class Gate {
 public:
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    ++waiting_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
  }
  // Blocks until `n` threads are waiting at the gate.
  void AwaitWaiters(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return waiting_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;  // guarded by mu_
  int waiting_ = 0;    // guarded by mu_
};

}  // namespace mm
