#include "lifecycle/model_loader.h"

#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "core/memory.h"
#include "lifecycle/warmup.h"
#include "repository/mlflow/mlmodel.h"
#include "repository/model_config.h"
#include "repository/repository_file.h"
#include "scheduler/sequence_batcher.h"

namespace mm {

ModelLoader::ModelLoader(const ModelManager::Options& options, VersionTable& table,
                         RepositorySet& repositories, MemoryAccount& memory, LoadQueue& loaders,
                         StatsRegistry& stats, ResolveFn resolve)
    : options_(options),
      table_(table),
      repositories_(repositories),
      memory_(memory),
      loaders_(loaders),
      stats_(stats),
      resolve_(std::move(resolve)),
      relay_(std::make_shared<HealthRelay>()) {
  MutexLock lock(relay_->mu);
  relay_->table = &table_;
}

ModelLoader::~ModelLoader() {
  MutexLock lock(relay_->mu);
  relay_->table = nullptr;
}

namespace {

// Parameters that choose code the model runs (a Python model's environment:
// its packages, their .pth files; the built-in MLflow loader, which with
// --mlflow-create-env also installs the folder's requirements) are the operator's, in config.pbtxt:
// a load override (the repository API, a client) may repeat them, never change them.
Status CheckOverrideParameters(const inference::ModelConfig& repository,
                               const inference::ModelConfig& override_config) {
  static constexpr std::string_view kGuarded[] = {"EXECUTION_ENV_PATH", kMlflowPyfuncParameter};
  for (std::string_view name : kGuarded) {
    const std::string key(name);
    auto was = repository.parameters().find(key);
    auto now = override_config.parameters().find(key);
    const bool had = was != repository.parameters().end();
    const bool has = now != override_config.parameters().end();
    if (!has || (had && was->second.string_value() == now->second.string_value())) continue;
    return InvalidArgument("a load override cannot set parameter " + key +
                           " (it chooses the code the model runs); set it in the repository's "
                           "config.pbtxt" +
                           (had ? ", which says '" + was->second.string_value() + "'" : ""));
  }
  return OkStatus();
}

}  // namespace

bool ModelLoader::UsesProcess(const inference::ModelConfig& config) const {
  const auto isolation = config.mmserve().isolation();
  return isolation == inference::MmserveOptions::PROCESS ||
         (isolation == inference::MmserveOptions::DEFAULT_ISOLATION &&
          options_.default_process_isolation);
}

StatusOr<ModelLoader::BackendChoice> ModelLoader::BackendFor(const ModelSource& source) const {
  MM_ASSIGN_OR_RETURN(ResolvedBackend resolved, options_.backends->Resolve(source));
  BackendChoice choice;
  choice.platform = resolved.platform;
  const bool process_only = resolved.registration->process_only;
  if (resolved.registration->in_process_only) {
    if (source.config.mmserve().isolation() == inference::MmserveOptions::PROCESS) {
      return InvalidArgument("backend '" + resolved.registration->name +
                             "' runs its models in the server process (they only call other "
                             "models, which have their own isolation); remove mmserve.isolation "
                             "PROCESS");
    }
    BackendChoice choice;
    choice.platform = resolved.platform;
    choice.backend = choice.engine = resolved.backend;
    choice.reports_size = resolved.registration->reports_size;
    return choice;
  }
  const bool uses_process = process_only || UsesProcess(source.config);
  if (uses_process && options_.process_backend == nullptr) {
    if (process_only) {
      return InvalidArgument("backend '" + resolved.registration->name +
                             "' runs models only in worker processes, and this server has no "
                             "worker command");
    }
    return InvalidArgument(
        "mmserve.isolation PROCESS is not available in this server (no worker command)");
  }
  choice.backend = uses_process ? options_.process_backend : resolved.backend;
  choice.engine = resolved.backend;
  choice.reports_size = uses_process || resolved.registration->reports_size;
  choice.in_worker = uses_process;
  return choice;
}

Status ModelLoader::Fail(const ModelKey& key, const Status& error) {
  spdlog::error("model '{}' cannot load: {}", key.name, error.message());
  MutexLock lock(table_.mu());
  ModelEntry& entry = table_.models()[key];
  entry.reason = error.message();
  entry.failed = true;
  for (auto& [v, slot] : entry.versions) {
    if (!slot.servable) slot.reason = error.message();
  }
  return error.WithContext("model '" + key.name + "'");
}

Status ModelLoader::ResolveComposing(const ModelKey& key, const inference::ModelConfig& config,
                                     Composing* composing, std::vector<ComposingModel>* models,
                                     std::vector<ModelKey>* keys) const {
  const auto& steps = config.ensemble_scheduling().step();
  for (int i = 0; i < steps.size(); ++i) {
    const auto& step = steps[i];
    const std::string label =
        "step " + std::to_string(i + 1) + " (model '" + step.model_name() + "')";
    // (Loading itself first would wait for itself.)
    if (step.model_name() == key.name) {
      return InvalidArgument(label + " runs the ensemble itself, a cycle; expected another model");
    }
    auto dep = resolve_(key, step.model_name());
    if (!dep.ok()) return Status(dep.status().code(), label + ": " + dep.status().message());
    if (*dep == key) {
      return InvalidArgument(label + " runs the ensemble itself, a cycle; expected another model");
    }
    const std::string version =
        step.model_version() > 0 ? std::to_string(step.model_version()) : std::string();
    auto ready = table_.Get(NameScope::One(dep->repository), dep->name, version,
                            /*count_use=*/false);
    if (ready.ok()) {
      models->push_back({step.model_name(), step.model_version(), (*ready)->config});
      if (std::find(keys->begin(), keys->end(), *dep) == keys->end()) keys->push_back(*dep);
      continue;
    }
    if (composing != nullptr) {
      if (auto failed = composing->failures.find(*dep); failed != composing->failures.end()) {
        return Unavailable(label + ": the model failed to load: " + failed->second.message());
      }
      if (composing->may_wait) {
        auto& first = composing->load_first;
        if (std::find(first.begin(), first.end(), *dep) == first.end()) first.push_back(*dep);
        continue;
      }
    }
    return Unavailable(label + ": the model is not available: " + ready.status().message());
  }
  return OkStatus();
}

Status ModelLoader::Load(const ModelKey& key, Composing* composing) {
  const std::string& name = key.name;
  {
    MutexLock lock(table_.mu());
    if (table_.stopping()) {
      return Unavailable("model '" + name + "' was not loaded: the server is stopping");
    }
  }
  auto scanned = repositories_.ScanForLoad(key);
  if (!scanned.ok()) {
    MutexLock lock(table_.mu());
    ModelEntry& entry = table_.models()[key];
    const bool serving = std::any_of(entry.versions.begin(), entry.versions.end(),
                                     [](const auto& v) { return v.second.servable != nullptr; });
    if (!serving) entry.reason = scanned.status().message();
    return scanned.status().code() == StatusCode::kNotFound && serving
               ? NotFound(scanned.status().message() + "; its loaded versions keep serving")
               : scanned.status();
  }
  ModelSource source = std::move(*scanned);
  for (const auto& w : source.warnings) spdlog::warn("{}", w);
  uint64_t override_hash = 0;
  {
    MutexLock lock(table_.mu());
    ModelEntry& entry = table_.models()[key];
    entry.scanned_config = source.config_fingerprint;
    entry.scanned_versions = source.version_fingerprints;
    entry.on_disk = true;
    entry.place = PlaceOf(source);
    if (entry.override_config) {
      // An override without an mmserve block keeps the repository's: a
      // load override cannot drop what the operator set there (isolation,
      // limits, footprint, pinning, tenant, weight).
      inference::MmserveOptions kept = source.config.mmserve();
      const bool keep = source.config.has_mmserve() && !entry.override_config->has_mmserve();
      const inference::ModelConfig repository_config = source.config;
      source.config = *entry.override_config;
      if (keep) *source.config.mutable_mmserve() = std::move(kept);
      source.has_config = true;
      source.status = ValidateModelConfig(source.config);
      if (source.status.ok())
        source.status = CheckOverrideParameters(repository_config, source.config);
      // What the copy loaded from: the override, and the block it kept.
      override_hash =
          keep ? ((entry.override_hash * 1099511628211ULL) ^ source.config_fingerprint) | 1
               : entry.override_hash;
    }
  }
  // The server's caps apply to config.pbtxt and overrides alike (a config
  // over one is listed UNAVAILABLE with the reason).
  if (source.status.ok()) source.status = CheckServerLimits(source.config, options_.limits);
  // What the sequence batcher does not support fails before anything loads.
  if (source.status.ok() && source.config.has_sequence_batching()) {
    source.status = SequenceConfig::FromModelConfig(source.config).status();
  }
  const uint64_t config_fp = override_hash ? override_hash : source.config_fingerprint;
  BackendChoice backend;
  std::vector<int64_t> selected;
  Status model_error;
  if (!source.status.ok()) {
    model_error = source.status;
  } else if (auto chosen = BackendFor(source); !chosen.ok()) {
    model_error = chosen.status();
  } else {
    selected = SelectVersions(source.config.version_policy(), source.versions);
    if (selected.size() > static_cast<size_t>(ConfigBounds::kMaxVersions)) {
      model_error =
          InvalidArgument("the version policy selects " + std::to_string(selected.size()) +
                          " versions; expected at most " +
                          std::to_string(ConfigBounds::kMaxVersions) + " served at once");
    } else if (selected.empty()) {
      model_error =
          NotFound(source.versions.empty()
                       ? "no version folder (a positive integer such as 1/) in " + PlaceOf(source)
                       : "the version policy selects none of the versions on disk");
    } else {
      backend = std::move(*chosen);
    }
  }
  // An ensemble's composing models are READY first (the header).
  std::vector<ComposingModel> composing_models;
  std::vector<ModelKey> composing_keys;
  if (model_error.ok() && source.config.has_ensemble_scheduling()) {
    if (composing != nullptr) composing->load_first.clear();
    model_error =
        ResolveComposing(key, source.config, composing, &composing_models, &composing_keys);
    if (model_error.ok() && composing != nullptr && !composing->load_first.empty()) {
      return OkStatus();  // the caller loads those, then calls again
    }
  }
  if (!model_error.ok()) return Fail(key, model_error);

  Status first_error;
  for (auto v = selected.rbegin(); v != selected.rend(); ++v) {  // newest first
    const std::string what = "model '" + name + "' version " + std::to_string(*v);
    const uint64_t files =
        source.version_fingerprints.count(*v) ? source.version_fingerprints.at(*v) : 0;
    {
      MutexLock lock(table_.mu());
      ModelEntry& entry = table_.models()[key];
      entry.reason.clear();
      VersionSlot& slot = entry.versions[*v];
      if (slot.servable && slot.files == files && slot.config == config_fp) continue;
      if (!slot.servable) {
        slot.MoveTo(ModelState::kLoading, what);
        slot.reason.clear();
      }
    }
    const auto load_start = std::chrono::steady_clock::now();
    auto loaded = LoadVersion(key, source, *v, backend, composing_models, composing_keys);
    if (loaded.ok()) {
      (*loaded)->stats->LoadSucceeded(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::steady_clock::now() - load_start)
                                          .count());
    } else {
      stats_.For(name, *v, "", 0, key.repository)->LoadFailed();
    }
    std::shared_ptr<ServableModel> old;
    {
      MutexLock lock(table_.mu());
      ModelEntry& entry = table_.models()[key];
      VersionSlot& slot = entry.versions[*v];
      if (loaded.ok()) {
        old = std::move(slot.servable);
        slot.servable = std::move(*loaded);
        slot.MoveTo(ModelState::kReady, what);
        slot.reason.clear();
        slot.files = files;
        slot.config = config_fp;
        table_.Publish(key.name);
        spdlog::info("model '{}' version {} is READY ({} footprint, {}; fair share of tenant '{}')",
                     name, *v, FormatBytes(slot.servable->footprint_bytes),
                     slot.servable->footprint_source,
                     slot.servable->scheduler->fair_share_tenant());
      } else {
        spdlog::error("model '{}' version {} failed to load: {}", name, *v,
                      loaded.status().message());
        if (loaded.status().code() != StatusCode::kResourceExhausted) entry.failed = true;
        if (slot.servable) {
          slot.reason =
              "a reload failed, the previous copy keeps serving: " + loaded.status().message();
        } else {
          slot.MoveTo(ModelState::kUnavailable, what);
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
    MutexLock lock(table_.mu());
    ModelEntry& entry = table_.models()[key];
    if (first_error.ok()) {
      entry.failed = false;
      for (auto& [v, slot] : entry.versions) {
        if (std::find(selected.begin(), selected.end(), v) != selected.end()) continue;
        const std::string what = "model '" + name + "' version " + std::to_string(v);
        if (slot.servable) {
          slot.MoveTo(ModelState::kUnloading, what);
          slot.reason = "no longer selected by the version policy";
          leaving.emplace_back(v, std::move(slot.servable));
        } else if (slot.state() != ModelState::kUnloading) {
          slot.MoveTo(ModelState::kUnavailable, what);
          slot.reason = "no longer selected by the version policy";
        }
      }
      if (!leaving.empty()) table_.Publish(key.name);
    }
  }
  for (auto& [v, servable] : leaving) Retire(key, v, std::move(servable), true, nullptr);
  return first_error.ok() ? OkStatus() : first_error.WithContext("model '" + name + "'");
}

StatusOr<std::shared_ptr<ServableModel>> ModelLoader::LoadVersion(
    const ModelKey& key, const ModelSource& source, int64_t version, const BackendChoice& backend,
    const std::vector<ComposingModel>& composing, const std::vector<ModelKey>& composing_keys) {
  const std::string label = "model '" + source.name + "' version " + std::to_string(version);
  const uint64_t declared = source.config.mmserve().memory_footprint_bytes();
  // The version on local disk (a remote repository downloads it here).
  ModelRepository* repository = repositories_.Find(key.repository);
  if (repository == nullptr) return NotInAnyRepository(key.name);
  // A download shows in the index as the version's reason (the slot is
  // LOADING, or READY with the copy being replaced).
  auto show = [&](std::string progress) {
    MutexLock lock(table_.mu());
    auto entry = table_.models().find(key);
    if (entry == table_.models().end()) return;
    auto slot = entry->second.versions.find(version);
    if (slot != entry->second.versions.end()) slot->second.reason = std::move(progress);
  };
  // A server that stops stops its downloads (within about a second).
  auto fetched = repository->Fetch(source, version, [&](uint64_t done, uint64_t total) {
    if (cancel_.load(std::memory_order_relaxed)) return false;
    show("fetching " + FormatBytes(done) + " of " + FormatBytes(total) + " (" +
         std::to_string(total ? done * 100 / total : 100) + "%) from " + key.repository);
    return true;
  });
  if (!fetched.ok()) return fetched.status().WithContext(label);
  LocalModelVersion local = std::move(*fetched);
  LoadSpec spec;
  spec.model_name = source.name;
  spec.version = version;
  spec.model_dir = local.model_dir;
  spec.version_dir = local.version_dir;
  spec.config = source.config;
  spec.has_config = source.has_config;
  spec.platform = backend.platform;
  spec.composing = composing;
  // What the backend makes before loading (a Python environment), not
  // bound by a worker's start timeout.
  if (backend.engine != nullptr) {
    MM_RETURN_IF_ERROR(backend.engine->Prepare(spec, show));
  }
  // A bad drift baseline fails the load before anything is loaded.
  std::shared_ptr<DriftMonitor> drift;
  if (options_.drift) {
    auto monitor = LoadDriftMonitor(local.model_dir, label);
    if (!monitor.ok()) return monitor.status();
    drift = std::move(*monitor);
  }
  // Before loading: what it took last time (a model too big for the budget
  // is then refused before it is loaded again), else its size on disk.
  uint64_t measured_before = 0;
  {
    MutexLock lock(table_.mu());
    auto it = table_.models().find(key);
    if (it != table_.models().end()) {
      auto f = it->second.footprints.find(version);
      if (f != it->second.footprints.end()) measured_before = f->second;
    }
  }
  const uint64_t estimate =
      declared ? declared : (measured_before ? measured_before : DiskBytes(local.version_dir));
  const ModelOwner owner = repositories_.OwnerOf(key.repository);
  MM_RETURN_IF_ERROR(memory_.Reserve(key, label, estimate, owner));

  // The footprint is the memory growth across the load when it can be told
  // apart: no other load overlapped. Otherwise the estimate stands.
  // (Backends pay their runtime's one-time set-up when they are created.)
  auto probe = options_.memory_probe ? options_.memory_probe : DefaultMemoryProbe;
  const LoadOverlap::Ticket ticket = overlap_.Begin();
  const bool skip_probe = declared || backend.reports_size;
  const uint64_t before = skip_probe ? 0 : probe();
  if (options_.host_factory)
    spec.host = options_.host_factory(key.repository, source.name, version);
  // Health reports name the servable they concern, once it exists.
  auto target = std::make_shared<std::atomic<const ServableModel*>>(nullptr);
  spec.on_health = [relay = relay_, key, version, target](const Status& health) {
    std::shared_ptr<ModelScheduler> failed;
    {
      MutexLock lock(relay->mu);
      if (relay->table) failed = relay->table->OnWorkerHealth(key, version, target->load(), health);
    }
    // A sequence model's sequences lived in the worker that failed.
    if (failed) {
      failed->EndSequences("ended: a worker process of the model failed (" + health.message() +
                           ")");
    }
  };
  auto loaded = backend.backend->Load(spec);
  Status status = loaded.ok() ? OkStatus() : loaded.status();
  if (status.ok()) {
    for (auto& instance : (*loaded)->instances) {
      status = RunWarmup((*loaded)->config, local.model_dir, *instance, &cancel_);
      if (!status.ok()) break;
    }
  }
  // A backend that reports the size (worker processes, a library's model
  // size) needs no second probe: glibc's mallinfo2 walks the heap's free
  // lists, a cost that grows with the models loaded.
  const bool reported =
      loaded.ok() && ((*loaded)->external_bytes != 0 || (*loaded)->model_bytes != 0);
  const uint64_t after = skip_probe || reported ? 0 : probe();
  const bool alone = overlap_.End(ticket);
  // The estimate stays reserved until the copy commits (below), or is
  // released on any failure before that.
  if (!status.ok()) {
    memory_.Unreserve(owner.tenant, key, estimate);
    return status;
  }

  auto servable = std::make_shared<ServableModel>();
  servable->name = source.name;
  servable->repository = key.repository;
  servable->files = std::move(local.lease);
  servable->owner = owner;
  servable->version = version;
  servable->version_string = std::to_string(version);
  servable->config = std::move((*loaded)->config);
  servable->pinned = servable->config.mmserve().pinned();
  servable->in_worker = backend.in_worker;
  const uint64_t external = (*loaded)->external_bytes;
  const uint64_t exact = (*loaded)->model_bytes;
  if (declared) {
    servable->footprint_bytes = declared;
    servable->footprint_source = "declared in its config";
  } else if (external) {
    servable->footprint_bytes = external;
    servable->footprint_source = "its worker processes' resident memory";
  } else if (exact) {
    servable->footprint_bytes = exact;
    servable->footprint_source = "the library's size of the model";
  } else if (alone && !skip_probe) {
    servable->footprint_bytes = after > before ? after - before : 0;
    servable->footprint_source = "measured across its load";
  } else {
    servable->footprint_bytes = estimate;
    servable->footprint_source = skip_probe ? "estimated: its backend reported no size"
                                            : "estimated: other loads overlapped it";
  }
  {
    MutexLock lock(table_.mu());
    table_.models()[key].footprints[version] = servable->footprint_bytes;
  }
  servable->last_used_ns.store(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count(),
                               std::memory_order_relaxed);
  auto scheduler_config = ModelSchedulerConfig::FromModelConfig(servable->config, source.name);
  if (!owner.tenant.empty()) scheduler_config.tenant = owner.tenant;
  servable->stats = stats_.For(
      source.name, version,
      scheduler_config.tenant.empty() ? std::string(kSharedTenant) : scheduler_config.tenant,
      servable->config.max_batch_size(), key.repository);
  scheduler_config.stats = servable->stats;
  scheduler_config.inline_safe = (*loaded)->inline_safe;
  scheduler_config.batch_as_list = (*loaded)->batch_as_list;
  scheduler_config.asynchronous = (*loaded)->asynchronous;
  scheduler_config.executions_per_instance = (*loaded)->executions_per_instance;
  if (servable->config.has_sequence_batching()) {
    auto sequence = SequenceConfig::FromModelConfig(servable->config);
    if (!sequence.ok()) {
      memory_.Unreserve(owner.tenant, key, estimate);
      return sequence.status().WithContext(label);
    }
    scheduler_config.sequence = std::make_shared<const SequenceConfig>(std::move(*sequence));
  }
  servable->drift = std::move(drift);
  servable->composing = composing_keys;
  if (servable->config.response_cache().enable()) {
    if (options_.response_cache == nullptr) {
      spdlog::warn(
          "{}: response_cache is enabled, but this server has no cache "
          "(--cache-config local,size=BYTES): its requests are not cached",
          label);
    } else if (servable->config.model_transaction_policy().decoupled()) {
      spdlog::warn("{}: response_cache is enabled, but a decoupled model is never cached", label);
    } else if (servable->config.has_sequence_batching()) {
      spdlog::warn(
          "{}: response_cache is enabled, but a sequence model is never cached (its "
          "answers depend on its state)",
          label);
    } else {
      servable->cache = options_.response_cache->NewScope();
    }
  }
  auto scheduler = ModelScheduler::Create(std::move((*loaded)->instances), options_.slots,
                                          options_.scheduler, std::move(scheduler_config));
  if (!scheduler.ok()) {
    memory_.Unreserve(owner.tenant, key, estimate);
    return scheduler.status();
  }
  servable->scheduler = std::move(*scheduler);
  target->store(servable.get());
  // Account for what it really takes: within the estimate (a reload whose
  // size is known), the reservation becomes the copy's without a new plan;
  // over it, make room for the real size or give up.
  if (servable->footprint_bytes <= estimate) {
    memory_.Settle(owner.tenant, key, estimate, servable->footprint_bytes);
    return servable;
  }
  memory_.Unreserve(owner.tenant, key, estimate);
  if (Status s = memory_.Reserve(key, label, servable->footprint_bytes, owner); !s.ok()) {
    servable.reset();
    ReleaseFreeMemory();
    return s;
  }
  memory_.Commit(owner.tenant, key, servable->footprint_bytes);
  return servable;
}

StatusOr<std::shared_ptr<DriftMonitor>> ModelLoader::LoadDriftMonitor(
    const std::filesystem::path& dir, const std::string& label) const {
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

void ModelLoader::Retire(const ModelKey& key, int64_t version,
                         std::shared_ptr<ServableModel> servable, bool unload,
                         std::function<void()> done) {
  // No reference of our own to the scheduler: the loader job below must be
  // able to drop the last one.
  ModelScheduler* scheduler = servable->scheduler.get();
  auto holder = std::make_shared<std::shared_ptr<ServableModel>>(std::move(servable));
  scheduler->NotifyWhenIdle([this, key, version, unload, holder, done = std::move(done)] {
    loaders_.Submit(
        repositories_.NamespaceOf(key.repository), [this, key, version, unload, holder, done] {
          const uint64_t bytes = (*holder)->footprint_bytes;
          const uint64_t uses = (*holder)->uses.load(std::memory_order_relaxed);
          holder->reset();
          // Its statistics stay (counters only grow), in one shard now that
          // no thread records into them (when nothing else still holds them).
          stats_.Compact(key.name, version, key.repository);
          ReleaseFreeMemory();
          memory_.Release(key, bytes);
          {
            MutexLock lock(table_.mu());
            auto it = table_.models().find(key);
            if (it != table_.models().end()) it->second.past_uses += uses;
            if (unload && it != table_.models().end()) {
              auto slot = it->second.versions.find(version);
              if (slot != it->second.versions.end() && !slot->second.servable &&
                  slot->second.state() == ModelState::kUnloading) {
                slot->second.MoveTo(ModelState::kUnavailable,
                                    "model '" + key.name + "' version " + std::to_string(version));
              }
              table_.MaybeForget(it);
            }
          }
          spdlog::info("model '{}' version {} {}", key.name, version,
                       unload ? "unloaded" : "replaced copy drained and dropped");
          if (done) done();
        });
  });
}

void ModelLoader::Unload(const ModelKey& key, const std::string& reason,
                         std::function<void(Status)> done) {
  std::vector<std::pair<int64_t, std::shared_ptr<ServableModel>>> leaving;
  {
    MutexLock lock(table_.mu());
    ModelEntry& entry = table_.models()[key];
    for (auto& [v, slot] : entry.versions) {
      const std::string what = "model '" + key.name + "' version " + std::to_string(v);
      if (slot.servable) {
        slot.MoveTo(ModelState::kUnloading, what);
        slot.reason = reason;
        leaving.emplace_back(v, std::move(slot.servable));
      } else if (slot.state() != ModelState::kUnloading) {
        slot.MoveTo(ModelState::kUnavailable, what);
        slot.reason = reason;
      }
    }
    entry.reason = reason;
    if (!leaving.empty()) table_.Publish(key.name);
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

}  // namespace mm
