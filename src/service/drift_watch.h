// DriftWatch: a background thread that checks every loaded model's drift
// against its alert threshold once a period, so that a crossing is logged
// even when nobody reads the metrics or the statistics (which check too).
// It walks the lifecycle's lock-free snapshot of READY versions; no request
// pays for it. Destroying it stops the thread.
#pragma once

#include <chrono>
#include <thread>

#include "core/thread_annotations.h"
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
  void Run() MM_EXCLUDES(mu_);

  const InferenceService* const service_;
  const std::chrono::milliseconds period_;
  Mutex mu_;
  CondVar cv_;
  bool stopping_ MM_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts once the rest is set
};

}  // namespace mm
