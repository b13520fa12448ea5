#include "lifecycle/memory_account.h"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

namespace mm {

MemoryAccount::MemoryAccount(VersionTable& table, StatsRegistry& stats, uint64_t budget,
                             EvictionPolicy policy)
    : table_(table), stats_(stats), budget_(budget), policy_(policy) {}

void MemoryAccount::AgeUsesLocked() {
  auto& models = table_.models();
  if (++loads_since_aging_ < models.size() / 64) return;
  loads_since_aging_ = 0;
  uint64_t total = 0;
  for (const auto& [name, entry] : models) {
    total += entry.past_uses;
    for (const auto& [v, slot] : entry.versions) {
      if (slot.servable) total += slot.servable->uses.load(std::memory_order_relaxed);
    }
  }
  if (total <= 128 * std::max<uint64_t>(models.size(), 1)) return;
  for (auto& [name, entry] : models) {
    entry.past_uses /= 2;
    for (auto& [v, slot] : entry.versions) {
      if (slot.servable) {
        slot.servable->uses.store(slot.servable->uses.load(std::memory_order_relaxed) / 2,
                                  std::memory_order_relaxed);
      }
    }
  }
}

Status MemoryAccount::Reserve(const ModelKey& loading, const std::string& label, uint64_t bytes,
                              const ModelOwner& owner) {
  std::vector<std::pair<ModelKey, int64_t>> evicted;
  std::vector<std::shared_ptr<ServableModel>> drop;
  Status result;
  {
    MutexLock lock(table_.mu());
    if (!NeedsPlan(budget_, owner)) {
      ReserveLocked(owner.tenant, loading, bytes);
      return OkStatus();
    }
    AgeUsesLocked();
    MemoryState state;
    std::vector<ModelEntry*> entries;  // of state.loaded's candidates
    GatherLocked(state, entries);
    if (!owner.tenant.empty()) {
      auto [first, last] = tenant_reservations_.equal_range(owner.tenant);
      for (auto it = first; it != last; ++it) {
        state.reservations.push_back({owner.tenant, it->second.model, it->second.bytes});
      }
    }
    auto plan = PlanEvictions(state, {loading, label, bytes, owner});
    if (!plan.ok()) {
      result = plan.status();
    } else {
      for (const EvictionPlan::Eviction& e : plan->evictions) {
        const MemoryCandidate& c = state.loaded[e.candidate];
        ModelEntry& entry = *entries[e.candidate];
        VersionSlot& slot = entry.versions[c.version];
        loaded_bytes_ -= slot.servable->footprint_bytes;
        DropHeldLocked(c.model);
        entry.past_uses += slot.servable->uses.load(std::memory_order_relaxed);
        slot.MoveTo(ModelState::kUnavailable,
                    "model '" + c.model.name + "' version " + std::to_string(c.version));
        drop.push_back(std::move(slot.servable));
        slot.reason = e.reason;
        evicted.emplace_back(c.model, c.version);
      }
      for (const auto& [key, v] : evicted) table_.Publish(key.name);
      ReserveLocked(owner.tenant, loading, bytes);
    }
  }
  for (const auto& [key, v] : evicted) {
    spdlog::info("model '{}' version {} evicted to fit {}", key.name, v, label);
    if (auto stats = stats_.Find(key.name, v, key.repository)) stats->Evicted();
  }
  // Dropped here, on the loader thread; no malloc_trim: the load that asked
  // for the room is about to reuse that memory.
  drop.clear();
  return result;
}

void MemoryAccount::GatherLocked(MemoryState& state, std::vector<ModelEntry*>& entries) const {
  state.budget = budget_;
  state.used = loaded_bytes_ + reserved_bytes_;
  state.policy = policy_;
  state.loaded.reserve(held_.size());
  entries.reserve(held_.size());
  // The composing models of the ensembles held are pinned while they are.
  std::vector<const ModelKey*> composing;
  for (const auto& [key, held] : held_) {
    for (const auto& [v, slot] : held.entry->versions) {
      if (!slot.servable) continue;
      for (const ModelKey& k : slot.servable->composing) composing.push_back(&k);
    }
  }
  auto used_by_ensemble = [&composing](const ModelKey& key) {
    return std::any_of(composing.begin(), composing.end(),
                       [&key](const ModelKey* k) { return *k == key; });
  };
  for (const auto& [key, held] : held_) {
    const bool composes = !composing.empty() && used_by_ensemble(key);
    const ModelEntry& entry = *held.entry;
    for (const auto& [v, slot] : entry.versions) {
      if (!slot.servable) continue;
      const auto& s = slot.servable;
      state.loaded.push_back({key, v, s->footprint_bytes, s->owner, s->pinned || composes,
                              entry.busy || s->scheduler->pending() > 0,
                              entry.past_uses + s->uses.load(std::memory_order_relaxed),
                              s->last_used_ns.load(std::memory_order_relaxed)});
      entries.push_back(held.entry);
    }
  }
}

MemoryAccount::NextEvictions MemoryAccount::NextToEvict(size_t limit) const {
  MutexLock lock(table_.mu());
  MemoryState state;
  std::vector<ModelEntry*> entries;
  GatherLocked(state, entries);
  const std::vector<size_t> order = EvictionOrder(state);
  NextEvictions next;
  next.count = order.size();
  for (size_t i = 0; i < order.size() && i < limit; ++i) {
    next.first.push_back(std::move(state.loaded[order[i]]));
  }
  return next;
}

void MemoryAccount::ReserveLocked(const std::string& tenant, const ModelKey& model,
                                  uint64_t bytes) {
  reserved_bytes_ += bytes;
  if (!tenant.empty()) tenant_reservations_.emplace(tenant, TenantReservation{model, bytes});
}

void MemoryAccount::UnreserveLocked(const std::string& tenant, const ModelKey& model,
                                    uint64_t bytes) {
  reserved_bytes_ -= bytes;
  if (tenant.empty()) return;
  auto [first, last] = tenant_reservations_.equal_range(tenant);
  for (auto it = first; it != last; ++it) {
    if (it->second.model == model && it->second.bytes == bytes) {
      tenant_reservations_.erase(it);
      return;
    }
  }
}

void MemoryAccount::Unreserve(const std::string& tenant, const ModelKey& model, uint64_t bytes) {
  MutexLock lock(table_.mu());
  UnreserveLocked(tenant, model, bytes);
}

void MemoryAccount::Commit(const std::string& tenant, const ModelKey& model, uint64_t bytes) {
  Settle(tenant, model, bytes, bytes);
}

void MemoryAccount::Settle(const std::string& tenant, const ModelKey& model, uint64_t reserved,
                           uint64_t bytes) {
  MutexLock lock(table_.mu());
  UnreserveLocked(tenant, model, reserved);
  loaded_bytes_ += bytes;
  AddHeldLocked(model);
}

void MemoryAccount::Release(const ModelKey& model, uint64_t bytes) {
  MutexLock lock(table_.mu());
  loaded_bytes_ -= bytes;
  // A model that left the repository while this copy drained may go now.
  if (DropHeldLocked(model)) {
    if (auto it = table_.models().find(model); it != table_.models().end()) {
      table_.MaybeForget(it);
    }
  }
}

void MemoryAccount::AddHeldLocked(const ModelKey& model) {
  Held& held = held_[model];
  if (held.entry == nullptr) held.entry = &table_.Entry(model);
  ++held.copies;
  ++held.entry->held_copies;
}

bool MemoryAccount::DropHeldLocked(const ModelKey& model) {
  auto it = held_.find(model);
  if (it == held_.end()) return false;
  --it->second.entry->held_copies;
  if (--it->second.copies > 0) return false;
  held_.erase(it);
  return true;
}

MemoryAccount::Use MemoryAccount::Read() const {
  MutexLock lock(table_.mu());
  Use use;
  use.budget = budget_;
  use.loaded = loaded_bytes_ + reserved_bytes_;
  for (const auto& [key, held] : held_) {
    for (const auto& [v, slot] : held.entry->versions) {
      if (slot.servable && slot.servable->pinned) use.pinned += slot.servable->footprint_bytes;
    }
  }
  return use;
}

}  // namespace mm
