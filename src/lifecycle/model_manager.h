// ModelManager: which model versions exist, which are loaded, and the handles
// requests hold while they use one.
//
// Lifecycle of a version (legal transitions only):
//   UNAVAILABLE -> LOADING -> READY -> UNLOADING -> UNAVAILABLE
//   LOADING -> UNAVAILABLE (load failed; `reason` says why)
// A READY version that is reloaded (its files or config changed) stays READY
// on the old copy until the new copy is READY; then requests switch to the new
// one at once and the old one drains.
//
// Control modes (Triton's):
//   none      every model is loaded at Start(); nothing changes afterwards.
//   explicit  Start() loads `startup_models` ("*": all); Load()/Unload() and,
//             with load_on_demand, a request for a model that is in a
//             repository but not loaded, load and unload models.
//   poll      every model is loaded at Start(); every poll_interval the
//             repositories are scanned again and added, removed and changed
//             models and versions are loaded, unloaded and reloaded without
//             disturbing the others.
//
// Names. A model is a folder <repository>/<name>, and the manager keys it by
// both: two repositories may each hold a model of the same name. Callers name
// models within a NameScope, the repositories they see (a tenant's own; an
// admin's: all). In a scope, `name` must be held by exactly one repository
// (a folder on disk, or a model still held though its folder is gone): by
// none, the model is unknown (UnknownModel, NotInAnyRepository); by several,
// ALREADY_EXISTS naming those repositories, and only those (a scope never
// sees another's paths). Repositories outside the scope never change an
// answer. Repositories belong to namespaces, their owner's (owner_of; every
// unowned repository is in one namespace, so without tenants every name must
// be unique across all repositories, as in Triton): the loads the manager
// starts itself (start, poll, startup_models) load each repository's `name`
// unless another repository of its namespace holds it too (then that model
// fails to load, naming both).
//
// Control operations (load, unload, reload, eviction's unload) run on loader
// threads (LoadQueue), never on the request path; the operations on one
// model run one after another, different models' in parallel. They are queued
// per namespace (tenant) and started round robin across them; a namespace
// runs at most `load_threads` at once, and another's operations never wait
// for its threads: one tenant's many or slow loads and warmups delay only its
// own. Concurrent loads of one model join the same operation (single flight)
// and all get its outcome.
//
// Requests: Get() is the request path. It reads an immutable snapshot of the
// READY versions (published atomically whenever one changes) and takes no
// lock. A request holds its ModelHandle (and the scheduler holds itself while
// work is queued), so a version is never destroyed under a request: unloading
// removes it from the snapshot, waits until its queue drains, then drops it.
//
// Memory: every loaded version has a footprint, declared in its config
// (mmserve { memory_footprint_bytes }), or for a model in worker processes
// their resident memory after the load, or its library's exact size of it
// (LoadedModel::model_bytes), or measured as the process's heap and
// resident growth across its load (when no other load overlapped; otherwise
// its size on disk).
//
// Models in worker processes: when a worker fails after loading, its version
// turns UNAVAILABLE with the cause (requests get it) until the worker is back
// (the backend restarts it), then READY again; the index counts the failures
// (restarts) and keeps the last cause. With a memory budget, a load that would exceed it first
// evicts idle, unpinned versions, least recently used first; if it still does
// not fit it fails with RESOURCE_EXHAUSTED naming what is needed and where the
// budget went. Which idle versions go first (EvictionPolicy):
//   kLfu (default)  fewest uses per byte of footprint first, ties least
//                   recently used; uses are counted across a model's loads and
//                   evictions and halved as they age. On a skewed (Zipf)
//                   workload this keeps the popular models where plain LRU
//                   keeps whatever came last (docs/benchmarks.md).
//   kLru            least recently used first.
//
// Parts (each with its contract in its header; this class is their facade):
//   version_table.h     the versions, their state machine, the READY snapshot
//   model_operations.h  per-model operations and single-flight loads, on
//                       LoadQueue's loader threads (load_queue.h)
//   model_loader.h      the load and unload operations (fetch, backend,
//                       warmup, footprint, swap, drain)
//   memory_account.h    budget and quota accounting; the eviction plan is
//                       memory_planner.h's pure PlanEvictions
//   poller.h            registration at start, explicit rescans, poll mode
//   repository_set.h    the repositories, through the ModelRepository seam
//
// Thread-safety: every method may be called concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "backends/backend.h"
#include "backends/registry.h"
#include "cache/response_cache.h"
#include "core/status.h"
#include "lifecycle/memory_planner.h"
#include "lifecycle/model_key.h"
#include "model_config.pb.h"
#include "observability/drift.h"
#include "observability/model_stats.h"
#include "repository/model_config.h"
#include "repository/model_repository.h"
#include "scheduler/execution_slots.h"
#include "scheduler/model_scheduler.h"

namespace mm {

enum class ModelState { kUnavailable, kLoading, kReady, kUnloading };
std::string_view ModelStateName(ModelState state);

// One READY model version, shared by the requests using it.
struct ServableModel {
  std::string name;
  std::string repository;  // key() of the repository it was loaded from
  // Keeps a remote repository's cached copy of the files on disk while this
  // version exists (LocalModelVersion::lease; null for a local folder).
  // Declared first, so that it goes last.
  std::shared_ptr<const void> files;
  ModelOwner owner;  // as it was when this version loaded
  int64_t version = 0;
  std::string version_string;     // std::to_string(version), for responses
  inference::ModelConfig config;  // complete config
  std::shared_ptr<ModelScheduler> scheduler;
  uint64_t footprint_bytes = 0;
  // Where footprint_bytes comes from, for the log ("the library's size of
  // the model"): a static string.
  std::string_view footprint_source;
  bool pinned = false;
  bool in_worker = false;  // it runs in worker processes (isolation), else in the server
  // When a request last used it (steady clock, ns), and how many requests
  // used it (counted without a locked instruction: a heuristic, a lost
  // increment under a race does not matter): the eviction order.
  mutable std::atomic<int64_t> last_used_ns{0};
  mutable std::atomic<uint64_t> uses{0};
  // This version's statistics (the scheduler records into the same); never
  // null for a servable the manager made.
  std::shared_ptr<ModelStats> stats;
  // Input drift against the model's baseline (kDriftBaselineFile beside its
  // config), when it ships one and drift detection is on; else null.
  std::shared_ptr<DriftMonitor> drift;
  // Its part of the response cache, when its config enables the cache
  // (response_cache { enable: true }) and the server has one; null
  // otherwise. Its entries go with it.
  std::shared_ptr<ResponseCache::Scope> cache;
  // An ensemble's composing models (its steps'): while this copy is held,
  // they are never evicted to fit the memory budget. Empty for other models.
  std::vector<ModelKey> composing;
};

// Which repositories a caller's model names resolve in: a tenant's
// namespace (its repositories), or every repository (an admin, open mode).
// The lifecycle knows repositories, not tenants. It does not own the keys it
// points to: they must outlive every call it is passed to.
class NameScope {
 public:
  // Every repository.
  static NameScope All() { return NameScope(); }
  // The repositories whose keys (ModelRepository::key()) are `keys` (none:
  // an empty scope).
  static NameScope Of(const std::vector<std::string>& keys) {
    return NameScope(keys.data(), keys.size());
  }
  // One repository, by key.
  static NameScope One(const std::string& key) { return NameScope(&key, 1); }

  bool all() const { return all_; }
  bool Contains(std::string_view repository_key) const {
    if (all_) return true;
    for (size_t i = 0; i < count_; ++i) {
      if (keys_[i] == repository_key) return true;
    }
    return false;
  }

 private:
  NameScope() = default;
  NameScope(const std::string* keys, size_t count) : all_(false), keys_(keys), count_(count) {}
  bool all_ = true;
  const std::string* keys_ = nullptr;
  size_t count_ = 0;
};

// The file beside a model's config.pbtxt that holds its drift baseline
// (observability/drift.h; written by scripts/make_drift_baseline.py).
inline constexpr std::string_view kDriftBaselineFile = "drift_baseline.json";
using ModelHandle = std::shared_ptr<const ServableModel>;

struct ModelVersionStatus {
  std::string name;
  int64_t version = 0;  // 0: the model has no loadable version
  ModelState state = ModelState::kUnavailable;
  std::string reason;
  // Models in worker processes: how often this version's workers failed
  // after loading (each failure is followed by a restart), and the last cause.
  int restarts = 0;
  std::string last_failure;
  std::string repository;  // key() of the repository holding the model
  std::string owner;       // the tenant owning that repository (owner_of); "" for none
  // While a copy is held (READY, or failed worker): its footprint, and the
  // requests waiting in its queue and executing right now.
  uint64_t footprint_bytes = 0;
  size_t queued = 0;
  size_t executing = 0;
};

enum class ModelControlMode { kNone, kExplicit, kPoll };
std::string_view ModelControlModeName(ModelControlMode mode);

class ModelManager {
 public:
  struct Options {
    // Where models come from (not empty; each opened, e.g. by
    // OpenModelRepository). A model is keyed by its repository's key().
    std::vector<std::shared_ptr<ModelRepository>> repositories;
    ModelControlMode mode = ModelControlMode::kNone;
    std::vector<std::string> startup_models;  // explicit mode; "*" = every model
    bool load_on_demand = false;              // explicit mode only
    std::chrono::milliseconds poll_interval{15000};
    uint64_t memory_budget_bytes = 0;  // 0: unlimited
    EvictionPolicy eviction = EvictionPolicy::kLfu;
    // Control operations of one namespace (tenant) running at once; other
    // namespaces' never wait for them (LoadQueue).
    size_t load_threads = 1;
    // Loader threads in all (past it, operations wait for a thread, in fair
    // order).
    size_t max_load_threads = 256;
    // Nice value of the loader threads: a load competes with requests for
    // the CPU, and requests should win (0: same priority as requests).
    int loader_nice = 10;
    ExecutionSlots* slots = nullptr;    // shared by every model; not owned
    ModelScheduler::Options scheduler;  // for every model version's scheduler
    // The owner of a repository (by key) and its model quotas, asked at
    // each load. The owner is the fair share's tenant of its models, over
    // mmserve.tenant (a model cannot claim another tenant's share); an empty
    // answer, or no function, leaves mmserve.tenant and no quotas.
    //
    // Model quotas, checked before a version loads (with its estimate) and
    // after (with its measured footprint):
    //  1. The owner's max_loaded_models and memory_bytes: over either, its
    //     own idle models are evicted (in eviction order) until the load
    //     fits; if they cannot be, RESOURCE_EXHAUSTED naming the quota.
    //  2. The memory budget: idle models are evicted, but never another
    //     tenant's model whose tenant has a memory share (memory_bytes). A
    //     tenant without a share goes at the expense of its own models first,
    //     then of others without a share; a tenant with one reclaims memory
    //     from models of tenants without a share first, then its own.
    std::function<ModelOwner(std::string_view repository_key)> owner_of;
    // Resolves each model's backend (backends/registry.h); not owned,
    // outlives the manager. Required.
    BackendRegistry* backends = nullptr;
    // Loads models whose isolation is PROCESS (mmserve.isolation, else
    // default_isolation) in worker processes, whatever their platform (the
    // platform must still be in `backends`); not owned. Null: such models
    // fail to load, saying so.
    Backend* process_backend = nullptr;
    bool default_process_isolation = false;
    // The process's memory in use, in bytes: footprints are its growth across
    // a load. Default: the larger growth of heap in use and resident memory.
    // Tests inject their own.
    std::function<uint64_t()> memory_probe;
    // Where every version's statistics are kept (not owned; outlives the
    // manager). Null: the manager keeps its own.
    StatsRegistry* stats = nullptr;
    // Drift detection for models that ship a baseline: how it samples and
    // when it alerts. A baseline that cannot be read fails the load, naming
    // the file. Off: baselines are ignored.
    bool drift = true;
    DriftMonitor::Options drift_options;
    // The server's caps on one model's instances and threads
    // (--max-instances-per-model, --max-threads-per-model): a config over
    // one fails to load (INVALID_ARGUMENT naming the flag), a load override
    // before anything is allocated for it.
    ServerLimits limits;
    // What each model version may ask of the server (backends/model_host.h:
    // BLS calls, custom metrics): called once per version load, with the
    // repository key, the model's name and the version; its answer goes into
    // LoadSpec::host (null, or no function: the model gets no host). The
    // server sets the service's (service/model_host_service.h); the lifecycle
    // knows only the interface.
    std::function<std::shared_ptr<ModelHost>(std::string_view repository, const std::string& model,
                                             int64_t version)>
        host_factory;
    // The response cache (--cache-config; not owned, outlives the manager):
    // each version whose config enables it gets a scope of it
    // (ServableModel::cache). Null: no version is cached.
    ResponseCache* response_cache = nullptr;
  };

  // INVALID_ARGUMENT when no repository is given (or a null one), when
  // startup_models or load_on_demand is set outside explicit mode, or
  // without execution slots.
  static StatusOr<std::unique_ptr<ModelManager>> Create(Options options);
  // Shutdown() without a deadline, then drops every model (each is destroyed
  // once its last request completes).
  ~ModelManager();

  // Stops loading: no load starts any more (they fail UNAVAILABLE, "the
  // server is stopping", and so do the requests waiting for them), warmups
  // under way stop at their next execution, on-demand loading ends, and
  // polling ends. READY models keep serving the requests under way. Waits
  // for the control operations under way until `deadline` (none: as long as
  // they take). False when one was still running then (a backend's load that
  // does not return): the manager must then not be destroyed; the caller
  // exits the process instead. May be called more than once. The server
  // calls it first on SIGTERM, so that no request waits for a load while
  // the transports drain.
  bool Shutdown(std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt);

  // Loads what the mode loads at start and returns once those loads have
  // finished; then starts polling in poll mode. UNAVAILABLE naming the
  // models that did not load (each one's reason is in Index()), for
  // --strict-readiness.
  Status Start();

  // Every method taking a model name resolves it in `scope` (see Names at the
  // top); the overloads without one resolve it in NameScope::All().

  // The version `version` ("" = newest READY) of model `name`. NOT_FOUND for
  // an unknown model or version, UNAVAILABLE for one that is not READY.
  // Lock-free: one hash lookup of `name` in the READY snapshot, and a
  // comparison of the repository keys of the models of that name.
  StatusOr<ModelHandle> Get(const NameScope& scope, std::string_view name,
                            std::string_view version) const;
  StatusOr<ModelHandle> Get(std::string_view name, std::string_view version) const {
    return Get(NameScope::All(), name, version);
  }
  // The request path: Get, and the use counted for eviction (recency and
  // frequency). Metadata and readiness checks use Get, so a health probe
  // does not keep a model resident.
  StatusOr<ModelHandle> Acquire(const NameScope& scope, std::string_view name,
                                std::string_view version) const;
  StatusOr<ModelHandle> Acquire(std::string_view name, std::string_view version) const {
    return Acquire(NameScope::All(), name, version);
  }

  // For a request whose Acquire failed: when on-demand loading applies (explicit
  // mode with load_on_demand, and `name` is a model in a repository that is
  // not loaded, or is loading), starts or joins its load and returns true;
  // `done` is then called once, on a loader thread, with Get's result after
  // the load (the use counted); or at once, on the caller's thread, when the
  // newest version became READY since the caller's Acquire failed (a race
  // with a load's end). False when it does not apply: the caller answers
  // Acquire's error.
  bool GetAfterLoad(const NameScope& scope, std::string_view name, std::string_view version,
                    std::function<void(StatusOr<ModelHandle>)> done);
  bool GetAfterLoad(std::string_view name, std::string_view version,
                    std::function<void(StatusOr<ModelHandle>)> done) {
    return GetAfterLoad(NameScope::All(), name, version, std::move(done));
  }

  // Repository API. `config_override` (Triton's "config" load parameter, the
  // model config as JSON) replaces config.pbtxt for this and later loads until
  // a load without one; one without an mmserve block keeps config.pbtxt's. It
  // is checked in full (ParseConfigOverride, with `limits`) before anything
  // is allocated: INVALID_ARGUMENT at once when it fails. `done` is called once, on a loader thread
  // (or at once for a request rejected up front): OK when every selected version is READY,
  // otherwise the first failure. UNAVAILABLE in control mode none and poll, as
  // Triton.
  void Load(const NameScope& scope, std::string_view name,
            std::optional<std::string> config_override, std::function<void(Status)> done);
  void Load(std::string_view name, std::optional<std::string> config_override,
            std::function<void(Status)> done) {
    Load(NameScope::All(), name, std::move(config_override), std::move(done));
  }
  // Unloads every version of `name`; `done` is called once they are drained
  // and dropped. NOT_FOUND for a model that is not known.
  void Unload(const NameScope& scope, std::string_view name, std::function<void(Status)> done);
  void Unload(std::string_view name, std::function<void(Status)> done) {
    Unload(NameScope::All(), name, std::move(done));
  }

  // Poll mode: scans the repositories once and applies what changed; returns
  // when those loads and unloads have finished. The poll thread calls it every
  // poll_interval; tests call it directly.
  void Poll();

  // Every model version known, sorted by name, repository, then version
  // (callers filter by repository). In explicit mode
  // (with `rescan`) the repositories are scanned again first, so models added
  // on disk appear (UNAVAILABLE, "not loaded") before anyone loads them.
  // Metrics read it without a rescan.
  std::vector<ModelVersionStatus> Index(bool rescan = true);

  // The statistics of every version (StatsRegistry).
  StatsRegistry& stats() const;

  // Every READY version, from the same lock-free snapshot as Get (no rescan,
  // no lock): for background work over loaded models.
  std::vector<ModelHandle> Ready() const;

  // The key of the repository of `scope` that holds `name` (as last scanned,
  // else as found on disk now). NOT_FOUND, as UnknownModel, when none does;
  // ALREADY_EXISTS when several do.
  StatusOr<std::string> RepositoryOf(const NameScope& scope, std::string_view name) const;
  StatusOr<std::string> RepositoryOf(std::string_view name) const {
    return RepositoryOf(NameScope::All(), name);
  }

  // Every version ever listed for `name` (READY or not); NOT_FOUND if unknown.
  StatusOr<std::vector<ModelVersionStatus>> Versions(const NameScope& scope,
                                                     std::string_view name) const;
  StatusOr<std::vector<ModelVersionStatus>> Versions(std::string_view name) const {
    return Versions(NameScope::All(), name);
  }

  // Memory accounting, for the index and tests.
  struct MemoryUse {
    uint64_t budget = 0;  // 0: unlimited
    uint64_t loaded = 0;  // footprints of every version held (READY, loading, draining)
    uint64_t pinned = 0;
  };
  MemoryUse memory() const;
  // The idle copies the budget would evict next, first to go first (see
  // MemoryAccount::NextToEvict): for operators, not for planning.
  struct NextEviction {
    std::string name;
    std::string repository;
    int64_t version = 0;
    uint64_t bytes = 0;
    std::string tenant;  // the copy's owner ("" for none)
  };
  // The first `limit`; `*count` (when given) gets how many there are in all.
  std::vector<NextEviction> NextToEvict(size_t limit, size_t* count = nullptr) const;

  // The execution slots every model shares (Options::slots).
  const ExecutionSlots& slots() const { return *options_.slots; }

  ModelControlMode mode() const { return options_.mode; }

  class Impl;

 private:
  explicit ModelManager(Options options);

  const Options options_;
  std::unique_ptr<Impl> impl_;
};

// What Get, Versions and Unload answer for a model no repository holds,
// and Load for one it cannot find. A caller hiding a model (another
// tenant's) answers the same, so that hiding cannot be told from absence.
Status UnknownModel(std::string_view name);
Status NotInAnyRepository(std::string_view name);

// Names that may reach the filesystem: not empty, at most 255 bytes, no '/',
// '\\', control characters or NUL, not "." or "..". INVALID_ARGUMENT otherwise.
Status ValidateModelName(std::string_view name);

}  // namespace mm
