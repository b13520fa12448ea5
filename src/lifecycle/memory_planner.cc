#include "lifecycle/memory_planner.h"

#include <algorithm>
#include <map>

#include "core/memory.h"

namespace mm {

namespace {

bool HasQuotas(const ModelOwner& owner) {
  return !owner.tenant.empty() && (owner.max_loaded_models > 0 || owner.memory_bytes > 0);
}

// An idle copy, in the order it may go.
struct Idle {
  long double uses_per_byte;
  int64_t last_used;
  size_t index;            // into MemoryState::loaded
  bool own;                // the loading tenant's (or, for nobody's load, nobody's)
  bool shielded;           // another tenant's, which has a memory share
  const std::string* why;  // chosen for eviction: the reason it will give (else null)
};

// Rule 4: whether `a` goes before `b`.
bool GoesFirst(bool lfu, const Idle& a, const Idle& b) {
  if (lfu && a.uses_per_byte != b.uses_per_byte) return a.uses_per_byte < b.uses_per_byte;
  return a.last_used < b.last_used;
}

long double UsesPerByte(const MemoryCandidate& c) {
  return static_cast<long double>(c.uses) /
         static_cast<long double>(std::max<uint64_t>(c.bytes, 1));
}

}  // namespace

bool NeedsPlan(uint64_t budget, const ModelOwner& owner) { return budget > 0 || HasQuotas(owner); }

StatusOr<EvictionPlan> PlanEvictions(const MemoryState& state, const MemoryRequest& request) {
  const uint64_t budget = state.budget;
  const ModelOwner& owner = request.owner;
  const std::string& tenant = owner.tenant;
  const uint64_t bytes = request.bytes;
  const bool quotas = HasQuotas(owner);
  const std::string& label = request.label;

  std::vector<Idle> idle;
  uint64_t pinned = 0, busy = 0;
  // The owner's models other than the loading one (with how many of their
  // copies are loaded) and the memory it holds, loads under way included.
  std::map<ModelKey, int, ModelKeyLess> tenant_models;
  uint64_t tenant_bytes = 0;
  for (size_t i = 0; i < state.loaded.size(); ++i) {
    const MemoryCandidate& c = state.loaded[i];
    const bool own = !tenant.empty() && c.owner.tenant == tenant;
    const bool loading = c.model == request.model;
    if (own) {
      tenant_bytes += c.bytes;
      if (!loading) ++tenant_models[c.model];
    }
    if (c.pinned) {
      pinned += c.bytes;
    } else if (loading || c.busy) {
      busy += c.bytes;
    } else {
      idle.push_back({UsesPerByte(c), c.last_used_ns, i,
                      own || (tenant.empty() && c.owner.tenant.empty()),
                      !own && !c.owner.tenant.empty() && c.owner.memory_bytes > 0, nullptr});
    }
  }
  if (!tenant.empty()) {
    for (const MemoryReservation& r : state.reservations) {
      if (r.tenant != tenant) continue;
      tenant_bytes += r.bytes;
      if (r.model != request.model) tenant_models.try_emplace(r.model, 1);
    }
  }
  const bool lfu = state.policy == EvictionPolicy::kLfu;
  std::sort(idle.begin(), idle.end(),
            [lfu](const Idle& a, const Idle& b) { return GoesFirst(lfu, a, b); });

  // Plan on paper: nothing is evicted unless the whole load fits.
  uint64_t used = state.used;
  const std::string quota_of = "tenant '" + tenant + "'";
  const std::string count_reason = "evicted to fit the quota max_loaded_models (" +
                                   std::to_string(owner.max_loaded_models) + ") of " + quota_of;
  const std::string memory_reason = "evicted to fit the quota memory_bytes (" +
                                    FormatBytes(owner.memory_bytes) + ") of " + quota_of;
  const std::string budget_reason = lfu ? "evicted to fit the memory budget (least used per byte)"
                                        : "evicted to fit the memory budget (least recently used)";
  auto choose = [&](Idle& c, const std::string* why) {
    c.why = why;
    const MemoryCandidate& candidate = state.loaded[c.index];
    used -= candidate.bytes;
    if (!c.own || tenant.empty()) return;
    tenant_bytes -= candidate.bytes;
    if (auto it = tenant_models.find(candidate.model);
        it != tenant_models.end() && --it->second == 0) {
      tenant_models.erase(it);
    }
  };
  // 1. The owner's own quotas, from its own idle models.
  if (quotas && owner.max_loaded_models > 0) {
    for (Idle& c : idle) {
      if (tenant_models.size() + 1 <= owner.max_loaded_models) break;
      if (c.own && c.why == nullptr) choose(c, &count_reason);
    }
    if (tenant_models.size() + 1 > owner.max_loaded_models) {
      return ResourceExhausted("cannot load " + label + ": " + quota_of + " has " +
                               std::to_string(tenant_models.size()) +
                               " models loaded or loading, its quota max_loaded_models is " +
                               std::to_string(owner.max_loaded_models) +
                               ", and none of them is idle to evict");
    }
  }
  if (quotas && owner.memory_bytes > 0) {
    const uint64_t held = tenant_bytes;
    for (Idle& c : idle) {
      if (tenant_bytes + bytes <= owner.memory_bytes) break;
      if (c.own && c.why == nullptr) choose(c, &memory_reason);
    }
    if (tenant_bytes + bytes > owner.memory_bytes) {
      return ResourceExhausted(
          "cannot load " + label + ": it needs " + FormatBytes(bytes) + "; " + quota_of +
          " holds " + FormatBytes(held) + " of its quota memory_bytes (" +
          FormatBytes(owner.memory_bytes) + "), and evicting its idle models would leave " +
          FormatBytes(owner.memory_bytes - std::min(owner.memory_bytes, tenant_bytes)));
    }
  }
  // 2. The budget: never another tenant's model under a memory share; a
  // tenant with a share takes from those without one before itself.
  if (budget > 0) {
    const bool own_first = owner.memory_bytes == 0 || tenant.empty();
    for (int pass = 0; pass < 2; ++pass) {
      const bool own_pass = (pass == 0) == own_first;
      for (Idle& c : idle) {
        if (used + bytes <= budget) break;
        if (c.why == nullptr && !c.shielded && c.own == own_pass) choose(c, &budget_reason);
      }
    }
    if (used + bytes > budget) {
      uint64_t shielded = 0;
      for (const Idle& c : idle) shielded += c.shielded ? state.loaded[c.index].bytes : 0;
      std::string held =
          FormatBytes(pinned) + " pinned, " + FormatBytes(busy) + " in use by requests or loading";
      if (shielded > 0) {
        held += ", " + FormatBytes(shielded) + " idle in other tenants' memory shares";
      }
      const uint64_t now_used = state.used;
      return ResourceExhausted("cannot load " + label + ": it needs " + FormatBytes(bytes) +
                               " but the memory budget of " + FormatBytes(budget) + " has " +
                               FormatBytes(now_used < budget ? budget - now_used : 0) +
                               " free: " + held + ", and no idle model left to evict");
    }
  }
  EvictionPlan plan;
  for (const Idle& c : idle) {
    if (c.why != nullptr) plan.evictions.push_back({c.index, *c.why});
  }
  return plan;
}

std::vector<size_t> EvictionOrder(const MemoryState& state) {
  // A load of nobody's: nobody's idle copies first, then those of tenants
  // without a memory share; a share's copies are never taken (rule 3).
  std::vector<Idle> first, then;
  for (size_t i = 0; i < state.loaded.size(); ++i) {
    const MemoryCandidate& c = state.loaded[i];
    if (c.pinned || c.busy) continue;
    const bool nobodys = c.owner.tenant.empty();
    if (!nobodys && c.owner.memory_bytes > 0) continue;
    (nobodys ? first : then)
        .push_back({UsesPerByte(c), c.last_used_ns, i, nobodys, false, nullptr});
  }
  const bool lfu = state.policy == EvictionPolicy::kLfu;
  std::vector<size_t> order;
  order.reserve(first.size() + then.size());
  for (std::vector<Idle>* part : {&first, &then}) {
    std::sort(part->begin(), part->end(),
              [lfu](const Idle& a, const Idle& b) { return GoesFirst(lfu, a, b); });
    for (const Idle& c : *part) order.push_back(c.index);
  }
  return order;
}

}  // namespace mm
