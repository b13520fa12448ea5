#include "service/drift_watch.h"

namespace mm {

DriftWatch::DriftWatch(const InferenceService* service, std::chrono::milliseconds period)
    : service_(service), period_(period), thread_([this] { Run(); }) {}

DriftWatch::~DriftWatch() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void DriftWatch::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, period_, [this] { return stopping_; })) {
    lock.unlock();
    for (const ModelHandle& servable : service_->models().Ready()) {
      InferenceService::CheckDrift(*servable);  // (nothing for a model without a baseline)
    }
    lock.lock();
  }
}

}  // namespace mm
