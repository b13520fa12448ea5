#include "lifecycle/model_manager.h"

#include <algorithm>
#include <charconv>
#include <deque>
#include <map>
#include <set>
#include <tuple>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "core/memory.h"
#include "core/path_key.h"
#include "lifecycle/load_queue.h"
#include "lifecycle/warmup.h"
#include "repository/model_config.h"
#include "repository/repository.h"
#include "repository/repository_file.h"

namespace mm {

std::string_view ModelStateName(ModelState state) {
  switch (state) {
    case ModelState::kUnavailable:
      return "UNAVAILABLE";
    case ModelState::kLoading:
      return "LOADING";
    case ModelState::kReady:
      return "READY";
    case ModelState::kUnloading:
      return "UNLOADING";
  }
  return "UNAVAILABLE";
}

std::string_view ModelControlModeName(ModelControlMode mode) {
  switch (mode) {
    case ModelControlMode::kNone:
      return "none";
    case ModelControlMode::kExplicit:
      return "explicit";
    case ModelControlMode::kPoll:
      return "poll";
  }
  return "none";
}

Status ValidateModelName(std::string_view name) {
  if (name.empty()) return InvalidArgument("model name is empty");
  if (name.size() > 255) {
    return InvalidArgument("model name is " + std::to_string(name.size()) +
                           " bytes long; at most 255 are allowed");
  }
  if (name == "." || name == "..") {
    return InvalidArgument("model name '" + std::string(name) + "' is not allowed");
  }
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '/' || c == '\\' || u < 0x20 || u == 0x7f) {
      return InvalidArgument(
          "model name contains a '/', '\\\\' or control character; model names are folder "
          "names in a model repository");
    }
  }
  return OkStatus();
}

namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// A model's identity: its name and the repository (PathKey) holding it.
struct ModelKey {
  std::string name;
  std::string repository;
  bool operator==(const ModelKey&) const = default;
};
struct ModelKeyView {
  std::string_view name;
  std::string_view repository;
};
// By name, then repository; lookups by ModelKeyView.
struct ModelKeyLess {
  using is_transparent = void;
  static ModelKeyView View(const ModelKey& k) { return {k.name, k.repository}; }
  static ModelKeyView View(const ModelKeyView& k) { return k; }
  template <class A, class B>
  bool operator()(const A& a, const B& b) const {
    const ModelKeyView x = View(a), y = View(b);
    return x.name != y.name ? x.name < y.name : x.repository < y.repository;
  }
};

// What Get() reads: every known model by name (one entry per repository
// holding the name; almost always one) with its READY versions, published
// whole on every change.
struct Snapshot {
  struct Model {
    std::string repository;  // PathKey
    std::map<int64_t, ModelHandle> ready;
    ModelHandle latest;
  };
  std::unordered_map<std::string, std::vector<Model>, StringHash, std::equal_to<>> models;
};

// A name held by several repositories of one scope (or namespace): the
// error names them (all of them the caller's to see).
Status AmbiguousModel(std::string_view name, const std::vector<std::filesystem::path>& dirs) {
  std::string paths;
  for (size_t i = 0; i < dirs.size(); ++i) {
    if (i > 0) paths += i + 1 == dirs.size() ? " and " : ", ";
    paths += dirs[i].string();
  }
  return AlreadyExists(
      "model '" + std::string(name) + "' is in more than one repository: " + paths +
      "; a model name must be unique among the repositories it is " + "looked up in");
}

uint64_t DiskBytes(const std::filesystem::path& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code fec;
    if (it->is_regular_file(fec)) total += it->file_size(fec);
  }
  return total;
}

uint64_t DefaultMemoryProbe() {
  uint64_t heap = HeapInUseBytes();
  return heap > 0 ? heap : ProcessResidentBytes();
}

uint64_t HashString(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h | 1;  // never 0: 0 means "no override"
}

}  // namespace

class ModelManager::Impl {
 public:
  struct VersionSlot {
    ModelState state = ModelState::kUnavailable;
    std::string reason;
    std::shared_ptr<ServableModel> servable;  // while READY
    uint64_t files = 0;                       // fingerprint of what `servable` was loaded from
    uint64_t config = 0;
    // `servable` is held but UNAVAILABLE: its worker process failed and is
    // being restarted (READY again once it is back).
    bool worker_down = false;
    int restarts = 0;
    std::string last_failure;
  };
  // Lets a backend's health callback reach the manager while it exists.
  struct HealthRelay {
    std::mutex mu;
    Impl* impl = nullptr;  // guarded by mu; null once the manager is gone
  };
  // A queued or running load that others may join.
  struct PendingLoad {
    std::vector<std::function<void(Status)>> waiters;
    uint64_t override_hash = 0;  // the config override it applies (0: none)
    bool started = false;
  };
  // One model: a name in one repository (the key of models_).
  struct ModelEntry {
    std::map<int64_t, VersionSlot> versions;
    std::string reason;  // why the model has no version at all
    // What the repository held at the last scan (poll mode compares).
    uint64_t scanned_config = 0;
    std::map<int64_t, uint64_t> scanned_versions;
    bool on_disk = true;
    // Config override from the load API, with its hash.
    std::optional<inference::ModelConfig> override_config;
    uint64_t override_hash = 0;
    // A load failed for a reason a retry would not fix: no load on demand.
    bool failed = false;
    // Uses by requests before the current copies (and requests that waited
    // for an on-demand load): the LFU count survives eviction.
    uint64_t past_uses = 0;
    // The last footprint of each version: the next load's estimate.
    std::map<int64_t, uint64_t> footprints;
    // Control operations run one at a time per model.
    std::deque<std::function<void()>> ops;
    bool busy = false;
    // What the running operation answers, called once it is no longer busy
    // (so that a caller told "loaded" finds the model idle, e.g. evictable).
    std::vector<std::function<void()>> after;
    std::shared_ptr<PendingLoad> pending_load;
  };
  using ModelMap = std::map<ModelKey, ModelEntry, ModelKeyLess>;
  // A repository as given, with its PathKey.
  struct Repo {
    std::filesystem::path path;
    std::string key;
  };

  Impl(const Options& options, ModelManager* owner)
      : options_(options),
        owner_(owner),
        repos_([&] {
          std::vector<Repo> repos;
          for (const auto& path : options.repositories) repos.push_back({path, PathKey(path)});
          return repos;
        }()),
        own_stats_(options.stats == nullptr ? std::make_unique<StatsRegistry>() : nullptr),
        stats_(options.stats != nullptr ? options.stats : own_stats_.get()),
        loaders_(std::make_unique<LoadQueue>(LoadQueue::Options{
            .per_tenant = std::max<size_t>(1, options.load_threads),
            .max_threads = std::max<size_t>(options.max_load_threads, options.load_threads),
            .nice = options.loader_nice})),
        snapshot_(std::make_shared<const Snapshot>()),
        relay_(std::make_shared<HealthRelay>()) {
    relay_->impl = this;
  }

  ~Impl() {
    {
      std::lock_guard<std::mutex> relay_lock(relay_->mu);
      relay_->impl = nullptr;
    }
    Shutdown(std::nullopt);
    loaders_->Shutdown();
  }

  bool Shutdown(std::optional<std::chrono::steady_clock::time_point> deadline) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cancel_.store(true, std::memory_order_relaxed);  // warmups stop at their next execution
    poll_cv_.notify_all();
    // Queued loads fail fast now (requests waiting for them get the error);
    // the loader threads stay, for the copies that drain after this.
    if (!loaders_->WaitIdle(deadline)) {
      spdlog::warn("model loads still running at the shutdown deadline are abandoned");
      return false;
    }
    std::lock_guard<std::mutex> lock(poller_mu_);  // its poll's loads have answered
    if (poller_.joinable()) poller_.join();
    return true;
  }

  // ---------------------------------------------------------------- requests
  StatusOr<ModelHandle> Get(const NameScope& scope, std::string_view name, std::string_view version,
                            bool count_use) const {
    std::shared_ptr<const Snapshot> snap = snapshot_.load(std::memory_order_acquire);
    auto it = snap->models.find(name);
    if (it != snap->models.end()) {
      const Snapshot::Model* model = nullptr;
      bool ambiguous = false;
      for (const Snapshot::Model& m : it->second) {
        if (!scope.Contains(m.repository)) continue;
        ambiguous = model != nullptr;
        model = &m;
      }
      const ModelHandle* found = nullptr;
      if (model != nullptr && !ambiguous) {
        if (version.empty()) {
          found = &model->latest;
        } else {
          int64_t v = 0;
          auto [end, ec] = std::from_chars(version.data(), version.data() + version.size(), v);
          if (ec == std::errc() && end == version.data() + version.size()) {
            auto r = model->ready.find(v);
            if (r != model->ready.end()) found = &r->second;
          }
        }
      }
      if (found != nullptr && *found) {
        if (count_use) {
          const ServableModel& m = **found;
          m.last_used_ns.store(NowNs(), std::memory_order_relaxed);
          m.uses.store(m.uses.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        }
        return *found;
      }
    }
    return NotReady(scope, name, version);
  }

  // Why `name`/`version` is not in the snapshot (the slow path, under mu_).
  Status NotReady(const NameScope& scope, std::string_view name, std::string_view version) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto found = ResolveKnownLocked(scope, name);
    if (!found.ok()) return found.status();
    const ModelEntry& entry = (*found)->second;
    if (version.empty()) {
      std::string reason = entry.reason;
      if (reason.empty() && !entry.versions.empty()) {
        reason = entry.versions.rbegin()->second.reason;
      }
      return Unavailable("model '" + std::string(name) + "' has no ready version" +
                         (reason.empty() ? std::string() : ": " + reason));
    }
    int64_t v = 0;
    auto [end, ec] = std::from_chars(version.data(), version.data() + version.size(), v);
    if (ec != std::errc() || end != version.data() + version.size() || v <= 0) {
      return NotFound("model '" + std::string(name) + "' has no version '" + std::string(version) +
                      "': versions are positive integers");
    }
    auto slot = entry.versions.find(v);
    if (slot == entry.versions.end()) {
      return NotFound("model '" + std::string(name) + "' has no version " + std::string(version));
    }
    return Unavailable("model '" + std::string(name) + "' version " + std::string(version) +
                       " is " + std::string(ModelStateName(slot->second.state)) +
                       (slot->second.reason.empty() ? std::string() : ": " + slot->second.reason));
  }

  // ------------------------------------------------------------- names
  // Requires mu_. The one known model `name` names in `scope`: UnknownModel
  // when none, AmbiguousModel (naming the scope's repositories) when several.
  StatusOr<ModelMap::const_iterator> ResolveKnownLocked(const NameScope& scope,
                                                        std::string_view name) const {
    auto found = models_.end();
    std::vector<std::filesystem::path> dirs;
    for (auto it = models_.lower_bound(ModelKeyView{name, {}});
         it != models_.end() && it->first.name == name; ++it) {
      if (!scope.Contains(it->first.repository)) continue;
      found = it;
      dirs.push_back(DirOf(it->first));
    }
    if (dirs.empty()) return UnknownModel(name);
    if (dirs.size() > 1) return AmbiguousModel(name, dirs);
    return ModelMap::const_iterator(found);
  }

  // Requires mu_ not held. The model `name` names in `scope` for a load: the
  // scope's repositories holding a folder `name`, and its known models that
  // still hold a copy or have an operation under way though their folder is
  // gone. NotInAnyRepository when none, AmbiguousModel when several.
  StatusOr<ModelKey> ResolveForLoad(const NameScope& scope, std::string_view name) const {
    std::vector<ModelKey> keys;
    std::vector<std::filesystem::path> dirs;
    for (const Repo& repo : repos_) {
      if (!scope.Contains(repo.key)) continue;
      std::error_code ec;
      if (std::filesystem::is_directory(repo.path / name, ec)) {
        keys.push_back({std::string(name), repo.key});
        dirs.push_back(repo.path / name);
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto it = models_.lower_bound(ModelKeyView{name, {}});
           it != models_.end() && it->first.name == name; ++it) {
        if (!scope.Contains(it->first.repository) || !HoldsLocked(it->second)) continue;
        if (std::find(keys.begin(), keys.end(), it->first) != keys.end()) continue;
        keys.push_back(it->first);
        dirs.push_back(DirOf(it->first));
      }
    }
    if (keys.empty()) return NotInAnyRepository(name);
    if (keys.size() > 1) return AmbiguousModel(name, dirs);
    return keys.front();
  }

  // Requires mu_. Whether `entry` holds a copy (or one draining) or has an
  // operation under way.
  static bool HoldsLocked(const ModelEntry& entry) {
    if (entry.busy || !entry.ops.empty() || entry.pending_load) return true;
    return std::any_of(entry.versions.begin(), entry.versions.end(), [](const auto& v) {
      return v.second.servable != nullptr || v.second.state == ModelState::kUnloading;
    });
  }

  // The folder of `key` (whether or not it exists).
  std::filesystem::path DirOf(const ModelKey& key) const {
    for (const Repo& repo : repos_) {
      if (repo.key == key.repository) return repo.path / key.name;
    }
    return std::filesystem::path(key.repository) / key.name;
  }

  // The namespace of a repository: the tenant owning it ("" for none).
  std::string NamespaceOf(std::string_view repository) const {
    return options_.owner_of ? options_.owner_of(repository).tenant : std::string();
  }

  // Requires mu_. The entry of `key`, made (UNAVAILABLE, `reason`) if new.
  ModelEntry& EntryLocked(const ModelKey& key, std::string_view reason = {}) {
    auto [it, added] = models_.try_emplace(key);
    if (added) {
      it->second.reason = std::string(reason);
      PublishLocked();
    }
    return it->second;
  }

  bool GetAfterLoad(const NameScope& scope, std::string_view name, std::string_view version,
                    std::function<void(StatusOr<ModelHandle>)> done) {
    if (options_.mode != ModelControlMode::kExplicit || !options_.load_on_demand) return false;
    if (!ValidateModelName(name).ok()) return false;
    std::optional<ModelKey> key;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return false;
      auto known = ResolveKnownLocked(scope, name);
      if (known.ok()) {
        key = (*known)->first;
        const ModelEntry& entry = (*known)->second;
        if (entry.failed && !entry.pending_load) return false;
        // A model that serves some version is loaded: a request for a
        // version it does not have gets Get's error, not a rescan.
        const bool serving = std::any_of(entry.versions.begin(), entry.versions.end(),
                                         [](const auto& v) { return v.second.servable; });
        if (serving && !entry.pending_load) {
          int64_t v = 0;
          auto [end, ec] = std::from_chars(version.data(), version.data() + version.size(), v);
          const bool known_version = ec == std::errc() && end == version.data() + version.size() &&
                                     entry.versions.count(v);
          if (!known_version) return false;
        }
      } else if (known.status().code() != StatusCode::kNotFound) {
        return false;  // ambiguous: Get's error says so
      }
    }
    if (!key) {
      auto found = ResolveForLoad(scope, name);
      if (!found.ok()) return false;
      key = std::move(*found);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++EntryLocked(*key).past_uses;  // known from now on: UNAVAILABLE until loaded
    }
    std::string v(version);
    ScheduleLoad(
        *key,
        [this, key = *key, v, done = std::move(done)](Status s) {
          // (The use was counted above.)
          auto got = Get(NameScope::One(key.repository), key.name, v, /*count_use=*/false);
          if (!got.ok() && !s.ok()) return done(s);
          done(std::move(got));
        },
        /*on_demand=*/true);
    return true;
  }

  // ----------------------------------------------------------- control API
  void Start() {
    auto scanned = ScanRepositories(options_.repositories);
    if (!scanned.ok()) {
      spdlog::error("scanning model repositories failed: {}", scanned.status().message());
      return;
    }
    std::vector<ModelKey> to_load;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& source : *scanned) {
        for (const auto& w : source.warnings) spdlog::warn("{}", w);
        ModelEntry& entry = models_[{source.name, PathKey(source.dir.parent_path())}];
        entry.scanned_config = source.config_fingerprint;
        entry.scanned_versions = source.version_fingerprints;
        entry.reason = "not loaded";
      }
      PublishLocked();
      if (options_.mode == ModelControlMode::kExplicit) {
        for (const auto& name : options_.startup_models) {
          bool any = false;
          for (const auto& [key, e] : models_) {
            if (name == "*" || key.name == name) {
              to_load.push_back(key);
              any = true;
            }
          }
          if (!any && name != "*") {
            spdlog::error("--load-model {}: no such model in the repositories", name);
          }
        }
        std::sort(to_load.begin(), to_load.end(), ModelKeyLess());
        to_load.erase(std::unique(to_load.begin(), to_load.end()), to_load.end());
      } else {
        for (const auto& [key, e] : models_) to_load.push_back(key);
      }
    }
    std::mutex done_mu;
    std::condition_variable done_cv;
    size_t remaining = to_load.size();
    for (const auto& key : to_load) {
      ScheduleLoad(key, [&](Status) {
        std::lock_guard<std::mutex> lock(done_mu);
        if (--remaining == 0) done_cv.notify_all();
      });
    }
    std::unique_lock<std::mutex> lock(done_mu);
    done_cv.wait(lock, [&] { return remaining == 0; });
    lock.unlock();
    if (options_.mode == ModelControlMode::kPoll) {
      std::lock_guard<std::mutex> poller_lock(poller_mu_);
      std::lock_guard<std::mutex> state_lock(mu_);
      if (!stopping_) poller_ = std::thread([this] { PollLoop(); });
    }
  }

  void Load(const NameScope& scope, std::string_view name,
            std::optional<std::string> config_override, std::function<void(Status)> done) {
    if (options_.mode != ModelControlMode::kExplicit) {
      return done(
          Unavailable("cannot load model '" + std::string(name) + "': this server runs with " +
                      "--model-control-mode " + std::string(ModelControlModeName(options_.mode)) +
                      "; loading through the repository API needs --model-control-mode explicit"));
    }
    if (Status s = ValidateModelName(name); !s.ok()) return done(s);
    // Checked in full (bounds and the server's limits) before anything is
    // allocated for it.
    std::optional<inference::ModelConfig> override_config;
    if (config_override) {
      auto config = ParseConfigOverride(*config_override, name, options_.limits);
      if (!config.ok()) return done(config.status());
      override_config = std::move(*config);
    }
    auto key = ResolveForLoad(scope, name);
    if (!key.ok()) return done(key.status());
    {
      std::lock_guard<std::mutex> lock(mu_);
      ModelEntry& entry = EntryLocked(*key);
      entry.failed = false;
      if (override_config) {
        entry.override_hash = HashString(*config_override);
        entry.override_config = std::move(override_config);
      } else {
        entry.override_hash = 0;
        entry.override_config.reset();
      }
    }
    ScheduleLoad(*key, std::move(done));
  }

  void Unload(const NameScope& scope, std::string_view name, std::function<void(Status)> done) {
    if (options_.mode != ModelControlMode::kExplicit) {
      return done(Unavailable(
          "cannot unload model '" + std::string(name) + "': this server runs with " +
          "--model-control-mode " + std::string(ModelControlModeName(options_.mode)) +
          "; unloading through the repository API needs --model-control-mode explicit"));
    }
    ModelKey key;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto found = ResolveKnownLocked(scope, name);
      if (!found.ok()) return done(found.status());
      key = (*found)->first;
    }
    Schedule(key, [this, key, done = std::move(done)]() mutable {
      UnloadAll(key, "unloaded", std::move(done));
    });
  }

  StatsRegistry& stats() const { return *stats_; }

  std::vector<ModelHandle> Ready() const {
    const std::shared_ptr<const Snapshot> snap = snapshot_.load(std::memory_order_acquire);
    std::vector<ModelHandle> out;
    for (const auto& [name, models] : snap->models) {
      for (const auto& model : models) {
        for (const auto& [v, handle] : model.ready) out.push_back(handle);
      }
    }
    return out;
  }

  std::vector<ModelVersionStatus> Index(bool rescan) {
    if (rescan && options_.mode == ModelControlMode::kExplicit) RegisterNewModels();
    std::map<std::string, std::string, std::less<>> owners;  // by repository
    for (const Repo& repo : repos_) owners[repo.key] = NamespaceOf(repo.key);
    std::vector<ModelVersionStatus> out;
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, entry] : models_) {
      auto owner = owners.find(key.repository);
      const std::string tenant = owner != owners.end() ? owner->second : std::string();
      if (entry.versions.empty()) {
        out.push_back(
            {key.name, 0, ModelState::kUnavailable, entry.reason, 0, {}, key.repository, tenant});
        continue;
      }
      for (const auto& [v, slot] : entry.versions) {
        out.push_back({key.name, v, slot.state, slot.reason, slot.restarts, slot.last_failure,
                       key.repository, tenant});
        if (slot.servable) {
          out.back().footprint_bytes = slot.servable->footprint_bytes;
          std::tie(out.back().queued, out.back().executing) =
              slot.servable->scheduler->queued_and_executing();
        }
      }
    }
    return out;
  }

  // A backend's health report for the version `target` was loaded as.
  void OnHealth(const ModelKey& key, int64_t version, const ServableModel* target,
                const Status& health) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = models_.find(key);
    if (it == models_.end() || target == nullptr) return;
    auto v = it->second.versions.find(version);
    if (v == it->second.versions.end() || v->second.servable.get() != target) return;
    VersionSlot& slot = v->second;
    if (!health.ok()) {
      ++slot.restarts;
      slot.last_failure = health.message();
      if (slot.state == ModelState::kReady || slot.worker_down) {
        slot.state = ModelState::kUnavailable;
        slot.worker_down = true;
        slot.reason = health.message();
        PublishLocked();
      }
    } else if (slot.worker_down) {
      slot.worker_down = false;
      if (slot.state == ModelState::kUnavailable) {
        slot.state = ModelState::kReady;
        slot.reason.clear();
        PublishLocked();
        spdlog::info("model '{}' version {} is READY again", key.name, version);
      }
    }
  }

  StatusOr<std::vector<ModelVersionStatus>> Versions(const NameScope& scope,
                                                     std::string_view name) const {
    std::lock_guard<std::mutex> lock(mu_);
    MM_ASSIGN_OR_RETURN(auto it, ResolveKnownLocked(scope, name));
    const std::string owner = NamespaceOf(it->first.repository);
    std::vector<ModelVersionStatus> out;
    for (const auto& [v, slot] : it->second.versions) {
      out.push_back({std::string(name), v, slot.state, slot.reason, slot.restarts,
                     slot.last_failure, it->first.repository, owner});
    }
    return out;
  }

  StatusOr<std::string> RepositoryOf(const NameScope& scope, std::string_view name) const {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto known = ResolveKnownLocked(scope, name);
      if (known.ok()) return (*known)->first.repository;
      if (known.status().code() != StatusCode::kNotFound) return known.status();
    }
    if (ValidateModelName(name).ok()) {
      auto found = ResolveForLoad(scope, name);
      if (found.ok()) return found->repository;
      if (found.status().code() != StatusCode::kNotFound) return found.status();
    }
    return UnknownModel(name);
  }

  MemoryUse memory() const {
    std::lock_guard<std::mutex> lock(mu_);
    MemoryUse use;
    use.budget = options_.memory_budget_bytes;
    use.loaded = loaded_bytes_ + reserved_bytes_;
    for (const auto& [key, entry] : models_) {
      for (const auto& [v, slot] : entry.versions) {
        if (slot.servable && slot.servable->pinned) use.pinned += slot.servable->footprint_bytes;
      }
    }
    return use;
  }

 private:
  // --------------------------------------------------- per-model operations
  // Queues `op` behind the model's other operations; runs on a loader thread,
  // in its namespace's queue.
  void Schedule(const ModelKey& key, std::function<void()> op) {
    bool submit = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ModelEntry& entry = EntryLocked(key);
      entry.ops.push_back(std::move(op));
      if (!entry.busy) submit = entry.busy = true;
    }
    if (submit) loaders_->Submit(NamespaceOf(key.repository), [this, key] { RunNext(key); });
  }

  void RunNext(const ModelKey& key) {
    std::function<void()> op;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ModelEntry& entry = models_[key];
      op = std::move(entry.ops.front());
      entry.ops.pop_front();
    }
    op();
    bool more = false;
    std::vector<std::function<void()>> after;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = models_.find(key);
      if (it == models_.end()) return;
      after.swap(it->second.after);
      more = !it->second.ops.empty();
      if (!more) {
        it->second.busy = false;
        MaybeForgetLocked(it);
      }
    }
    for (auto& fn : after) fn();
    if (more) loaders_->Submit(NamespaceOf(key.repository), [this, key] { RunNext(key); });
  }

  // Requires mu_. A model that left the repositories, has no operation
  // queued and holds nothing (not even a draining copy) is forgotten.
  void MaybeForgetLocked(ModelMap::iterator it) {
    const ModelEntry& entry = it->second;
    if (entry.on_disk || entry.busy || !entry.ops.empty()) return;
    for (const auto& [v, slot] : entry.versions) {
      if (slot.servable || slot.state == ModelState::kUnloading) return;
    }
    models_.erase(it);
    PublishLocked();
  }

  // Starts a load of `key`, or joins the one queued or running. A load a
  // request started (`on_demand`) is counted in its newest version's
  // statistics once it succeeds (one that joins counts nothing).
  void ScheduleLoad(const ModelKey& key, std::function<void(Status)> done, bool on_demand = false) {
    std::shared_ptr<PendingLoad> pending;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ModelEntry& entry = EntryLocked(key);
      if (entry.pending_load && entry.pending_load->override_hash == entry.override_hash) {
        entry.pending_load->waiters.push_back(std::move(done));
        return;
      }
      pending = std::make_shared<PendingLoad>();
      pending->override_hash = entry.override_hash;
      pending->waiters.push_back(std::move(done));
      entry.pending_load = pending;
    }
    Schedule(key, [this, key, pending, on_demand] {
      {
        std::lock_guard<std::mutex> lock(mu_);
        pending->started = true;
      }
      Status s = LoadModel(key);
      if (on_demand && s.ok()) {
        if (auto loaded = Get(NameScope::One(key.repository), key.name, "", /*count_use=*/false);
            loaded.ok()) {
          (*loaded)->stats->OnDemandLoad();
        }
      }
      std::lock_guard<std::mutex> lock(mu_);
      ModelEntry& entry = models_[key];
      if (entry.pending_load == pending) entry.pending_load.reset();
      entry.after.push_back([waiters = std::move(pending->waiters), s]() mutable {
        for (auto& w : waiters) w(s);
      });
    });
  }

  // Requires mu_ not held. The folder of `key`: NOT_FOUND when its repository
  // does not hold it, ALREADY_EXISTS (naming them) when another repository
  // of its namespace holds it too.
  StatusOr<std::filesystem::path> FindModelDir(const ModelKey& key) const {
    const Repo* repo = nullptr;
    for (const Repo& r : repos_) {
      if (r.key == key.repository) repo = &r;
    }
    std::error_code ec;
    if (repo == nullptr || !std::filesystem::is_directory(repo->path / key.name, ec)) {
      return NotInAnyRepository(key.name);
    }
    std::vector<std::filesystem::path> found = {repo->path / key.name};
    const std::string space = NamespaceOf(repo->key);
    for (const Repo& other : repos_) {
      if (&other == repo || other.key == repo->key || NamespaceOf(other.key) != space) continue;
      if (std::filesystem::is_directory(other.path / key.name, ec)) {
        found.push_back(other.path / key.name);
      }
    }
    if (found.size() > 1) return AmbiguousModel(key.name, found);
    return found.front();
  }

  // The load operation: scans the model's folder and brings every version
  // its policy selects to READY; versions no longer selected are unloaded
  // once the selected ones are READY. Runs on a loader thread.
  Status LoadModel(const ModelKey& key) {
    const std::string& name = key.name;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_)
        return Unavailable("model '" + name + "' was not loaded: the server is stopping");
    }
    auto dir = FindModelDir(key);
    if (!dir.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      ModelEntry& entry = models_[key];
      const bool serving = std::any_of(entry.versions.begin(), entry.versions.end(),
                                       [](const auto& v) { return v.second.servable != nullptr; });
      if (!serving) entry.reason = dir.status().message();
      return dir.status().code() == StatusCode::kNotFound && serving
                 ? NotFound(dir.status().message() + "; its loaded versions keep serving")
                 : dir.status();
    }
    ModelSource source = ScanModel(*dir);
    for (const auto& w : source.warnings) spdlog::warn("{}", w);
    uint64_t override_hash = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ModelEntry& entry = models_[key];
      entry.scanned_config = source.config_fingerprint;
      entry.scanned_versions = source.version_fingerprints;
      entry.on_disk = true;
      if (entry.override_config) {
        // An override without an mmserve block keeps the repository's: a
        // load override cannot drop what the operator set there (isolation,
        // limits, footprint, pinning, tenant, weight).
        inference::MmserveOptions kept = source.config.mmserve();
        const bool keep = source.config.has_mmserve() && !entry.override_config->has_mmserve();
        source.config = *entry.override_config;
        if (keep) *source.config.mutable_mmserve() = std::move(kept);
        source.has_config = true;
        source.status = ValidateModelConfig(source.config);
        // What the copy loaded from: the override, and the block it kept.
        override_hash =
            keep ? ((entry.override_hash * 1099511628211ULL) ^ source.config_fingerprint) | 1
                 : entry.override_hash;
      }
    }
    // The server's caps apply to config.pbtxt and overrides alike (a config
    // over one is listed UNAVAILABLE with the reason).
    if (source.status.ok()) source.status = CheckServerLimits(source.config, options_.limits);
    const uint64_t config_fp = override_hash ? override_hash : source.config_fingerprint;
    Backend* backend = nullptr;
    std::string platform;
    std::vector<int64_t> selected;
    Status model_error;
    if (!source.status.ok()) {
      model_error = source.status;
    } else {
      auto resolved = options_.backends->Resolve(source);
      selected = SelectVersions(source.config.version_policy(), source.versions);
      if (!resolved.ok()) {
        model_error = resolved.status();
      } else if (UsesProcess(source.config) && options_.process_backend == nullptr) {
        model_error = InvalidArgument(
            "mmserve.isolation PROCESS is not available in this server (no worker command)");
      } else if (selected.size() > static_cast<size_t>(ConfigBounds::kMaxVersions)) {
        model_error =
            InvalidArgument("the version policy selects " + std::to_string(selected.size()) +
                            " versions; expected at most " +
                            std::to_string(ConfigBounds::kMaxVersions) + " served at once");
      } else if (selected.empty()) {
        model_error = NotFound(source.versions.empty()
                                   ? "no version folder (a positive integer such as 1/) in " +
                                         source.dir.string()
                                   : "the version policy selects none of the versions on disk");
      } else {
        platform = resolved->platform;
        backend = UsesProcess(source.config) ? options_.process_backend : resolved->backend;
      }
    }
    if (!model_error.ok()) {
      spdlog::error("model '{}' cannot load: {}", name, model_error.message());
      std::lock_guard<std::mutex> lock(mu_);
      ModelEntry& entry = models_[key];
      entry.reason = model_error.message();
      entry.failed = true;
      for (auto& [v, slot] : entry.versions) {
        if (!slot.servable) slot.reason = model_error.message();
      }
      return model_error.WithContext("model '" + name + "'");
    }

    Status first_error;
    for (auto v = selected.rbegin(); v != selected.rend(); ++v) {  // newest first
      const uint64_t files =
          source.version_fingerprints.count(*v) ? source.version_fingerprints.at(*v) : 0;
      {
        std::lock_guard<std::mutex> lock(mu_);
        ModelEntry& entry = models_[key];
        entry.reason.clear();
        VersionSlot& slot = entry.versions[*v];
        if (slot.servable && slot.files == files && slot.config == config_fp) continue;
        if (!slot.servable) {
          slot.state = ModelState::kLoading;
          slot.reason.clear();
        }
      }
      const auto load_start = std::chrono::steady_clock::now();
      auto loaded = LoadVersion(key, source, *v, backend, platform);
      if (loaded.ok()) {
        (*loaded)->stats->LoadSucceeded(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                            std::chrono::steady_clock::now() - load_start)
                                            .count());
      } else {
        stats_->For(name, *v, "", 0, key.repository)->LoadFailed();
      }
      std::shared_ptr<ServableModel> old;
      {
        std::lock_guard<std::mutex> lock(mu_);
        ModelEntry& entry = models_[key];
        VersionSlot& slot = entry.versions[*v];
        if (loaded.ok()) {
          old = std::move(slot.servable);
          slot.servable = std::move(*loaded);
          slot.state = ModelState::kReady;
          slot.reason.clear();
          slot.files = files;
          slot.config = config_fp;
          PublishLocked();
          spdlog::info("model '{}' version {} is READY ({} footprint; fair share of tenant '{}')",
                       name, *v, FormatBytes(slot.servable->footprint_bytes),
                       slot.servable->scheduler->fair_share_tenant());
        } else {
          spdlog::error("model '{}' version {} failed to load: {}", name, *v,
                        loaded.status().message());
          if (loaded.status().code() != StatusCode::kResourceExhausted) entry.failed = true;
          if (slot.servable) {
            slot.reason =
                "a reload failed, the previous copy keeps serving: " + loaded.status().message();
          } else {
            slot.state = ModelState::kUnavailable;
            slot.reason = loaded.status().message();
          }
          if (first_error.ok()) first_error = loaded.status();
        }
      }
      if (old) Retire(key, *v, std::move(old), /*unload=*/false, nullptr);
    }

    // Versions the policy no longer selects leave once every selected one is READY.
    std::vector<std::pair<int64_t, std::shared_ptr<ServableModel>>> leaving;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ModelEntry& entry = models_[key];
      if (first_error.ok()) {
        entry.failed = false;
        for (auto& [v, slot] : entry.versions) {
          if (std::find(selected.begin(), selected.end(), v) != selected.end()) continue;
          if (slot.servable) {
            slot.state = ModelState::kUnloading;
            slot.reason = "no longer selected by the version policy";
            leaving.emplace_back(v, std::move(slot.servable));
          } else if (slot.state != ModelState::kUnloading) {
            slot.state = ModelState::kUnavailable;
            slot.reason = "no longer selected by the version policy";
          }
        }
        if (!leaving.empty()) PublishLocked();
      }
    }
    for (auto& [v, servable] : leaving) Retire(key, v, std::move(servable), true, nullptr);
    return first_error.ok() ? OkStatus() : first_error.WithContext("model '" + name + "'");
  }

  // Loads one version: reserves its memory (evicting if need be), loads it
  // through the backend, warms every instance up, measures its footprint.
  bool UsesProcess(const inference::ModelConfig& config) const {
    const auto isolation = config.mmserve().isolation();
    return isolation == inference::MmserveOptions::PROCESS ||
           (isolation == inference::MmserveOptions::DEFAULT_ISOLATION &&
            options_.default_process_isolation);
  }

  StatusOr<std::shared_ptr<ServableModel>> LoadVersion(const ModelKey& key,
                                                       const ModelSource& source, int64_t version,
                                                       Backend* backend,
                                                       const std::string& platform) {
    const std::string label = "model '" + source.name + "' version " + std::to_string(version);
    const uint64_t declared = source.config.mmserve().memory_footprint_bytes();
    const auto version_dir = source.dir / std::to_string(version);
    // A bad drift baseline fails the load before anything is loaded.
    std::shared_ptr<DriftMonitor> drift;
    if (options_.drift) {
      auto monitor = LoadDriftMonitor(source.dir, label);
      if (!monitor.ok()) return monitor.status();
      drift = std::move(*monitor);
    }
    // Before loading: what it took last time (a model too big for the budget
    // is then refused before it is loaded again), else its size on disk.
    uint64_t measured_before = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = models_.find(key);
      if (it != models_.end()) {
        auto f = it->second.footprints.find(version);
        if (f != it->second.footprints.end()) measured_before = f->second;
      }
    }
    const uint64_t estimate =
        declared ? declared : (measured_before ? measured_before : DiskBytes(version_dir));
    const ModelOwner owner = options_.owner_of ? options_.owner_of(key.repository) : ModelOwner{};
    MM_RETURN_IF_ERROR(Reserve(key, label, estimate, owner));

    // The footprint is the memory growth across the load when it can be told
    // apart: no other load overlapped. Otherwise the estimate stands.
    // (Backends pay their runtime's one-time set-up when they are created.)
    auto probe = options_.memory_probe ? options_.memory_probe : DefaultMemoryProbe;
    uint64_t events_at_start;
    bool alone;
    {
      std::lock_guard<std::mutex> lock(mu_);
      alone = active_loads_ == 0;
      ++active_loads_;
      events_at_start = ++load_events_;
    }
    const uint64_t before = declared ? 0 : probe();
    LoadSpec spec;
    spec.model_name = source.name;
    spec.version = version;
    spec.model_dir = source.dir;
    spec.version_dir = version_dir;
    spec.config = source.config;
    spec.has_config = source.has_config;
    spec.platform = platform;
    // Health reports name the servable they concern, once it exists.
    auto target = std::make_shared<std::atomic<const ServableModel*>>(nullptr);
    spec.on_health = [relay = relay_, key, version, target](const Status& health) {
      std::lock_guard<std::mutex> lock(relay->mu);
      if (relay->impl) relay->impl->OnHealth(key, version, target->load(), health);
    };
    auto loaded = backend->Load(spec);
    Status status = loaded.ok() ? OkStatus() : loaded.status();
    if (status.ok()) {
      for (auto& instance : (*loaded)->instances) {
        status = RunWarmup((*loaded)->config, source.dir, *instance, &cancel_);
        if (!status.ok()) break;
      }
    }
    const uint64_t after = declared ? 0 : probe();
    {
      std::lock_guard<std::mutex> lock(mu_);
      --active_loads_;
      alone = alone && load_events_ == events_at_start;
      ++load_events_;
      UnreserveLocked(owner.tenant, key, estimate);
    }
    if (!status.ok()) return status;

    auto servable = std::make_shared<ServableModel>();
    servable->name = source.name;
    servable->repository = key.repository;
    servable->owner = owner;
    servable->version = version;
    servable->version_string = std::to_string(version);
    servable->config = std::move((*loaded)->config);
    servable->pinned = servable->config.mmserve().pinned();
    const uint64_t external = (*loaded)->external_bytes;
    servable->footprint_bytes = declared ? declared
                                : external
                                    ? external
                                    : (alone ? (after > before ? after - before : 0) : estimate);
    {
      std::lock_guard<std::mutex> lock(mu_);
      models_[key].footprints[version] = servable->footprint_bytes;
    }
    servable->last_used_ns.store(NowNs(), std::memory_order_relaxed);
    auto scheduler_config = ModelSchedulerConfig::FromModelConfig(servable->config, source.name);
    if (!owner.tenant.empty()) scheduler_config.tenant = owner.tenant;
    servable->stats = stats_->For(
        source.name, version,
        scheduler_config.tenant.empty() ? std::string(kSharedTenant) : scheduler_config.tenant,
        servable->config.max_batch_size(), key.repository);
    scheduler_config.stats = servable->stats;
    scheduler_config.inline_safe = (*loaded)->inline_safe;
    servable->drift = std::move(drift);
    auto scheduler = ModelScheduler::Create(std::move((*loaded)->instances), options_.slots,
                                            options_.scheduler, std::move(scheduler_config));
    if (!scheduler.ok()) return scheduler.status();
    servable->scheduler = std::move(*scheduler);
    target->store(servable.get());
    // Account for what it really takes; over the budget, make room or give up.
    if (Status s = Reserve(key, label, servable->footprint_bytes, owner); !s.ok()) {
      servable.reset();
      ReleaseFreeMemory();
      return s;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      UnreserveLocked(owner.tenant, key, servable->footprint_bytes);
      loaded_bytes_ += servable->footprint_bytes;
    }
    return servable;
  }

  // The drift monitor of a model whose folder has a baseline; null without one.
  StatusOr<std::shared_ptr<DriftMonitor>> LoadDriftMonitor(const std::filesystem::path& dir,
                                                           const std::string& label) const {
    const auto path = dir / kDriftBaselineFile;
    std::error_code ec;
    // (A dangling symlink is there too, and refused by the read.)
    if (!std::filesystem::exists(std::filesystem::symlink_status(path, ec))) {
      return std::shared_ptr<DriftMonitor>();
    }
    auto text = ReadRepositoryFile(path, RepositoryFileKind::kDriftBaseline);
    if (!text.ok()) return text.status().WithContext(label);
    auto baseline = DriftBaseline::Parse(*text, path.string());
    if (!baseline.ok()) return baseline.status().WithContext(label);
    auto monitor = DriftMonitor::Create(std::move(*baseline), options_.drift_options);
    if (!monitor.ok()) return monitor.status().WithContext(label);
    spdlog::info("{}: drift detection against {} (1 request in {} sampled, alert above PSI {})",
                 label, path.string(), options_.drift_options.sample_every,
                 options_.drift_options.threshold);
    return std::shared_ptr<DriftMonitor>(std::move(*monitor));
  }

  // Requires mu_. Halves every use count once they add up to 128 per known
  // model, so that what was popular long ago fades.
  void AgeUsesLocked() {
    uint64_t total = 0;
    for (const auto& [name, entry] : models_) {
      total += entry.past_uses;
      for (const auto& [v, slot] : entry.versions) {
        if (slot.servable) total += slot.servable->uses.load(std::memory_order_relaxed);
      }
    }
    if (total <= 128 * std::max<uint64_t>(models_.size(), 1)) return;
    for (auto& [name, entry] : models_) {
      entry.past_uses /= 2;
      for (auto& [v, slot] : entry.versions) {
        if (slot.servable) {
          slot.servable->uses.store(slot.servable->uses.load(std::memory_order_relaxed) / 2,
                                    std::memory_order_relaxed);
        }
      }
    }
  }

  // Makes room for `bytes` more of model `loading` (of `owner`): within the
  // owner's model quotas, then under the budget, by evicting idle, unpinned
  // READY versions of other models as Options::owner_of describes; reserves
  // the bytes. RESOURCE_EXHAUSTED, naming the limit, when they cannot fit;
  // then nothing is evicted.
  Status Reserve(const ModelKey& loading, const std::string& label, uint64_t bytes,
                 const ModelOwner& owner) {
    const uint64_t budget = options_.memory_budget_bytes;
    const std::string& tenant = owner.tenant;
    const bool quotas = !tenant.empty() && (owner.max_loaded_models > 0 || owner.memory_bytes > 0);
    std::vector<std::pair<ModelKey, int64_t>> evicted;
    std::vector<std::shared_ptr<ServableModel>> drop;
    Status result;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (budget == 0 && !quotas) {
        ReserveLocked(tenant, loading, bytes);
        return OkStatus();
      }
      AgeUsesLocked();
      struct Candidate {
        long double uses_per_byte;
        int64_t last_used;
        const ModelKey* key;
        int64_t version;
        uint64_t bytes;
        bool own;                // the loading tenant's (or, for nobody's load, nobody's)
        bool shielded;           // another tenant's, which has a memory share
        const std::string* why;  // chosen for eviction: the reason it will give (else null)
      };
      std::vector<Candidate> idle;
      uint64_t pinned = 0, busy = 0;
      // The owner's models other than `loading` (with how many of their
      // versions are loaded) and the memory it holds, loads under way included.
      std::map<ModelKey, int, ModelKeyLess> tenant_models;
      uint64_t tenant_bytes = 0;
      for (const auto& [key, entry] : models_) {
        for (const auto& [v, slot] : entry.versions) {
          if (!slot.servable) continue;
          const auto& s = slot.servable;
          const bool own = !tenant.empty() && s->owner.tenant == tenant;
          if (own) {
            tenant_bytes += s->footprint_bytes;
            if (key != loading) ++tenant_models[key];
          }
          if (s->pinned) {
            pinned += s->footprint_bytes;
          } else if (key == loading || entry.busy || s->scheduler->pending() > 0) {
            busy += s->footprint_bytes;
          } else {
            const uint64_t uses = entry.past_uses + s->uses.load(std::memory_order_relaxed);
            idle.push_back({static_cast<long double>(uses) /
                                static_cast<long double>(std::max<uint64_t>(s->footprint_bytes, 1)),
                            s->last_used_ns.load(std::memory_order_relaxed), &key, v,
                            s->footprint_bytes, own || (tenant.empty() && s->owner.tenant.empty()),
                            !own && !s->owner.tenant.empty() && s->owner.memory_bytes > 0,
                            nullptr});
          }
        }
      }
      if (!tenant.empty()) {
        auto [first, last] = tenant_reservations_.equal_range(tenant);
        for (auto it = first; it != last; ++it) {
          tenant_bytes += it->second.bytes;
          if (it->second.model != loading) tenant_models.try_emplace(it->second.model, 1);
        }
      }
      const bool lfu = options_.eviction == EvictionPolicy::kLfu;
      std::sort(idle.begin(), idle.end(), [lfu](const Candidate& a, const Candidate& b) {
        if (lfu && a.uses_per_byte != b.uses_per_byte) return a.uses_per_byte < b.uses_per_byte;
        return a.last_used < b.last_used;
      });
      // Plan first (nothing changes unless the whole load fits), then evict.
      uint64_t used = loaded_bytes_ + reserved_bytes_;
      const std::string quota_of = "tenant '" + tenant + "'";
      const std::string count_reason = "evicted to fit the quota max_loaded_models (" +
                                       std::to_string(owner.max_loaded_models) + ") of " + quota_of;
      const std::string memory_reason = "evicted to fit the quota memory_bytes (" +
                                        FormatBytes(owner.memory_bytes) + ") of " + quota_of;
      const std::string budget_reason =
          lfu ? "evicted to fit the memory budget (least used per byte)"
              : "evicted to fit the memory budget (least recently used)";
      auto choose = [&](Candidate& c, const std::string* why) {
        c.why = why;
        used -= c.bytes;
        if (!c.own || tenant.empty()) return;
        tenant_bytes -= c.bytes;
        if (auto it = tenant_models.find(*c.key); it != tenant_models.end() && --it->second == 0) {
          tenant_models.erase(it);
        }
      };
      // 1. The owner's own quotas, from its own idle models.
      if (quotas && owner.max_loaded_models > 0) {
        for (Candidate& c : idle) {
          if (tenant_models.size() + 1 <= owner.max_loaded_models) break;
          if (c.own && c.why == nullptr) choose(c, &count_reason);
        }
        if (tenant_models.size() + 1 > owner.max_loaded_models) {
          result = ResourceExhausted("cannot load " + label + ": " + quota_of + " has " +
                                     std::to_string(tenant_models.size()) +
                                     " models loaded or loading, its quota max_loaded_models is " +
                                     std::to_string(owner.max_loaded_models) +
                                     ", and none of them is idle to evict");
        }
      }
      if (result.ok() && quotas && owner.memory_bytes > 0) {
        const uint64_t held = tenant_bytes;
        for (Candidate& c : idle) {
          if (tenant_bytes + bytes <= owner.memory_bytes) break;
          if (c.own && c.why == nullptr) choose(c, &memory_reason);
        }
        if (tenant_bytes + bytes > owner.memory_bytes) {
          result = ResourceExhausted(
              "cannot load " + label + ": it needs " + FormatBytes(bytes) + "; " + quota_of +
              " holds " + FormatBytes(held) + " of its quota memory_bytes (" +
              FormatBytes(owner.memory_bytes) + "), and evicting its idle models would leave " +
              FormatBytes(owner.memory_bytes - std::min(owner.memory_bytes, tenant_bytes)));
        }
      }
      // 2. The budget: never another tenant's model under a memory share; a
      // tenant with a share takes from those without one before itself.
      if (result.ok() && budget > 0) {
        const bool own_first = owner.memory_bytes == 0 || tenant.empty();
        for (int pass = 0; pass < 2; ++pass) {
          const bool own_pass = (pass == 0) == own_first;
          for (Candidate& c : idle) {
            if (used + bytes <= budget) break;
            if (c.why == nullptr && !c.shielded && c.own == own_pass) choose(c, &budget_reason);
          }
        }
        if (used + bytes > budget) {
          uint64_t shielded = 0;
          for (const Candidate& c : idle) shielded += c.shielded ? c.bytes : 0;
          std::string held = FormatBytes(pinned) + " pinned, " + FormatBytes(busy) +
                             " in use by requests or loading";
          if (shielded > 0) {
            held += ", " + FormatBytes(shielded) + " idle in other tenants' memory shares";
          }
          const uint64_t now_used = loaded_bytes_ + reserved_bytes_;
          result = ResourceExhausted("cannot load " + label + ": it needs " + FormatBytes(bytes) +
                                     " but the memory budget of " + FormatBytes(budget) + " has " +
                                     FormatBytes(now_used < budget ? budget - now_used : 0) +
                                     " free: " + held + ", and no idle model left to evict");
        }
      }
      if (result.ok()) {
        for (const Candidate& c : idle) {
          if (c.why == nullptr) continue;
          ModelEntry& entry = models_[*c.key];
          VersionSlot& slot = entry.versions[c.version];
          loaded_bytes_ -= slot.servable->footprint_bytes;
          entry.past_uses += slot.servable->uses.load(std::memory_order_relaxed);
          drop.push_back(std::move(slot.servable));
          slot.state = ModelState::kUnavailable;
          slot.reason = *c.why;
          evicted.emplace_back(*c.key, c.version);
        }
        if (!evicted.empty()) PublishLocked();
        ReserveLocked(tenant, loading, bytes);
      }
    }
    for (const auto& [key, v] : evicted) {
      spdlog::info("model '{}' version {} evicted to fit {}", key.name, v, label);
      if (auto stats = stats_->Find(key.name, v, key.repository)) stats->Evicted();
    }
    // Dropped here, on the loader thread; no malloc_trim: the load that asked
    // for the room is about to reuse that memory.
    drop.clear();
    return result;
  }

  // Require mu_. A reservation of `bytes` for a load of `model` of `tenant`
  // (empty: nobody's), and its end.
  void ReserveLocked(const std::string& tenant, const ModelKey& model, uint64_t bytes) {
    reserved_bytes_ += bytes;
    if (!tenant.empty()) tenant_reservations_.emplace(tenant, TenantReservation{model, bytes});
  }
  void UnreserveLocked(const std::string& tenant, const ModelKey& model, uint64_t bytes) {
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

  // Takes `servable` out of service: waits until its queue drains, then
  // drops it (it is destroyed once the last request holding it lets go).
  // With `unload`, the slot becomes UNAVAILABLE afterwards.
  void Retire(const ModelKey& key, int64_t version, std::shared_ptr<ServableModel> servable,
              bool unload, std::function<void()> done) {
    // No reference of our own to the scheduler: the loader job below must be
    // able to drop the last one.
    ModelScheduler* scheduler = servable->scheduler.get();
    auto holder = std::make_shared<std::shared_ptr<ServableModel>>(std::move(servable));
    scheduler->NotifyWhenIdle([this, key, version, unload, holder, done = std::move(done)] {
      loaders_->Submit(NamespaceOf(key.repository), [this, key, version, unload, holder, done] {
        const uint64_t bytes = (*holder)->footprint_bytes;
        const uint64_t uses = (*holder)->uses.load(std::memory_order_relaxed);
        holder->reset();
        ReleaseFreeMemory();
        {
          std::lock_guard<std::mutex> lock(mu_);
          loaded_bytes_ -= bytes;
          auto it = models_.find(key);
          if (it != models_.end()) it->second.past_uses += uses;
          if (unload && it != models_.end()) {
            auto slot = it->second.versions.find(version);
            if (slot != it->second.versions.end() && !slot->second.servable &&
                slot->second.state == ModelState::kUnloading) {
              slot->second.state = ModelState::kUnavailable;
            }
            MaybeForgetLocked(it);
          }
        }
        spdlog::info("model '{}' version {} {}", key.name, version,
                     unload ? "unloaded" : "replaced copy drained and dropped");
        if (done) done();
      });
    });
  }

  void UnloadAll(const ModelKey& key, const std::string& reason, std::function<void(Status)> done) {
    std::vector<std::pair<int64_t, std::shared_ptr<ServableModel>>> leaving;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ModelEntry& entry = models_[key];
      for (auto& [v, slot] : entry.versions) {
        if (slot.servable) {
          slot.state = ModelState::kUnloading;
          slot.reason = reason;
          leaving.emplace_back(v, std::move(slot.servable));
        } else if (slot.state != ModelState::kUnloading) {
          slot.state = ModelState::kUnavailable;
          slot.reason = reason;
        }
      }
      entry.reason = reason;
      if (!leaving.empty()) PublishLocked();
    }
    if (leaving.empty()) {
      if (done) done(OkStatus());
      return;
    }
    auto remaining = std::make_shared<std::atomic<size_t>>(leaving.size());
    auto shared_done = std::make_shared<std::function<void(Status)>>(std::move(done));
    for (auto& [v, servable] : leaving) {
      Retire(key, v, std::move(servable), true, [remaining, shared_done] {
        if (remaining->fetch_sub(1) == 1 && *shared_done) (*shared_done)(OkStatus());
      });
    }
  }

  // Requires mu_. Rebuilds the snapshot from the slots and publishes it:
  // every known model, with its READY versions.
  void PublishLocked() {
    auto snap = std::make_shared<Snapshot>();
    for (const auto& [key, entry] : models_) {
      Snapshot::Model m;
      m.repository = key.repository;
      for (const auto& [v, slot] : entry.versions) {
        if (slot.state == ModelState::kReady && slot.servable) {
          m.ready.emplace(v, slot.servable);
          m.latest = slot.servable;  // ascending: the last is the newest
        }
      }
      snap->models[key.name].push_back(std::move(m));
    }
    snapshot_.store(std::move(snap), std::memory_order_release);
  }

  // Explicit mode's index: models added on disk appear, models gone from
  // disk that hold nothing disappear.
  void RegisterNewModels() {
    auto scanned = ScanRepositories(options_.repositories);
    if (!scanned.ok()) return;
    std::lock_guard<std::mutex> lock(mu_);
    std::set<ModelKey, ModelKeyLess> seen;
    bool changed = false;
    for (const auto& source : *scanned) {
      ModelKey key{source.name, PathKey(source.dir.parent_path())};
      auto [it, added] = models_.try_emplace(key);
      if (added) {
        it->second.reason = "not loaded";
        changed = true;
      }
      it->second.on_disk = true;
      seen.insert(std::move(key));
    }
    for (auto it = models_.begin(); it != models_.end();) {
      const bool holds = std::any_of(it->second.versions.begin(), it->second.versions.end(),
                                     [](const auto& v) { return v.second.servable != nullptr; });
      if (!seen.count(it->first) && !holds && !it->second.busy && it->second.ops.empty()) {
        it = models_.erase(it);
        changed = true;
      } else {
        ++it;
      }
    }
    if (changed) PublishLocked();
  }

  // ------------------------------------------------------------ poll mode
  void PollLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      poll_cv_.wait_for(lock, options_.poll_interval, [&] { return stopping_; });
      if (stopping_) break;
      lock.unlock();
      Poll();
      lock.lock();
    }
  }

 public:
  void Poll() {
    auto scanned = ScanRepositories(options_.repositories);
    if (!scanned.ok()) {
      spdlog::error("polling the model repositories failed: {}", scanned.status().message());
      return;
    }
    std::vector<ModelKey> load, unload;
    {
      std::lock_guard<std::mutex> lock(mu_);
      std::set<ModelKey, ModelKeyLess> seen;
      for (const auto& source : *scanned) {
        ModelKey key{source.name, PathKey(source.dir.parent_path())};
        auto [it, added] = models_.try_emplace(key);
        ModelEntry& entry = it->second;
        const bool changed = added || !entry.on_disk ||
                             entry.scanned_config != source.config_fingerprint ||
                             entry.scanned_versions != source.version_fingerprints;
        if (changed) {
          entry.on_disk = true;
          entry.failed = false;
          entry.scanned_config = source.config_fingerprint;
          entry.scanned_versions = source.version_fingerprints;
          load.push_back(key);
        }
        seen.insert(std::move(key));
      }
      for (auto& [key, entry] : models_) {
        if (!seen.count(key) && entry.on_disk) {
          entry.on_disk = false;
          unload.push_back(key);
        }
      }
      PublishLocked();
    }
    std::mutex done_mu;
    std::condition_variable done_cv;
    size_t remaining = load.size() + unload.size();
    auto one_done = [&](Status) {
      std::lock_guard<std::mutex> lock(done_mu);
      if (--remaining == 0) done_cv.notify_all();
    };
    for (const auto& key : load) {
      spdlog::info("model '{}' changed on disk: loading", key.name);
      ScheduleLoad(key, one_done);
    }
    for (const auto& key : unload) {
      spdlog::info("model '{}' left the repositories: unloading", key.name);
      Schedule(key, [this, key, one_done] {
        UnloadAll(key, "removed from the model repository", one_done);
      });
    }
    std::unique_lock<std::mutex> lock(done_mu);
    done_cv.wait(lock, [&] { return remaining == 0; });
  }

 private:
  const Options& options_;
  [[maybe_unused]] ModelManager* const owner_;
  const std::vector<Repo> repos_;                   // constant after construction
  const std::unique_ptr<StatsRegistry> own_stats_;  // when options_.stats is null
  StatsRegistry* const stats_;
  std::unique_ptr<LoadQueue> loaders_;
  std::atomic<std::shared_ptr<const Snapshot>> snapshot_;
  const std::shared_ptr<HealthRelay> relay_;
  std::atomic<bool> cancel_{false};  // set by Shutdown: warmups stop

  mutable std::mutex mu_;
  ModelMap models_;              // guarded by mu_
  uint64_t loaded_bytes_ = 0;    // guarded by mu_: footprints held, draining ones too
  uint64_t reserved_bytes_ = 0;  // guarded by mu_: estimates of loads under way
  // The reservations of reserved_bytes_ that belong to a tenant, by tenant.
  struct TenantReservation {
    ModelKey model;
    uint64_t bytes;
  };
  std::multimap<std::string, TenantReservation, std::less<>>
      tenant_reservations_;   // guarded by mu_
  int active_loads_ = 0;      // guarded by mu_
  uint64_t load_events_ = 0;  // guarded by mu_: load starts and ends, for overlap
  bool stopping_ = false;     // guarded by mu_
  std::condition_variable poll_cv_;
  std::mutex poller_mu_;  // taken before mu_
  std::thread poller_;    // guarded by poller_mu_
};

StatusOr<std::unique_ptr<ModelManager>> ModelManager::Create(Options options) {
  if (options.slots == nullptr) return InvalidArgument("ModelManager needs execution slots");
  if (options.backends == nullptr) return InvalidArgument("ModelManager needs a backend registry");
  if (options.repositories.empty()) {
    return InvalidArgument("no model repository given: pass --model-repository PATH");
  }
  for (const auto& repo : options.repositories) {
    std::error_code ec;
    if (!std::filesystem::is_directory(repo, ec)) {
      return InvalidArgument("model repository '" + repo.string() +
                             "' does not exist or is not a directory");
    }
  }
  if (options.mode != ModelControlMode::kExplicit && !options.startup_models.empty()) {
    return InvalidArgument("--load-model needs --model-control-mode explicit");
  }
  return std::unique_ptr<ModelManager>(new ModelManager(std::move(options)));
}

ModelManager::ModelManager(Options options)
    : options_(std::move(options)), impl_(std::make_unique<Impl>(options_, this)) {}

ModelManager::~ModelManager() = default;

bool ModelManager::Shutdown(std::optional<std::chrono::steady_clock::time_point> deadline) {
  return impl_->Shutdown(deadline);
}

void ModelManager::Start() { impl_->Start(); }

StatusOr<ModelHandle> ModelManager::Get(const NameScope& scope, std::string_view name,
                                        std::string_view version) const {
  return impl_->Get(scope, name, version, /*count_use=*/false);
}

StatusOr<ModelHandle> ModelManager::Acquire(const NameScope& scope, std::string_view name,
                                            std::string_view version) const {
  return impl_->Get(scope, name, version, /*count_use=*/true);
}

bool ModelManager::GetAfterLoad(const NameScope& scope, std::string_view name,
                                std::string_view version,
                                std::function<void(StatusOr<ModelHandle>)> done) {
  return impl_->GetAfterLoad(scope, name, version, std::move(done));
}

void ModelManager::Load(const NameScope& scope, std::string_view name,
                        std::optional<std::string> config_override,
                        std::function<void(Status)> done) {
  impl_->Load(scope, name, std::move(config_override), std::move(done));
}

void ModelManager::Unload(const NameScope& scope, std::string_view name,
                          std::function<void(Status)> done) {
  impl_->Unload(scope, name, std::move(done));
}

std::vector<ModelVersionStatus> ModelManager::Index(bool rescan) { return impl_->Index(rescan); }

StatsRegistry& ModelManager::stats() const { return impl_->stats(); }

std::vector<ModelHandle> ModelManager::Ready() const { return impl_->Ready(); }

void ModelManager::Poll() { impl_->Poll(); }

StatusOr<std::vector<ModelVersionStatus>> ModelManager::Versions(const NameScope& scope,
                                                                 std::string_view name) const {
  return impl_->Versions(scope, name);
}

StatusOr<std::string> ModelManager::RepositoryOf(const NameScope& scope,
                                                 std::string_view name) const {
  return impl_->RepositoryOf(scope, name);
}

Status UnknownModel(std::string_view name) {
  return NotFound("unknown model '" + std::string(name) + "'");
}

Status NotInAnyRepository(std::string_view name) {
  return NotFound("model '" + std::string(name) + "' is not in any model repository");
}

ModelManager::MemoryUse ModelManager::memory() const { return impl_->memory(); }

}  // namespace mm
