#include "tenancy/usage.h"

namespace mm {

UsageFigures ModelUsage::Read() const {
  UsageFigures f;
  f.requests = counters_.Read(kRequests);
  f.failures = counters_.Read(kFailures);
  f.queue_ns = counters_.Read(kQueueNs);
  f.compute_ns = counters_.Read(kComputeNs);
  f.bytes_in = counters_.Read(kBytesIn);
  f.bytes_out = counters_.Read(kBytesOut);
  return f;
}

ModelUsage* TenantUsage::Model(std::string_view model) {
  {
    ReaderLock lock(mu_);
    if (auto it = models_.find(model); it != models_.end()) return it->second.get();
  }
  WriterLock lock(mu_);
  auto& slot = models_[std::string(model)];
  if (slot == nullptr) slot = std::make_unique<ModelUsage>(std::string(model));
  return slot.get();
}

ModelUsage* TenantUsage::Model(std::string_view model, const void* key) {
  const auto k = reinterpret_cast<uintptr_t>(key);
  std::atomic<ModelUsage*>& slot = memo_[((k >> 4) ^ (k >> 12)) % kMemoSlots];
  // Acquire: the counters (their name) were made before they were published.
  if (ModelUsage* usage = slot.load(std::memory_order_acquire);
      usage != nullptr && usage->model() == model) {
    return usage;
  }
  ModelUsage* usage = Model(model);
  slot.store(usage, std::memory_order_release);
  return usage;
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
