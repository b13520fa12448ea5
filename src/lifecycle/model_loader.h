// ModelLoader: the load and unload operations of one model, run as its
// operations (ModelOperations) on loader threads.
//
// Load(key): scans the model in its repository, picks its backend and the
// versions its policy selects, and brings each (newest first) to READY:
// fetch the version to local disk (ModelRepository::Fetch), reserve its
// memory (MemoryAccount, evicting if need be), load it through the backend,
// warm every instance up, measure its footprint, and swap it in. A version
// already READY from the same files and config is left alone; a reloaded one
// keeps serving its old copy until the new one is READY, then the old copy
// drains (Retire). Versions the policy no longer selects leave once every
// selected one is READY.
//
// An ensemble (config.ensemble_scheduling): its steps' models are found
// where the ensemble's tenant finds models (`resolve`), and must be READY:
// their configs go to the backend (LoadSpec::composing), and the copy keeps
// them from eviction (ServableModel::composing). Load(key, composing) names
// the ones that are not in composing->load_first when the caller may load
// them first (composing->may_wait), and returns; the caller loads them and
// calls Load again. Otherwise the load fails naming the step (with the
// reason the caller's load of that model failed, from composing->failures).
//
// Unload(key): every copy leaves the snapshot at once, drains its queue, and
// is dropped; `done` once all are.
//
// Contract:
//  1. Load and Unload run only as operations of their model: never two at
//     once for one model.
//  2. Retire's drop runs on a loader thread once the copy's scheduler is
//     idle; a copy is destroyed when the last request holding it lets go.
//  3. After Shutdown() (the cancel flag), warmups under way stop at their
//     next execution; loads refuse to start once the table is stopping.
//
// Thread-safety: every method may be called concurrently (for different
// models; see 1).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "backends/backend.h"
#include "core/status.h"
#include "core/thread_annotations.h"
#include "lifecycle/footprint.h"
#include "lifecycle/load_queue.h"
#include "lifecycle/memory_account.h"
#include "lifecycle/model_manager.h"
#include "lifecycle/repository_set.h"
#include "lifecycle/version_table.h"

namespace mm {

class ModelLoader {
 public:
  // The model a step of ensemble `ensemble` names: resolved where the
  // ensemble's tenant resolves names (NOT_FOUND as for an unknown model).
  using ResolveFn =
      std::function<StatusOr<ModelKey>(const ModelKey& ensemble, std::string_view name)>;
  // What an ensemble's load may do about composing models that are not READY.
  struct Composing {
    bool may_wait = true;                               // in
    std::map<ModelKey, Status, ModelKeyLess> failures;  // in: their loads that failed
    std::vector<ModelKey> load_first;                   // out
  };

  // Every reference must outlive this.
  ModelLoader(const ModelManager::Options& options, VersionTable& table,
              RepositorySet& repositories, MemoryAccount& memory, LoadQueue& loaders,
              StatsRegistry& stats, ResolveFn resolve);
  // Health reports arriving later are ignored.
  ~ModelLoader();

  // `composing`: see above; null: composing models that are not READY fail the load.
  Status Load(const ModelKey& key, Composing* composing = nullptr) MM_EXCLUDES(table_.mu());
  void Unload(const ModelKey& key, const std::string& reason, std::function<void(Status)> done)
      MM_EXCLUDES(table_.mu());
  // Records `error` as why `key` cannot load (its index entry's reason), as
  // Load does for a model it cannot load; returns it with the model named.
  Status Fail(const ModelKey& key, const Status& error) MM_EXCLUDES(table_.mu());

  // Warmups under way stop at their next execution.
  void Cancel() { cancel_.store(true, std::memory_order_relaxed); }

 private:
  // The backend that serves `source`, with its platform name; or why none
  // does. The one place the lifecycle looks a backend up.
  struct BackendChoice {
    Backend* backend = nullptr;  // what loads it (the process backend, for a worker)
    Backend* engine = nullptr;   // the model's own backend: Prepare runs on it
    std::string platform;
    // The load reports the model's size itself (a worker's resident memory,
    // a backend's exact figure): no heap probe around it.
    bool reports_size = false;
    bool in_worker = false;  // the model runs in worker processes (isolation)
  };
  StatusOr<BackendChoice> BackendFor(const ModelSource& source) const;
  bool UsesProcess(const inference::ModelConfig& config) const;

  // An ensemble's composing models, as the header says: their configs and keys.
  Status ResolveComposing(const ModelKey& key, const inference::ModelConfig& config,
                          Composing* composing, std::vector<ComposingModel>* models,
                          std::vector<ModelKey>* keys) const;

  StatusOr<std::shared_ptr<ServableModel>> LoadVersion(const ModelKey& key,
                                                       const ModelSource& source, int64_t version,
                                                       const BackendChoice& backend,
                                                       const std::vector<ComposingModel>& composing,
                                                       const std::vector<ModelKey>& composing_keys)
      MM_EXCLUDES(table_.mu());
  // The drift monitor of a model whose folder has a baseline; null without one.
  StatusOr<std::shared_ptr<DriftMonitor>> LoadDriftMonitor(const std::filesystem::path& dir,
                                                           const std::string& label) const;
  // Takes `servable` out of service: waits until its queue drains, then
  // drops it. With `unload`, the slot becomes UNAVAILABLE afterwards.
  void Retire(const ModelKey& key, int64_t version, std::shared_ptr<ServableModel> servable,
              bool unload, std::function<void()> done) MM_EXCLUDES(table_.mu());

  // Lets a backend's health callback reach the table while the loader exists.
  struct HealthRelay {
    Mutex mu;
    VersionTable* table MM_GUARDED_BY(mu) = nullptr;  // null once the loader is gone
  };

  const ModelManager::Options& options_;
  VersionTable& table_;
  RepositorySet& repositories_;
  MemoryAccount& memory_;
  LoadQueue& loaders_;
  StatsRegistry& stats_;
  const ResolveFn resolve_;
  LoadOverlap overlap_;
  const std::shared_ptr<HealthRelay> relay_;
  std::atomic<bool> cancel_{false};
};

}  // namespace mm
