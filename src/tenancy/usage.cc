#include "tenancy/usage.h"

namespace mm {

UsageFigures ModelUsage::Read() const {
  UsageFigures f;
  f.requests = requests_.load(std::memory_order_relaxed);
  f.failures = failures_.load(std::memory_order_relaxed);
  f.queue_ns = queue_ns_.load(std::memory_order_relaxed);
  f.compute_ns = compute_ns_.load(std::memory_order_relaxed);
  f.bytes_in = bytes_in_.load(std::memory_order_relaxed);
  f.bytes_out = bytes_out_.load(std::memory_order_relaxed);
  return f;
}

ModelUsage* TenantUsage::Model(std::string_view model) {
  {
    ReaderLock lock(mu_);
    if (auto it = models_.find(model); it != models_.end()) return it->second.get();
  }
  WriterLock lock(mu_);
  auto& slot = models_[std::string(model)];
  if (slot == nullptr) slot = std::make_unique<ModelUsage>();
  return slot.get();
}

std::vector<std::pair<std::string, UsageFigures>> TenantUsage::Models() const {
  ReaderLock lock(mu_);
  std::vector<std::pair<std::string, UsageFigures>> out;
  out.reserve(models_.size());
  for (const auto& [name, usage] : models_) out.emplace_back(name, usage->Read());
  return out;
}

TenantUsage* UsageLedger::Tenant(std::string_view id) {
  MutexLock lock(mu_);
  auto& slot = tenants_[std::string(id)];
  if (slot == nullptr) slot = std::make_unique<TenantUsage>(std::string(id));
  return slot.get();
}

std::vector<const TenantUsage*> UsageLedger::Tenants() const {
  MutexLock lock(mu_);
  std::vector<const TenantUsage*> out;
  out.reserve(tenants_.size());
  for (const auto& [id, usage] : tenants_) out.push_back(usage.get());
  return out;
}

}  // namespace mm
