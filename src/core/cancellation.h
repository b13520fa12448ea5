// Cancellation: how a transport tells the core that the client of a request
// went away (its connection closed, its gRPC call was cancelled), so that a
// request still waiting in a queue leaves it and is never executed.
//
// Shared (shared_ptr) by the transport, which calls Cancel(), and the core,
// which sets a handler while the request waits. Thread-safe; the handler runs
// once, without any lock of this class held, on the thread that calls Cancel()
// (or OnCancel(), when the request was cancelled before it was set).
#pragma once

#include <atomic>
#include <functional>

#include "core/thread_annotations.h"

namespace mm {

class Cancellation {
 public:
  // The client went away: runs the handler, if one is set and has not run.
  void Cancel() {
    std::function<void()> fn;
    {
      MutexLock lock(mu_);
      if (cancelled_.exchange(true, std::memory_order_acq_rel)) return;
      fn.swap(handler_);
    }
    if (fn) fn();
  }
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }

  // Sets what Cancel() runs (replacing an earlier handler); runs `fn` at once
  // when the request is already cancelled.
  void OnCancel(std::function<void()> fn) {
    {
      MutexLock lock(mu_);
      used_.store(true, std::memory_order_relaxed);
      if (!cancelled_.load(std::memory_order_relaxed)) {
        handler_.swap(fn);
        return;
      }
    }
    fn();
  }

  // For reuse by the next request of the same connection: not cancelled, no
  // handler. Only when no one else uses it any more. No lock when it was
  // never used (the request ran at once, the common case).
  void Reset() {
    if (!used_.load(std::memory_order_relaxed) && !cancelled_.load(std::memory_order_relaxed)) {
      return;
    }
    std::function<void()> old;
    MutexLock lock(mu_);
    cancelled_.store(false, std::memory_order_relaxed);
    used_.store(false, std::memory_order_relaxed);
    old.swap(handler_);
  }

 private:
  Mutex mu_;
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> used_{false};  // a handler was set since the last Reset
  std::function<void()> handler_ MM_GUARDED_BY(mu_);
};

}  // namespace mm
