// DriftWatch: a background thread that checks every loaded model's drift
// against its alert threshold once a period, so that a crossing is logged
// even when nobody reads the metrics or the statistics (which check too).
// It walks the lifecycle's lock-free snapshot of READY versions; no request
// pays for it. Destroying it stops the thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "service/inference_service.h"

namespace mm {

class DriftWatch {
 public:
  // `service` outlives the watch.
  DriftWatch(const InferenceService* service, std::chrono::milliseconds period);
  ~DriftWatch();
  DriftWatch(const DriftWatch&) = delete;
  DriftWatch& operator=(const DriftWatch&) = delete;

 private:
  void Run();

  const InferenceService* const service_;
  const std::chrono::milliseconds period_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;     // last: starts once the rest is set
};

}  // namespace mm
