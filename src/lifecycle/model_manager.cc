#include "lifecycle/model_manager.h"

// The facade: ModelManager's API over the lifecycle's parts (version_table,
// model_operations over load_queue, memory_account with memory_planner,
// model_loader, poller, repository_set). The control calls here resolve
// names and queue operations; the parts do the work.
#include <algorithm>
#include <charconv>
#include <map>
#include <optional>

#include <spdlog/spdlog.h>

#include "lifecycle/lifecycle_flags.h"
#include "lifecycle/load_queue.h"
#include "lifecycle/memory_account.h"
#include "lifecycle/model_loader.h"
#include "lifecycle/model_operations.h"
#include "lifecycle/poller.h"
#include "lifecycle/repository_set.h"
#include "lifecycle/version_table.h"
#include "repository/model_config.h"

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

uint64_t HashString(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h | 1;  // never 0: 0 means "no override"
}

}  // namespace

// The parts, in the order they are made (each may use those before it) and
// destroyed in reverse: the table outlives everything that touches it, and
// the loader threads outlive the table (dropping a copy may queue work).
class ModelManager::Impl {
 public:
  explicit Impl(const Options& options)
      : options_(options),
        own_stats_(options.stats == nullptr ? std::make_unique<StatsRegistry>() : nullptr),
        stats_(options.stats != nullptr ? options.stats : own_stats_.get()),
        loaders_(LoadQueue::Options{
            .per_tenant = std::max<size_t>(1, options.load_threads),
            .max_threads = std::max<size_t>(options.max_load_threads, options.load_threads),
            .nice = options.loader_nice}),
        repositories_(options.repositories, options.owner_of),
        operations_(table_, loaders_,
                    [this](std::string_view r) { return repositories_.NamespaceOf(r); }),
        memory_(table_, *stats_, options.memory_budget_bytes, options.eviction),
        loader_(options, table_, repositories_, memory_, loaders_, *stats_,
                [this](const ModelKey& ensemble, std::string_view name) {
                  return ResolveInNamespace(ensemble, name);
                }),
        poller_(
            options, table_, repositories_,
            [this](const ModelKey& key, std::function<void(Status)> done) {
              ScheduleLoad(key, std::move(done));
            },
            [this](const ModelKey& key, const std::string& reason,
                   std::function<void(Status)> done) {
              operations_.Schedule(key, [this, key, reason, done = std::move(done)]() mutable {
                loader_.Unload(key, reason, std::move(done));
              });
            }) {}

  ~Impl() {
    Shutdown(std::nullopt);
    loaders_.Shutdown();
  }

  bool Shutdown(std::optional<std::chrono::steady_clock::time_point> deadline) {
    table_.Stop();
    loader_.Cancel();  // warmups stop at their next execution
    poller_.Wake();
    // Queued loads fail fast now (requests waiting for them get the error);
    // the loader threads stay, for the copies that drain after this.
    if (!loaders_.WaitIdle(deadline)) {
      spdlog::warn("model loads still running at the shutdown deadline are abandoned");
      return false;
    }
    poller_.Stop();  // its poll's loads have answered
    return true;
  }

  // ------------------------------------------------------------- names
  // The model `name` names in `scope` for a load: the scope's repositories
  // holding `name`, and its known models that still hold a copy or have an
  // operation under way though their folder is gone. NotInAnyRepository when
  // none, AmbiguousModel when several.
  struct Located {
    ModelKey key;
    std::string place;
  };
  StatusOr<Located> ResolveForLoad(const NameScope& scope, std::string_view name) const {
    std::vector<Located> found;
    std::vector<Status> unreadable;
    for (const ModelSource& source : repositories_.Locate(scope, name, &unreadable)) {
      found.push_back({{std::string(name), source.repository}, PlaceOf(source)});
    }
    {
      MutexLock lock(table_.mu());
      const auto& models = table_.models();
      for (auto it = models.lower_bound(ModelKeyView{name, {}});
           it != models.end() && it->first.name == name; ++it) {
        if (!scope.Contains(it->first.repository) || !VersionTable::Holds(it->second)) continue;
        if (std::any_of(found.begin(), found.end(),
                        [&](const Located& l) { return l.key == it->first; })) {
          continue;
        }
        found.push_back({it->first, VersionTable::PlaceOf(it->first, it->second)});
      }
    }
    if (found.empty() && !unreadable.empty()) {
      // It may be in a repository that cannot be read now: say so, not "unknown".
      std::string why;
      for (const Status& s : unreadable) why += (why.empty() ? "" : "; ") + s.message();
      return Unavailable("model '" + std::string(name) +
                         "' is in no model repository that could be read: " + why);
    }
    if (found.empty()) return NotInAnyRepository(name);
    if (found.size() > 1) {
      std::vector<std::string> places;
      for (const Located& l : found) places.push_back(l.place);
      return AmbiguousModel(name, places);
    }
    return std::move(found.front());
  }

  // The entry of a located model, made if new.
  ModelEntry& EntryLocked(const Located& located) MM_REQUIRES(table_.mu()) {
    ModelEntry& entry = table_.Entry(located.key);
    if (entry.place.empty()) entry.place = located.place;
    return entry;
  }

  // The model `name` names for a load in the namespace (tenant) of the
  // repository holding `model`: an ensemble's step model.
  StatusOr<ModelKey> ResolveInNamespace(const ModelKey& model, std::string_view name) const {
    MM_RETURN_IF_ERROR(ValidateModelName(name));
    const std::string owner = repositories_.NamespaceOf(model.repository);
    std::vector<std::string> keys;
    for (const auto& r : repositories_.all()) {
      if (repositories_.NamespaceOf(r->key()) == owner) keys.push_back(r->key());
    }
    MM_ASSIGN_OR_RETURN(Located located, ResolveForLoad(NameScope::Of(keys), name));
    return std::move(located.key);
  }

  // An ensemble's load that waits for its composing models (ModelLoader's
  // Composing, across the rounds of one load). Bounded rounds: a composing
  // model evicted or unloaded between its load and the ensemble's, again and
  // again, fails the ensemble instead of looping.
  static constexpr int kComposingRounds = 3;
  struct ComposingRounds {
    ModelLoader::Composing composing;
    int rounds = 0;
    std::mutex mu;  // composing.failures, written by the composing loads' callbacks
  };

  // Whether `from` waits, through ensembles' deferred loads, for `to`.
  bool WaitsFor(const ModelKey& from, const ModelKey& to) const MM_REQUIRES(deferred_mu_) {
    std::vector<ModelKey> stack{from};
    std::vector<ModelKey> seen;
    while (!stack.empty()) {
      ModelKey k = std::move(stack.back());
      stack.pop_back();
      if (k == to) return true;
      if (std::find(seen.begin(), seen.end(), k) != seen.end()) continue;
      seen.push_back(k);
      auto it = deferred_.find(k);
      if (it != deferred_.end()) stack.insert(stack.end(), it->second.begin(), it->second.end());
    }
    return false;
  }

  // Starts a load of `key`, or joins the one queued or running. A load a
  // request started (`on_demand`) is counted in its newest version's
  // statistics once it succeeds (one that joins counts nothing). An
  // ensemble's composing models are loaded first, without holding a thread
  // (ModelOperations' contract 3).
  void ScheduleLoad(const ModelKey& key, std::function<void(Status)> done, bool on_demand = false) {
    auto state = std::make_shared<ComposingRounds>();
    operations_.ScheduleLoad(
        key, std::move(done), [this, key, on_demand, state](ModelOperations::Deferral* wait) {
          state->composing.may_wait = state->rounds < kComposingRounds;
          Status s = loader_.Load(key, &state->composing);
          if (s.ok() && !state->composing.load_first.empty()) {
            std::vector<ModelKey> first = std::move(state->composing.load_first);
            state->composing.load_first.clear();
            {
              MutexLock lock(deferred_mu_);
              for (const ModelKey& dep : first) {
                if (WaitsFor(dep, key)) {
                  return loader_.Fail(
                      key, InvalidArgument("ensemble '" + key.name + "' runs model '" + dep.name +
                                           "', an ensemble that waits for '" + key.name +
                                           "' to load: the ensembles form a cycle"));
                }
              }
              deferred_[key] = first;
            }
            ++state->rounds;
            *wait = [this, key, state, first](std::function<void()> resume) {
              auto left = std::make_shared<std::atomic<size_t>>(first.size());
              for (const ModelKey& dep : first) {
                ScheduleLoad(dep, [this, key, state, dep, left, resume](Status loaded) {
                  if (!loaded.ok()) {
                    std::lock_guard lock(state->mu);
                    state->composing.failures[dep] = loaded;
                  }
                  if (left->fetch_sub(1) != 1) return;
                  {
                    MutexLock lock(deferred_mu_);
                    deferred_.erase(key);
                  }
                  resume();
                });
              }
            };
            return OkStatus();
          }
          if (on_demand && s.ok()) {
            if (auto loaded = table_.Get(NameScope::One(key.repository), key.name, "",
                                         /*count_use=*/false);
                loaded.ok()) {
              (*loaded)->stats->OnDemandLoad();
            }
          }
          return s;
        });
  }

  // ------------------------------------------------------------ control API
  bool GetAfterLoad(const NameScope& scope, std::string_view name, std::string_view version,
                    std::function<void(StatusOr<ModelHandle>)> done) {
    if (options_.mode != ModelControlMode::kExplicit || !options_.load_on_demand) return false;
    if (!ValidateModelName(name).ok()) return false;
    std::optional<Located> located;
    bool loaded_since = false;
    {
      MutexLock lock(table_.mu());
      if (table_.stopping()) return false;
      auto known = table_.ResolveKnown(scope, name);
      if (known.ok()) {
        const ModelEntry& entry = (*known)->second;
        located = Located{(*known)->first, entry.place};
        if (entry.failed && !entry.pending_load) return false;
        // A model that serves some version is loaded: a request for a
        // version it does not have gets Get's error, not a rescan.
        const bool serving = std::any_of(entry.versions.begin(), entry.versions.end(),
                                         [](const auto& v) { return v.second.servable; });
        if (serving && !entry.pending_load && version.empty()) {
          // Its load finished after the caller's Acquire failed: answer from
          // the snapshot now, not with the caller's stale error.
          loaded_since = true;
        } else if (serving && !entry.pending_load) {
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
    if (loaded_since) {
      auto got = table_.Get(NameScope::One(located->key.repository), located->key.name, "",
                            /*count_use=*/true);
      if (!got.ok()) return false;  // unloaded again since: the caller's error stands
      done(std::move(got));
      return true;
    }
    if (!located) {
      auto found = ResolveForLoad(scope, name);
      if (!found.ok()) return false;
      located = std::move(*found);
    }
    {
      MutexLock lock(table_.mu());
      ++EntryLocked(*located).past_uses;  // known from now on: UNAVAILABLE until loaded
    }
    ScheduleLoad(
        located->key,
        [this, key = located->key, v = std::string(version), done = std::move(done)](Status s) {
          // (The use was counted above.)
          auto got = table_.Get(NameScope::One(key.repository), key.name, v, /*count_use=*/false);
          if (!got.ok() && !s.ok()) return done(s);
          done(std::move(got));
        },
        /*on_demand=*/true);
    return true;
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
    std::unique_ptr<inference::ModelConfig> override_config;
    if (config_override) {
      auto config = ParseConfigOverride(*config_override, name, options_.limits);
      if (!config.ok()) return done(config.status());
      override_config = std::make_unique<inference::ModelConfig>(std::move(*config));
    }
    auto located = ResolveForLoad(scope, name);
    if (!located.ok()) return done(located.status());
    {
      MutexLock lock(table_.mu());
      ModelEntry& entry = EntryLocked(*located);
      entry.failed = false;
      if (override_config) {
        entry.override_hash = HashString(*config_override);
        entry.override_config = std::move(override_config);
      } else {
        entry.override_hash = 0;
        entry.override_config.reset();
      }
    }
    ScheduleLoad(located->key, std::move(done));
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
      MutexLock lock(table_.mu());
      auto found = table_.ResolveKnown(scope, name);
      if (!found.ok()) return done(found.status());
      key = (*found)->first;
    }
    operations_.Schedule(key, [this, key, done = std::move(done)]() mutable {
      loader_.Unload(key, "unloaded", std::move(done));
    });
  }

  std::vector<ModelVersionStatus> Index(bool rescan) {
    if (rescan && options_.mode == ModelControlMode::kExplicit) poller_.Rescan();
    std::map<std::string, std::string, std::less<>> owners;  // by repository
    for (const auto& r : repositories_.all())
      owners[r->key()] = repositories_.NamespaceOf(r->key());
    return table_.Index([&owners](std::string_view repository) {
      auto owner = owners.find(repository);
      return owner != owners.end() ? owner->second : std::string();
    });
  }

  StatusOr<std::vector<ModelVersionStatus>> Versions(const NameScope& scope,
                                                     std::string_view name) const {
    return table_.Versions(scope, name, [this](std::string_view repository) {
      return repositories_.NamespaceOf(repository);
    });
  }

  StatusOr<std::string> RepositoryOf(const NameScope& scope, std::string_view name) const {
    {
      MutexLock lock(table_.mu());
      auto known = table_.ResolveKnown(scope, name);
      if (known.ok()) return (*known)->first.repository;
      if (known.status().code() != StatusCode::kNotFound) return known.status();
    }
    if (ValidateModelName(name).ok()) {
      auto found = ResolveForLoad(scope, name);
      if (found.ok()) return found->key.repository;
      if (found.status().code() != StatusCode::kNotFound) return found.status();
    }
    return UnknownModel(name);
  }

  const Options& options_;
  const std::unique_ptr<StatsRegistry> own_stats_;  // when options_.stats is null
  StatsRegistry* const stats_;
  LoadQueue loaders_;
  VersionTable table_;
  RepositorySet repositories_;
  ModelOperations operations_;
  MemoryAccount memory_;
  ModelLoader loader_;
  Poller poller_;
  // Ensembles whose loads wait for composing models, and those models (for
  // the cycle check).
  mutable Mutex deferred_mu_;
  std::map<ModelKey, std::vector<ModelKey>, ModelKeyLess> deferred_ MM_GUARDED_BY(deferred_mu_);
};

StatusOr<std::unique_ptr<ModelManager>> ModelManager::Create(Options options) {
  if (options.slots == nullptr) return InvalidArgument("ModelManager needs execution slots");
  if (options.backends == nullptr) return InvalidArgument("ModelManager needs a backend registry");
  if (options.repositories.empty()) {
    return InvalidArgument("no model repository given: pass --model-repository PATH");
  }
  for (size_t i = 0; i < options.repositories.size(); ++i) {
    if (options.repositories[i] == nullptr) {
      return InvalidArgument("model repository " + std::to_string(i) +
                             " is null; expected an opened repository (OpenModelRepository)");
    }
  }
  if (options.mode != ModelControlMode::kExplicit && !options.startup_models.empty()) {
    return InvalidArgument("--load-model needs --model-control-mode explicit");
  }
  if (options.load_on_demand && options.mode != ModelControlMode::kExplicit) {
    return InvalidArgument("--load-on-demand needs --model-control-mode explicit");
  }
  // The flags' bounds (lifecycle_flags.h), for callers that set them directly.
  MM_RETURN_IF_ERROR(
      CheckBounds("--model-load-threads", options.load_threads, kModelLoadThreadsBounds));
  if (options.mode == ModelControlMode::kPoll) {
    MM_RETURN_IF_ERROR(CheckBounds("--repository-poll-secs",
                                   std::chrono::duration<double>(options.poll_interval).count(),
                                   kRepositoryPollSecsBounds));
  }
  // 0: no cap (ServerLimits).
  if (options.limits.max_instances_per_model != 0) {
    MM_RETURN_IF_ERROR(CheckBounds("--max-instances-per-model",
                                   options.limits.max_instances_per_model,
                                   kMaxInstancesPerModelBounds));
  }
  if (options.limits.max_threads_per_model != 0) {
    MM_RETURN_IF_ERROR(CheckBounds("--max-threads-per-model", options.limits.max_threads_per_model,
                                   kMaxThreadsPerModelBounds));
  }
  return std::unique_ptr<ModelManager>(new ModelManager(std::move(options)));
}

ModelManager::ModelManager(Options options)
    : options_(std::move(options)), impl_(std::make_unique<Impl>(options_)) {}

ModelManager::~ModelManager() = default;

bool ModelManager::Shutdown(std::optional<std::chrono::steady_clock::time_point> deadline) {
  return impl_->Shutdown(deadline);
}

Status ModelManager::Start() { return impl_->poller_.Start(); }

StatusOr<ModelHandle> ModelManager::Get(const NameScope& scope, std::string_view name,
                                        std::string_view version) const {
  return impl_->table_.Get(scope, name, version, /*count_use=*/false);
}

StatusOr<ModelHandle> ModelManager::Acquire(const NameScope& scope, std::string_view name,
                                            std::string_view version) const {
  return impl_->table_.Get(scope, name, version, /*count_use=*/true);
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

StatsRegistry& ModelManager::stats() const { return *impl_->stats_; }

std::vector<ModelHandle> ModelManager::Ready() const { return impl_->table_.Ready(); }

void ModelManager::Poll() { impl_->poller_.Poll(); }

StatusOr<std::vector<ModelVersionStatus>> ModelManager::Versions(const NameScope& scope,
                                                                 std::string_view name) const {
  return impl_->Versions(scope, name);
}

StatusOr<std::string> ModelManager::RepositoryOf(const NameScope& scope,
                                                 std::string_view name) const {
  return impl_->RepositoryOf(scope, name);
}

std::vector<ModelManager::NextEviction> ModelManager::NextToEvict(size_t limit,
                                                                  size_t* count) const {
  MemoryAccount::NextEvictions next = impl_->memory_.NextToEvict(limit);
  if (count != nullptr) *count = next.count;
  std::vector<NextEviction> out;
  out.reserve(next.first.size());
  for (MemoryCandidate& c : next.first) {
    out.push_back({std::move(c.model.name), std::move(c.model.repository), c.version, c.bytes,
                   std::move(c.owner.tenant)});
  }
  return out;
}

ModelManager::MemoryUse ModelManager::memory() const {
  const MemoryAccount::Use use = impl_->memory_.Read();
  return {use.budget, use.loaded, use.pinned};
}

Status UnknownModel(std::string_view name) {
  return NotFound("unknown model '" + std::string(name) + "'");
}

Status NotInAnyRepository(std::string_view name) {
  return NotFound("model '" + std::string(name) + "' is not in any model repository");
}

}  // namespace mm
