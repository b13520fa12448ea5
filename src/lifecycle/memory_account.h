// Memory accounting under the budget and the tenants' model quotas: what the
// loaded copies hold, what loads under way have reserved, and the evictions
// that make room (planned by PlanEvictions, memory_planner.h).
//
// Contract:
//  1. Every byte a copy holds is counted from its Reserve() until it is
//     dropped (Release), draining copies included; a load's estimate is
//     reserved before it loads and swapped for its footprint after.
//  2. Reserve() plans and evicts under one hold of the table's lock: the
//     plan sees one state, and nothing is evicted unless the whole load fits.
//     Evicted copies are dropped on the calling (loader) thread, after the
//     lock is released.
//  3. A load costs O(models holding a copy), not O(models known): the
//     candidates come from the models with a committed copy (held_), and the
//     use counts' aging, which reads every known model, looks once per
//     known models / 64 Reserve() calls (at every call below 128 models).
//
// Thread-safety: every method may be called concurrently; each takes the
// table's lock itself.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/thread_annotations.h"
#include "lifecycle/memory_planner.h"
#include "lifecycle/model_key.h"
#include "lifecycle/version_table.h"
#include "observability/model_stats.h"

namespace mm {

class MemoryAccount {
 public:
  // `table` and `stats` must outlive this. `budget` 0: unlimited.
  MemoryAccount(VersionTable& table, StatsRegistry& stats, uint64_t budget, EvictionPolicy policy);

  // Makes room for `bytes` more of model `loading` (of `owner`): within the
  // owner's model quotas, then under the budget, by evicting idle, unpinned
  // copies of other models (PlanEvictions); reserves the bytes.
  // RESOURCE_EXHAUSTED, naming the limit, when they cannot fit; then nothing
  // is evicted. `label` names the load in messages.
  Status Reserve(const ModelKey& loading, const std::string& label, uint64_t bytes,
                 const ModelOwner& owner) MM_EXCLUDES(table_.mu());

  // The end of a reservation Reserve() made.
  void Unreserve(const std::string& tenant, const ModelKey& model, uint64_t bytes)
      MM_EXCLUDES(table_.mu());
  // The end of a reservation of `reserved` bytes whose copy turned out to
  // take `bytes` <= reserved: the copy holds `bytes` now, without a new plan
  // (the use only shrinks).
  void Settle(const std::string& tenant, const ModelKey& model, uint64_t reserved, uint64_t bytes)
      MM_EXCLUDES(table_.mu());
  // The end of a reservation of a copy's footprint: the copy holds it now.
  void Commit(const std::string& tenant, const ModelKey& model, uint64_t bytes)
      MM_EXCLUDES(table_.mu());
  // A copy of `model` holding `bytes` was dropped.
  void Release(const ModelKey& model, uint64_t bytes) MM_EXCLUDES(table_.mu());

  struct Use {
    uint64_t budget = 0;
    uint64_t loaded = 0;  // footprints held and reservations
    uint64_t pinned = 0;
  };
  Use Read() const MM_EXCLUDES(table_.mu());

  // The idle copies in the order the budget would evict them for a load of
  // nobody's (EvictionOrder, memory_planner.h): the first `limit`, next to
  // go first, and how many there are in all.
  struct NextEvictions {
    std::vector<MemoryCandidate> first;
    size_t count = 0;
  };
  NextEvictions NextToEvict(size_t limit) const MM_EXCLUDES(table_.mu());

 private:
  // Every copy held, as the planner sees it (no reservations), with each
  // one's entry (`entries`, parallel to state.loaded).
  void GatherLocked(MemoryState& state, std::vector<ModelEntry*>& entries) const
      MM_REQUIRES(table_.mu());
  void ReserveLocked(const std::string& tenant, const ModelKey& model, uint64_t bytes)
      MM_REQUIRES(table_.mu());
  void UnreserveLocked(const std::string& tenant, const ModelKey& model, uint64_t bytes)
      MM_REQUIRES(table_.mu());
  // Halves every use count once they add up to 128 per known model, so that
  // what was popular long ago fades. Looks once per known models / 64 calls
  // (contract 3).
  void AgeUsesLocked() MM_REQUIRES(table_.mu());
  // One copy of `model` fewer; whether that was its last.
  bool DropHeldLocked(const ModelKey& model) MM_REQUIRES(table_.mu());

  VersionTable& table_;
  StatsRegistry& stats_;
  const uint64_t budget_;
  const EvictionPolicy policy_;

  uint64_t loaded_bytes_ MM_GUARDED_BY(table_.mu()) = 0;    // footprints held, draining too
  uint64_t reserved_bytes_ MM_GUARDED_BY(table_.mu()) = 0;  // estimates of loads under way
  // The reservations of reserved_bytes_ that belong to a tenant, by tenant.
  struct TenantReservation {
    ModelKey model;
    uint64_t bytes;
  };
  std::multimap<std::string, TenantReservation, std::less<>> tenant_reservations_
      MM_GUARDED_BY(table_.mu());
  // The models holding committed copies, with how many (Commit until Release
  // or eviction) and their entry: the eviction candidates. The entry is found
  // once, when its first copy is committed; while held, the table keeps it
  // (ModelEntry::held_copies), so a load's plan looks up no model (a lookup
  // in a table of thousands, for each of hundreds of copies, was a tenth of
  // the server's CPU serving thousands of small models).
  struct Held {
    size_t copies = 0;
    ModelEntry* entry = nullptr;
  };
  std::map<ModelKey, Held, ModelKeyLess> held_ MM_GUARDED_BY(table_.mu());
  // One more committed copy of `model`.
  void AddHeldLocked(const ModelKey& model) MM_REQUIRES(table_.mu());
  size_t loads_since_aging_ MM_GUARDED_BY(table_.mu()) = 0;
};

}  // namespace mm
