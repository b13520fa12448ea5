// InFlightCalls: what a transport's Stop() waits for before it tears down
// what its calls still use. Shared by the gRPC transports (grpc++ in
// src/grpc, the native one in src/http).
#pragma once

#include <atomic>
#include <cstddef>

#include "core/thread_annotations.h"

namespace mm::rpc {

// Counts operations that a thread other than a transport's own may still
// start on it (an inference callback finishing its call), so that the
// transport's Stop() closes its queues or connections only once there are
// none. Lock-free per call.
//
// Thread-safety: Add and Done from any thread; WaitIdle once, from the
// thread that stops the transport. Every Add is matched by exactly one Done.
class InFlightCalls {
 public:
  void Add() { count_.fetch_add(1, std::memory_order_relaxed); }
  void Done() {
    if (count_.fetch_sub(1, std::memory_order_acq_rel) == 1 &&
        stopping_.load(std::memory_order_seq_cst)) {
      MutexLock lock(mu_);
      cv_.NotifyAll();
    }
  }
  // Returns once the count is zero.
  void WaitIdle() {
    stopping_.store(true, std::memory_order_seq_cst);
    MutexLock lock(mu_);
    while (count_.load(std::memory_order_acquire) != 0) cv_.Wait(lock);
  }

 private:
  std::atomic<size_t> count_{0};
  std::atomic<bool> stopping_{false};
  // Guards nothing (the count is atomic): it orders WaitIdle's check of the
  // count against Done's wake-up, so the last Done is not missed.
  Mutex mu_;
  CondVar cv_;
};

}  // namespace mm::rpc
