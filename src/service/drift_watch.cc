#include "service/drift_watch.h"

namespace mm {

DriftWatch::DriftWatch(const InferenceService* service, std::chrono::milliseconds period)
    : service_(service), period_(period), thread_([this] { Run(); }) {}

DriftWatch::~DriftWatch() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  cv_.NotifyAll();
  thread_.join();
}

void DriftWatch::Run() {
  MutexLock lock(mu_);
  for (;;) {
    const auto until = std::chrono::steady_clock::now() + period_;
    while (!stopping_ && cv_.WaitUntil(lock, until)) {
    }
    if (stopping_) return;
    lock.Unlock();
    for (const ModelHandle& servable : service_->models().Ready()) {
      InferenceService::CheckDrift(*servable);  // (nothing for a model without a baseline)
    }
    lock.Lock();
  }
}

}  // namespace mm
