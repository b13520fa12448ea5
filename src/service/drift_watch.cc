#include "service/drift_watch.h"

#include <string>

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
    ModelManager& models = service_->models();
    for (const ModelVersionStatus& v : models.Index(/*rescan=*/false)) {
      if (v.state != ModelState::kReady) continue;
      auto servable = models.Get(v.name, std::to_string(v.version));
      if (servable.ok()) InferenceService::CheckDrift(**servable);
    }
    lock.lock();
  }
}

}  // namespace mm
