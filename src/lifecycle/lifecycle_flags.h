// The lifecycle's flags, beside ModelManager::Options: the model
// repositories, the control mode and what loads at start, on-demand loading,
// polling, the memory budget and eviction, loader threads, one model's
// limits, and drift detection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/bounds.h"
#include "core/status.h"
#include "lifecycle/model_manager.h"
#include "repository/model_config.h"
#include "repository/model_repository.h"

namespace CLI {
class App;
}

namespace mm {

inline constexpr Bounds<double> kRepositoryPollSecsBounds{0.01, 86400.0};
inline constexpr Bounds<size_t> kModelLoadThreadsBounds{1, 64};
inline constexpr Bounds<int64_t> kMaxInstancesPerModelBounds{1, ConfigBounds::kMaxInstances};
inline constexpr Bounds<int64_t> kMaxThreadsPerModelBounds{1, int64_t{1} << 20};
inline constexpr Bounds<double> kDriftSampleRateBounds{1e-6, 1.0};
inline constexpr Bounds<uint64_t> kDriftWindowRowsBounds{10, 1'000'000'000};
inline constexpr Bounds<double> kDriftPsiThresholdBounds{1e-6, 1e6};
inline constexpr Bounds<int64_t> kDriftCheckMsBounds{10, 3'600'000};
// --drift-min-rows when not given (lowered to what a smaller window keeps).
// With 10 bins, a window of n rows drawn from the baseline itself has a PSI
// of about 9/n give or take 4/n: at 1000 rows, far below any threshold.
inline constexpr uint64_t kDefaultDriftMinRows = 1000;

struct LifecycleFlags {
  std::vector<std::string> repositories;   // --model-repository values (OpenRepositories)
  std::string s3_endpoint;                 // --s3-endpoint
  std::string model_cache_dir;             // empty: DefaultModelCacheDir()
  std::string model_cache_size = "10GiB";  // ParseByteSize: bytes, units or a % of the disk
  std::string mlflow_alias;                // --mlflow-alias
  std::string mlflow_stage;                // --mlflow-stage
  // --model-name: a local repository folder that holds one model
  // (SingleModelRepository::HoldsOneModel) serves it under this name.
  std::string model_name;
  std::string control_mode = "none";  // none, explicit, poll
  std::vector<std::string> load_models;
  std::optional<bool> load_on_demand;  // unset: true in explicit mode
  // --strict-readiness: not ready when a start-up load failed (main.cc).
  bool strict_readiness = false;
  double poll_secs = 15;
  std::string memory_budget = "0";  // ParseByteSize: bytes, units or a % of UsableMemoryBytes()
  size_t load_threads = 1;          // AddLifecycleFlags: half the cores
  std::string eviction_policy = "lfu";
  ServerLimits limits;
  bool drift = true;
  double drift_sample_rate = 0.01;
  uint64_t drift_window_rows = 10000;
  double drift_psi_threshold = 0.2;
  std::optional<uint64_t> drift_min_rows;  // unset: kDefaultDriftMinRows, or fewer
  int64_t drift_check_ms = 1000;           // for the service's DriftWatch

  // (AddLifecycleFlags' --load-on-demand given alone: true.)
  bool load_on_demand_value = false;
};

// Registers --model-repository (required, repeatable), --s3-endpoint,
// --model-cache-dir, --model-cache-size, --mlflow-alias, --mlflow-stage,
// --model-name, --model-control-mode, --strict-readiness,
// --load-model, --load-on-demand (given alone: true), --repository-poll-secs,
// --model-memory-budget, --model-eviction-policy, --model-load-threads,
// --max-instances-per-model, --max-threads-per-model, --drift,
// --drift-sample-rate, --drift-window-rows, --drift-psi-threshold,
// --drift-check-ms and --drift-min-rows into `flags` (which must outlive the
// parse).
void AddLifecycleFlags(CLI::App& app, LifecycleFlags& flags);

// Opens every --model-repository value (OpenModelRepository), in order.
// The first error, as "--model-repository: <why>".
StatusOr<std::vector<std::shared_ptr<ModelRepository>>> OpenRepositories(
    const std::vector<std::string>& values);
// The same, remote repositories opened as --s3-endpoint, --model-cache-dir
// and --model-cache-size say (its errors name the flag), and a local folder
// that holds one model served as --model-name says.
StatusOr<std::vector<std::shared_ptr<ModelRepository>>> OpenRepositories(
    const LifecycleFlags& flags);

// Sets what the flags say in `options` (mode, start-up models, on-demand,
// polling, budget, eviction, load threads, limits, drift); the wiring (the
// repositories, slots, backends, owners) is the caller's. INVALID_ARGUMENT
// for a --model-memory-budget that does not parse, or a --drift-min-rows
// above what a window of --drift-window-rows keeps as it slides.
Status ApplyLifecycleFlags(const LifecycleFlags& flags, ModelManager::Options& options);

}  // namespace mm
