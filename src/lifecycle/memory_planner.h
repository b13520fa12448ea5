// The memory planner: which idle model copies to evict so that a load fits
// its owner's model quotas and the server's memory budget, or why it cannot.
//
// A pure function: no threads, no locks, no clock. The lifecycle gathers the
// candidates under its lock, plans, and applies the plan under the same
// hold; a simulator can plan over a fleet it makes up.
//
// The rules (ModelManager::Options::owner_of tells them to operators):
//  1. Never evicted: a pinned copy, a busy one (requests queued or running,
//     an operation under way on its model), a copy of the loading model.
//  2. The owner's quotas first, from its own idle copies only:
//     max_loaded_models (models loaded or loading, the loading one not
//     counted), then memory_bytes (its copies and loads under way).
//  3. Then the budget: never another tenant's copy whose tenant has a memory
//     share (memory_bytes). A tenant without a share (or nobody's load) takes
//     from its own first, then from others without a share; a tenant with a
//     share takes from those without one first, then from its own.
//  4. Within each step, idle copies go in policy order: kLfu, fewest uses
//     per byte of footprint first, ties least recently used; kLru, least
//     recently used first.
//  5. All or nothing: a plan is returned only when the whole request fits;
//     otherwise RESOURCE_EXHAUSTED naming what is needed and where the memory
//     went, and nothing is to be evicted.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "lifecycle/model_key.h"

namespace mm {

// The tenant owning a repository and the model quotas it is held to (the
// tenants file's; the lifecycle knows nothing else of tenants).
struct ModelOwner {
  std::string tenant;              // empty: nobody, no quotas
  uint64_t max_loaded_models = 0;  // 0: no limit
  // The tenant's memory share: the most its models may hold, and what
  // another tenant's load never evicts them to make room for. 0: none.
  uint64_t memory_bytes = 0;
};

enum class EvictionPolicy { kLfu, kLru };

// One loaded copy of a model version (READY, or held while its worker
// restarts).
struct MemoryCandidate {
  ModelKey model;
  int64_t version = 0;
  uint64_t bytes = 0;  // its footprint
  ModelOwner owner;    // as it was when the copy loaded
  bool pinned = false;
  // Requests queued or executing, or an operation under way on its model.
  bool busy = false;
  uint64_t uses = 0;         // requests that used the model (aged)
  int64_t last_used_ns = 0;  // when one last did (any monotonic clock)
};

// Memory held for a load under way of a tenant's model (its estimate or
// footprint until it is accounted as loaded).
struct MemoryReservation {
  std::string tenant;
  ModelKey model;
  uint64_t bytes = 0;
};

struct MemoryState {
  uint64_t budget = 0;  // 0: unlimited
  // Everything held now: every copy's footprint (draining ones too) and every
  // reservation (a tenant's or nobody's).
  uint64_t used = 0;
  EvictionPolicy policy = EvictionPolicy::kLfu;
  std::vector<MemoryCandidate> loaded;          // every copy held
  std::vector<MemoryReservation> reservations;  // tenants' only
};

struct MemoryRequest {
  ModelKey model;
  std::string label;  // "model 'm' version 1": how messages name the load
  uint64_t bytes = 0;
  ModelOwner owner;
};

struct EvictionPlan {
  struct Eviction {
    size_t candidate = 0;  // index into MemoryState::loaded
    std::string reason;    // the evicted version's reason while UNAVAILABLE
  };
  std::vector<Eviction> evictions;  // in policy order (rule 4), whichever step chose them
};

// Whether a load of `owner`'s needs a plan at all: with no budget and no
// quota every load fits.
bool NeedsPlan(uint64_t budget, const ModelOwner& owner);

// See the rules at the top. Deterministic: equal inputs give equal plans.
StatusOr<EvictionPlan> PlanEvictions(const MemoryState& state, const MemoryRequest& request);

// The order in which the budget would take the idle copies for a load of
// nobody's (rules 3 and 4): indices into state.loaded, next to go first.
// Pinned and busy copies, and those under a tenant's memory share, are not
// listed. For operators (the console): what a growing fleet evicts next.
std::vector<size_t> EvictionOrder(const MemoryState& state);

}  // namespace mm
