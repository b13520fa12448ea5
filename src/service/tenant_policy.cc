#include "service/tenant_policy.h"

#include <spdlog/spdlog.h>

#include <utility>
#include <vector>

namespace mm {

StatusOr<std::unique_ptr<TenantRegistry>> OpenTenantRegistry(const std::string& tenants_file) {
  if (tenants_file.empty()) {
    spdlog::warn(
        "no --tenants file: the server runs open, every request is the one default tenant "
        "(admin), no API key is asked for");
    return TenantRegistry::Open();
  }
  auto loaded = TenantRegistry::FromFile(tenants_file);
  if (!loaded.ok()) return loaded.status().WithContext("--tenants");
  spdlog::info(
      "tenants from {}: {} tenants; every request but the health checks needs an "
      "API key (SIGHUP re-reads the file)",
      tenants_file, (*loaded)->config()->tenants.size());
  return loaded;
}

TenantPolicy::TenantPolicy(TenantRegistry* tenants, ExecutionSlots* slots, std::string tenants_file,
                           uint64_t memory_budget_bytes)
    : tenants_(tenants),
      slots_(slots),
      tenants_file_(std::move(tenants_file)),
      memory_budget_bytes_(memory_budget_bytes) {}

void TenantPolicy::Apply() const {
  const std::shared_ptr<const TenantsConfig> config = tenants_->config();
  uint64_t shares = 0;
  for (const Tenant& t : config->tenants) shares += t.quotas.memory_bytes;
  if (memory_budget_bytes_ > 0 && shares > memory_budget_bytes_) {
    spdlog::warn(
        "the tenants' memory_bytes quotas add up to {} bytes, over --model-memory-budget ({} "
        "bytes): a tenant's share is not guaranteed",
        shares, memory_budget_bytes_);
  }
  for (const Tenant& t : config->tenants) {
    if (Status s = slots_->SetTenantWeight(t.id, t.weight); !s.ok()) {
      spdlog::error("tenant '{}': weight not applied: {}", t.id, s.message());
    } else if (t.weight != 1) {
      spdlog::info("tenant '{}' has weight {} in the execution slots' fair share", t.id, t.weight);
    }
  }
}

void TenantPolicy::Reload(SharedMemoryManager& shared_memory) const {
  if (tenants_->open()) {
    spdlog::warn("SIGHUP: no --tenants file to re-read (the server runs open)");
    return;
  }
  if (Status s = tenants_->Reload(); !s.ok()) {
    spdlog::error("SIGHUP: the tenants file was not reloaded, the tenants in force stay: {}",
                  s.message());
    return;
  }
  Apply();
  // A removed tenant's shared memory regions go with it.
  const std::shared_ptr<const TenantsConfig> config = tenants_->config();
  std::vector<std::string> ids;
  for (const Tenant& t : config->tenants) ids.push_back(t.id);
  shared_memory.RetainOwners(ids);
  spdlog::info("SIGHUP: tenants reloaded from {}: {} tenants", tenants_file_,
               config->tenants.size());
}

std::function<ModelOwner(std::string_view)> TenantPolicy::OwnerOf() const {
  return [registry = tenants_](std::string_view repository) {
    ModelOwner owner;
    if (auto tenant = registry->OwnerOf(repository)) {
      owner.tenant = tenant->id;
      owner.max_loaded_models = tenant->quotas.max_loaded_models;
      owner.memory_bytes = tenant->quotas.memory_bytes;
    }
    return owner;
  };
}

}  // namespace mm
