// The version table: every model the lifecycle knows, its versions and their
// states, and the lock-free snapshot of the READY ones that requests read.
//
// States of a version (VersionSlot), with the transitions allowed:
//   UNAVAILABLE -> LOADING      a load starts (no copy held)
//   LOADING     -> READY        the load succeeded
//   LOADING     -> UNAVAILABLE  the load failed (`reason` says why)
//   READY       -> READY        a new copy replaced the old one (a swap)
//   READY       -> UNLOADING    unloaded: the copy drains its requests
//   UNLOADING   -> UNAVAILABLE  the drained copy was dropped
//   READY       -> UNAVAILABLE  evicted while idle (nothing to drain), or its
//                               worker process failed (the copy is kept)
//   UNAVAILABLE -> READY        its worker is back, or a reload replaced the
//                               copy of a failed worker (a copy is held)
//   UNAVAILABLE -> UNLOADING    the copy of a failed worker is unloaded
//   UNLOADING   -> LOADING      a load starts while the old copy drains
//   UNAVAILABLE -> UNAVAILABLE  only the reason changes
// READY and UNLOADING need a copy held, LOADING none. Any other transition is
// refused (VersionSlot::MoveTo logs it and leaves the state as it was).
//
// Locking: one mutex, mu(), guards the table and the per-model state the
// lifecycle's other parts keep in ModelEntry (operations, memory); they take
// it through mu(), so that a decision and its effect on the table happen
// under one hold. Get() and Ready() read the snapshot and take no lock on
// their fast path. The snapshot is sharded by name: Publish(name), after a
// change to one model, republishes only that name's shard (atomically), so
// that a load or an unload costs the same at 10 models or 10,000; Publish()
// rebuilds every shard, for changes to many models at once.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "core/thread_annotations.h"
#include "lifecycle/model_key.h"
#include "lifecycle/model_manager.h"
#include "model_config.pb.h"

namespace mm {

// Whether a version may go from `from` to `to` (the table above, without
// the conditions on a held copy).
bool IsLegalTransition(ModelState from, ModelState to);

// One version of a model.
class VersionSlot {
 public:
  ModelState state() const { return state_; }
  // Moves to `to` when the table above allows it (given whether `servable`
  // is held now); otherwise logs the refused transition, naming `what`, and
  // returns false with the state unchanged.
  bool MoveTo(ModelState to, std::string_view what);

  std::string reason;
  std::shared_ptr<ServableModel> servable;  // the copy held (READY, draining, failed worker)
  uint64_t files = 0;                       // fingerprint of what `servable` was loaded from
  uint64_t config = 0;
  // `servable` is held but UNAVAILABLE: its worker process failed and is
  // being restarted (READY again once it is back).
  bool worker_down = false;
  int restarts = 0;
  std::string last_failure;

 private:
  ModelState state_ = ModelState::kUnavailable;
};

// A queued or running load that others may join (single flight).
struct PendingLoad {
  std::vector<std::function<void(Status)>> waiters;
  uint64_t override_hash = 0;  // the config override it applies (0: none)
  bool started = false;
};

// What the lifecycle knows of one model (a name in one repository). Guarded
// by the table's mutex; each group of fields belongs to one part.
struct ModelEntry {
  // The version table's.
  std::map<int64_t, VersionSlot> versions;
  std::string reason;  // why the model has no version at all
  std::string place;   // where it is, for messages: its folder, else "<repository>/<name>"

  // The repository's, as last scanned (poll mode compares them).
  uint64_t scanned_config = 0;
  std::map<int64_t, uint64_t> scanned_versions;
  bool on_disk = true;

  // The loader's: the config override from the load API, with its hash, and
  // whether a load failed for a reason a retry would not fix (then no load on
  // demand).
  // (On the heap: a known model rarely has one, and a config is ~0.7 KB.)
  std::unique_ptr<inference::ModelConfig> override_config;
  uint64_t override_hash = 0;
  bool failed = false;

  // Memory's: uses by requests before the current copies (and requests that
  // waited for an on-demand load), so the LFU count survives eviction; and
  // the last footprint of each version, the next load's estimate.
  uint64_t past_uses = 0;
  std::map<int64_t, uint64_t> footprints;
  // The copies MemoryAccount counts as held (committed, not yet released or
  // evicted), draining ones included: while any, the entry is not forgotten
  // (MemoryAccount keeps a pointer to it).
  size_t held_copies = 0;

  // ModelOperations': control operations run one at a time per model.
  // (A list: an empty deque allocates ~0.6 KB, for each of thousands of
  // known models.)
  std::list<std::function<void()>> ops;
  bool busy = false;
  // What the running operation answers, called once it is no longer busy
  // (so that a caller told "loaded" finds the model idle, e.g. evictable).
  std::vector<std::function<void()>> after;
  std::shared_ptr<PendingLoad> pending_load;
};

// A name held by several repositories of one scope (or namespace): the error
// names their places (all of them the caller's to see).
Status AmbiguousModel(std::string_view name, const std::vector<std::string>& places);

class VersionTable {
 public:
  using ModelMap = std::map<ModelKey, ModelEntry, ModelKeyLess>;

  VersionTable();
  VersionTable(const VersionTable&) = delete;
  VersionTable& operator=(const VersionTable&) = delete;

  Mutex& mu() const MM_RETURN_CAPABILITY(mu_) { return mu_; }

  // ------------------------------------------------ lock-free (the request path)
  // ModelManager::Get/Acquire: the snapshot's READY copy, the use counted
  // when `count_use`; on a miss, why (NotReady, under the lock).
  StatusOr<ModelHandle> Get(const NameScope& scope, std::string_view name, std::string_view version,
                            bool count_use) const MM_EXCLUDES(mu_);
  std::vector<ModelHandle> Ready() const;

  // ------------------------------------------------------------ under mu()
  ModelMap& models() MM_REQUIRES(mu_) { return models_; }
  const ModelMap& models() const MM_REQUIRES(mu_) { return models_; }
  // The entry of `key`, made (UNAVAILABLE, `reason`) and published if new.
  ModelEntry& Entry(const ModelKey& key, std::string_view reason = {}) MM_REQUIRES(mu_);
  // The one known model `name` names in `scope`: UnknownModel when none,
  // AmbiguousModel (naming the scope's repositories) when several.
  StatusOr<ModelMap::const_iterator> ResolveKnown(const NameScope& scope,
                                                  std::string_view name) const MM_REQUIRES(mu_);
  // Rebuilds the whole snapshot from the slots and publishes it: O(models).
  void Publish() MM_REQUIRES(mu_);
  // Republishes what the snapshot holds for the models named `name` (every
  // repository's; none if the table has none now): O(models / kShards).
  // Every change to one model's READY copies is published this way.
  void Publish(std::string_view name) MM_REQUIRES(mu_);
  // A model that left the repositories, has no operation queued and holds
  // nothing (not even a draining copy) is forgotten.
  void MaybeForget(ModelMap::iterator it) MM_REQUIRES(mu_);
  // The lifecycle is stopping (ModelManager::Shutdown): no load starts, no
  // on-demand load is offered, polling ends. Set once, never cleared.
  bool stopping() const MM_REQUIRES(mu_) { return stopping_; }
  void Stop() MM_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    stopping_ = true;
  }

  // Whether `entry` holds a copy (or one draining) or has an operation under way.
  static bool Holds(const ModelEntry& entry);
  static std::string PlaceOf(const ModelKey& key, const ModelEntry& entry);

  // ------------------------------------------------------------ locks itself
  // A backend's health report for the copy `target` of `key` version
  // `version`. For a failure of the copy still held: its scheduler (whose
  // sequences the caller ends, outside any lock); else null.
  std::shared_ptr<ModelScheduler> OnWorkerHealth(const ModelKey& key, int64_t version,
                                                 const ServableModel* target, const Status& health)
      MM_EXCLUDES(mu_);
  // Every version known (ModelManager::Index), with its owner (by repository).
  std::vector<ModelVersionStatus> Index(
      const std::function<std::string(std::string_view)>& owner_of) const MM_EXCLUDES(mu_);
  // Every version of the model `name` names in `scope` (ModelManager::Versions).
  StatusOr<std::vector<ModelVersionStatus>> Versions(
      const NameScope& scope, std::string_view name,
      const std::function<std::string(std::string_view)>& owner_of) const MM_EXCLUDES(mu_);

 private:
  // What Get() reads: every known model by name (one entry per repository
  // holding the name; almost always one) with its READY versions, in
  // kShards shards by ShardOf(name), each immutable once published.
  struct SnapshotModel {
    std::string repository;
    std::map<int64_t, ModelHandle> ready;
    ModelHandle latest;
  };
  using Shard =
      std::unordered_map<std::string, std::vector<SnapshotModel>, StringHash, std::equal_to<>>;
  static constexpr size_t kShards = 1024;
  static size_t ShardOf(std::string_view name) { return StringHash{}(name) % kShards; }
  static SnapshotModel SnapshotOf(const ModelKey& key, const ModelEntry& entry);

  Status NotReady(const NameScope& scope, std::string_view name, std::string_view version) const
      MM_EXCLUDES(mu_);

  // Declared before models_: destroyed after them, as the copies they hold.
  std::array<std::atomic<std::shared_ptr<const Shard>>, kShards> shards_;
  mutable Mutex mu_;
  ModelMap models_ MM_GUARDED_BY(mu_);
  bool stopping_ MM_GUARDED_BY(mu_) = false;
};

}  // namespace mm
