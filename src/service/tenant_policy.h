// Where tenancy meets the scheduler and the lifecycle, as the server runs:
//  - the tenants' weights share the execution slots among tenants (the
//    tenants file's over --tenant-weight for the same tenant);
//  - a repository's owner is the fair-share tenant of its models, and its
//    model quotas hold their loads (ModelManager::Options::owner_of);
//  - SIGHUP re-reads the tenants file and applies it again.
// Memory shares are only guaranteed while they fit the memory budget
// together: Apply() warns when they do not.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"
#include "lifecycle/model_manager.h"
#include "scheduler/execution_slots.h"
#include "service/shared_memory.h"
#include "tenancy/tenant_registry.h"

namespace mm {

// The registry of --tenants `tenants_file`, or an open one (every request the
// default admin tenant: logged as a warning) when it is empty. Errors name
// the flag.
StatusOr<std::unique_ptr<TenantRegistry>> OpenTenantRegistry(const std::string& tenants_file);

// Not thread-safe: the server's main thread calls Apply() at start and
// Reload() at each SIGHUP. OwnerOf()'s function may be called from any thread.
class TenantPolicy {
 public:
  // `tenants` and `slots` are not owned and outlive this (and the function
  // OwnerOf() returns). `tenants_file` is --tenants ("" when open), for the
  // log; `memory_budget_bytes` is --model-memory-budget (0: unlimited).
  TenantPolicy(TenantRegistry* tenants, ExecutionSlots* slots, std::string tenants_file,
               uint64_t memory_budget_bytes);

  // Applies the tenants in force: each tenant's weight to the slots (an
  // unusable one is logged and skipped), and a warning when their memory
  // shares add up to more than the budget.
  void Apply() const;

  // SIGHUP: re-reads the tenants file. When it reads, applies it and drops
  // the shared memory regions of tenants that are gone; when it does not, the
  // tenants in force stay. Either way says so in the log; an open server has
  // nothing to re-read.
  void Reload(SharedMemoryManager& shared_memory) const;

  // For ModelManager::Options::owner_of: the tenant owning a repository (by
  // its key), and that tenant's model quotas; nobody for a repository no
  // tenant names.
  std::function<ModelOwner(std::string_view repository_key)> OwnerOf() const;

 private:
  TenantRegistry* const tenants_;
  ExecutionSlots* const slots_;
  const std::string tenants_file_;
  const uint64_t memory_budget_bytes_;
};

}  // namespace mm
