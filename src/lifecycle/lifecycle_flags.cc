#include "lifecycle/lifecycle_flags.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>
#include <system_error>
#include <thread>

#include "core/memory.h"
#include "repository/local/single_model_repository.h"
#include "repository/repository_key.h"

namespace mm {

void AddLifecycleFlags(CLI::App& app, LifecycleFlags& flags) {
  flags.load_threads = std::max<size_t>(1, std::max(1u, std::thread::hardware_concurrency()) / 2);
  app.add_option("--model-repository", flags.repositories,
                 "Model repository: a folder, file://FOLDER, s3://BUCKET[/PREFIX], or an "
                 "MLflow registry mlflow://HOST[:PORT] (mlflows:// for TLS) (repeatable; they "
                 "mix)")
      ->required();
  app.add_option("--s3-endpoint", flags.s3_endpoint,
                 "S3-compatible endpoint for s3:// repositories, http(s)://HOST[:PORT] "
                 "(path-style; default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the AWS "
                 "profile's endpoint_url, else AWS)");
  app.add_option("--model-cache-dir", flags.model_cache_dir,
                 "Where versions of remote repositories' models are fetched to (default: "
                 "$XDG_CACHE_HOME/mmserve/models or ~/.cache/mmserve/models); one server per "
                 "folder");
  app.add_option("--model-cache-size", flags.model_cache_size,
                 "Cap on the model cache, in bytes (512MiB, 20GiB, ...) or a percentage of its "
                 "disk (25%); least recently used versions not loaded are evicted (0: no cap)")
      ->capture_default_str();
  app.add_option("--mlflow-alias", flags.mlflow_alias,
                 "MLflow registries: serve the version each registered model's alias names "
                 "(champion); a poll follows the alias as it moves (default: every READY "
                 "version, by the version policy)");
  app.add_option("--mlflow-stage", flags.mlflow_stage,
                 "MLflow registries: serve only versions in this stage (Production, Staging)");
  app.add_option("--model-name", flags.model_name,
                 "A --model-repository folder that holds one model itself (its config.pbtxt and "
                 "version folders, or its files: model.onnx, an MLflow model's MLmodel, ...) is "
                 "served as this model (KServe's single-model /mnt/models); a folder of model "
                 "folders is served as ever");
  app.add_option("--model-control-mode", flags.control_mode,
                 "none: load every model at start; explicit: load --load-model models at start, "
                 "then through the repository API and on demand; poll: load every model and "
                 "follow the repositories' changes")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "explicit", "poll"}));
  app.add_option("--load-model", flags.load_models,
                 "Model to load at start in explicit mode (repeatable; * for all)");
  // A flag that takes an optional value: alone it means true, and
  // --load-on-demand true|false (or =false) says which.
  app.add_flag("--load-on-demand{true}", flags.load_on_demand_value,
               "Load a model at its first request (explicit mode; default true there; given "
               "alone: true)")
      ->expected(0, 1)
      ->multi_option_policy(CLI::MultiOptionPolicy::Throw)
      ->each([&flags](const std::string& value) {
        bool on = false;
        if (CLI::detail::lexical_cast(value, on)) flags.load_on_demand = on;
      });
  app.add_option("--strict-readiness", flags.strict_readiness,
                 "Ready (/v2/health/ready) only if every model loaded at start did load; a "
                 "failed start-up load leaves the server live, serving what loaded, and not "
                 "ready until it restarts (false: ready once start-up loading has finished)")
      ->capture_default_str();
  app.add_option("--repository-poll-secs", flags.poll_secs, "Poll mode: seconds between scans")
      ->capture_default_str()
      ->check(CLI::Range(kRepositoryPollSecsBounds.min, kRepositoryPollSecsBounds.max));
  app.add_option("--model-memory-budget", flags.memory_budget,
                 "Memory for loaded models, in bytes (512MiB, 4GiB, ...) or a percentage of the "
                 "memory the server may use (50%: of RAM, or of its container's cgroup limit when "
                 "lower); idle models are evicted to stay under it (0: unlimited)")
      ->capture_default_str();
  app.add_option("--model-eviction-policy", flags.eviction_policy,
                 "Which idle models leave first to fit the budget: lfu (fewest uses per byte, "
                 "decaying; ties least recently used) or lru (least recently used)")
      ->capture_default_str()
      ->check(CLI::IsMember({"lfu", "lru"}));
  app.add_option("--model-load-threads", flags.load_threads,
                 "Models one tenant loads in parallel at most (loads are fair across tenants)")
      ->capture_default_str()
      ->check(CLI::Range(kModelLoadThreadsBounds.min, kModelLoadThreadsBounds.max));
  app.add_option("--max-instances-per-model", flags.limits.max_instances_per_model,
                 "Instances one model may ask for, over its instance groups (a config asking "
                 "more fails to load)")
      ->capture_default_str()
      ->check(CLI::Range(kMaxInstancesPerModelBounds.min, kMaxInstancesPerModelBounds.max));
  app.add_option("--max-threads-per-model", flags.limits.max_threads_per_model,
                 "Runtime threads one model may ask for: instances x (intra_op_thread_count + "
                 "inter_op_thread_count), unset counting 1 and 0 one per core (a config asking "
                 "more fails to load)")
      ->capture_default_str()
      ->check(CLI::Range(kMaxThreadsPerModelBounds.min, kMaxThreadsPerModelBounds.max));
  app.add_option("--drift", flags.drift,
                 "Watch the inputs of models that ship a drift_baseline.json for drift (PSI per "
                 "input feature, in the metrics and the model's statistics)")
      ->capture_default_str();
  app.add_option("--drift-sample-rate", flags.drift_sample_rate,
                 "Fraction of requests whose inputs go into the drift window")
      ->capture_default_str()
      ->check(CLI::Range(kDriftSampleRateBounds.min, kDriftSampleRateBounds.max));
  app.add_option("--drift-window-rows", flags.drift_window_rows,
                 "Rows of each input the drift window holds (it slides by a tenth)")
      ->capture_default_str()
      ->check(CLI::Range(kDriftWindowRowsBounds.min, kDriftWindowRowsBounds.max));
  app.add_option("--drift-psi-threshold", flags.drift_psi_threshold,
                 "PSI above which an input feature is reported as drifted (logged when crossed)")
      ->capture_default_str()
      ->check(CLI::Range(kDriftPsiThresholdBounds.min, kDriftPsiThresholdBounds.max));
  app.add_option("--drift-check-ms", flags.drift_check_ms,
                 "How often loaded models' drift is checked against the threshold (and crossings "
                 "logged) when nobody reads the metrics")
      ->capture_default_str()
      ->check(CLI::Range(kDriftCheckMsBounds.min, kDriftCheckMsBounds.max))
      ->group("");
  app.add_option("--drift-min-rows", flags.drift_min_rows,
                 "Rows a feature needs in the window before its PSI is reported (fewer give a "
                 "noisy PSI, and false alarms)")
      ->default_str(std::to_string(kDefaultDriftMinRows));
}

StatusOr<std::vector<std::shared_ptr<ModelRepository>>> OpenRepositories(
    const std::vector<std::string>& values) {
  std::vector<std::shared_ptr<ModelRepository>> repositories;
  for (const std::string& value : values) {
    auto opened = OpenModelRepository(value);
    if (!opened.ok()) return opened.status().WithContext("--model-repository");
    repositories.push_back(std::move(*opened));
  }
  return repositories;
}

namespace {

// A local --model-repository folder that holds one model, as --model-name
// says; null when the flag is unset or the value is not such a folder.
StatusOr<std::shared_ptr<ModelRepository>> OpenSingleModel(const std::string& value,
                                                           const std::string& model_name) {
  if (model_name.empty()) return std::shared_ptr<ModelRepository>();
  const RepositoryLocation location = ParseRepositoryLocation(value);
  if (!location.local() || location.path.empty() ||
      !SingleModelRepository::HoldsOneModel(location.path)) {
    return std::shared_ptr<ModelRepository>();
  }
  auto opened = SingleModelRepository::Open(location.path, model_name);
  if (!opened.ok()) return opened.status().WithContext("--model-repository and --model-name");
  return std::shared_ptr<ModelRepository>(std::move(*opened));
}

}  // namespace

StatusOr<std::vector<std::shared_ptr<ModelRepository>>> OpenRepositories(
    const LifecycleFlags& flags) {
  const bool remote =
      std::any_of(flags.repositories.begin(), flags.repositories.end(),
                  [](const std::string& value) { return !ParseRepositoryLocation(value).local(); });
  if (!remote && flags.model_name.empty()) return OpenRepositories(flags.repositories);
  std::optional<RemoteRepositories> opener;
  if (remote) {
    RemoteRepositories::Options options;
    options.s3_endpoint = flags.s3_endpoint;
    options.cache_dir = flags.model_cache_dir.empty()
                            ? DefaultModelCacheDir()
                            : std::filesystem::path(flags.model_cache_dir);
    std::error_code ec;
    std::filesystem::create_directories(options.cache_dir, ec);
    const std::filesystem::space_info disk = std::filesystem::space(options.cache_dir, ec);
    auto size = ParseByteSize(flags.model_cache_size, ec ? 0 : disk.capacity);
    if (!size.ok()) return size.status().WithContext("--model-cache-size");
    options.cache_bytes = *size;
    options.mlflow_alias = flags.mlflow_alias;
    options.mlflow_stage = flags.mlflow_stage;
    opener.emplace(std::move(options));
  }
  std::vector<std::shared_ptr<ModelRepository>> repositories;
  for (const std::string& value : flags.repositories) {
    MM_ASSIGN_OR_RETURN(std::shared_ptr<ModelRepository> single,
                        OpenSingleModel(value, flags.model_name));
    if (single != nullptr) {
      repositories.push_back(std::move(single));
      continue;
    }
    auto opened = OpenModelRepository(value, opener ? &*opener : nullptr);
    if (!opened.ok()) return opened.status().WithContext("--model-repository");
    repositories.push_back(std::move(*opened));
  }
  return repositories;
}

Status ApplyLifecycleFlags(const LifecycleFlags& flags, ModelManager::Options& options) {
  options.mode = flags.control_mode == "explicit" ? ModelControlMode::kExplicit
                 : flags.control_mode == "poll"   ? ModelControlMode::kPoll
                                                  : ModelControlMode::kNone;
  options.startup_models = flags.load_models;
  options.load_on_demand =
      flags.load_on_demand.value_or(options.mode == ModelControlMode::kExplicit);
  options.poll_interval = std::chrono::milliseconds(static_cast<int64_t>(flags.poll_secs * 1000));
  auto budget = ParseByteSize(flags.memory_budget, UsableMemoryBytes());
  if (!budget.ok()) return budget.status().WithContext("--model-memory-budget");
  options.memory_budget_bytes = *budget;
  options.eviction = flags.eviction_policy == "lru" ? EvictionPolicy::kLru : EvictionPolicy::kLfu;
  options.load_threads = flags.load_threads;
  options.limits = flags.limits;

  options.drift = flags.drift;
  DriftMonitor::Options& d = options.drift_options;
  d.sample_every =
      std::max<uint64_t>(1, static_cast<uint64_t>(std::llround(1.0 / flags.drift_sample_rate)));
  d.window_rows = flags.drift_window_rows;
  d.threshold = flags.drift_psi_threshold;
  // The window keeps this many rows right after it slides; a feature needs
  // no more than that to be reported.
  const uint64_t kept = (d.sub_windows - 1) * (d.window_rows / d.sub_windows) + 1;
  if (flags.drift_min_rows && *flags.drift_min_rows > kept) {
    return InvalidArgument("--drift-min-rows " + std::to_string(*flags.drift_min_rows) +
                           " is more than a window of " + "--drift-window-rows " +
                           std::to_string(flags.drift_window_rows) + " keeps as it slides (" +
                           std::to_string(kept) + "); lower it or widen the window");
  }
  d.min_rows = flags.drift_min_rows.value_or(std::min(kDefaultDriftMinRows, kept));
  return OkStatus();
}

}  // namespace mm
