// EventStream: the body of a /generate_stream reply (Server-Sent Events),
// filled by the core's threads as a decoupled model answers and written by
// the connection, one write in flight at a time (http_session.cc).
//
// Contract:
//  1. Push may be called from any thread, never after the push marked last;
//     it never blocks: events queue until the connection takes them.
//  2. Take runs on the connection's thread only. It moves every queued event
//     into `out` and says whether the last one is among them; when nothing is
//     queued it keeps `wake` and returns false with `out` empty; the next Push
//     calls `wake` (once, on the pushing thread, without the lock).
//  3. Abandon (the client went away): what is queued and what comes later is
//     dropped, and a waiting `wake` is released.
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <functional>
#include <string>

#include "core/delivery.h"
#include "core/thread_annotations.h"

namespace mm {

class EventStream {
 public:
  // `receipt`: the request's (with its last event), settled delivered once
  // the connection has written the last event, undelivered if it never does.
  void Push(std::string_view event, bool last, DeliveryReceipt receipt = {}) {
    std::function<void()> wake;
    {
      MutexLock lock(mu_);
      if (abandoned_) return;  // (the receipt settles undelivered)
      queued_ += event;
      if (last) {
        last_ = true;
        receipt_ = std::move(receipt);
      }
      wake.swap(wake_);
    }
    if (wake) wake();
  }

  bool Take(std::string& out, bool* last, std::function<void()> wake) {
    MutexLock lock(mu_);
    *last = last_;
    if (queued_.empty() && !last_) {
      wake_ = std::move(wake);
      return false;
    }
    out.swap(queued_);
    queued_.clear();
    return true;
  }

  // The last event was written: settles the receipt delivered.
  void Delivered() {
    DeliveryReceipt receipt;
    {
      MutexLock lock(mu_);
      receipt = std::move(receipt_);
    }
    receipt.Settle(true);
  }

  void Abandon() {
    std::function<void()> wake;
    DeliveryReceipt receipt;
    {
      MutexLock lock(mu_);
      abandoned_ = true;
      queued_.clear();
      wake.swap(wake_);
      receipt = std::move(receipt_);
    }
  }

 private:
  Mutex mu_;
  std::string queued_ MM_GUARDED_BY(mu_);
  bool last_ MM_GUARDED_BY(mu_) = false;
  bool abandoned_ MM_GUARDED_BY(mu_) = false;
  std::function<void()> wake_ MM_GUARDED_BY(mu_);
  DeliveryReceipt receipt_ MM_GUARDED_BY(mu_);
};

}  // namespace mm
