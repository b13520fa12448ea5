// ModelManager: which model versions exist, which are loaded, and the handles
// requests hold while they use one.
//
// Lifecycle of a version (legal transitions only):
//   UNAVAILABLE -> LOADING -> READY -> UNLOADING -> UNAVAILABLE
//   LOADING -> UNAVAILABLE (load failed; `reason` says why)
// A request holds a ModelHandle (shared_ptr); a version is never destroyed
// under a request that holds it.
//
// This first manager implements control mode `none`: LoadAll() scans the
// repositories and loads every model once at start. A model whose config or
// files are bad is listed UNAVAILABLE with its reason; the others serve.
// Thread-safety: every method may be called concurrently.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "backends/backend.h"
#include "core/status.h"
#include "model_config.pb.h"
#include "scheduler/model_scheduler.h"
#include "scheduler/thread_pool.h"

namespace mm {

enum class ModelState { kUnavailable, kLoading, kReady, kUnloading };
std::string_view ModelStateName(ModelState state);

// One READY model version, shared by the requests using it.
struct ServableModel {
  std::string name;
  int64_t version = 0;
  std::string version_string;     // std::to_string(version), for responses
  inference::ModelConfig config;  // complete config
  std::shared_ptr<ModelScheduler> scheduler;
};
using ModelHandle = std::shared_ptr<const ServableModel>;

struct ModelVersionStatus {
  std::string name;
  int64_t version = 0;  // 0: the model has no loadable version
  ModelState state = ModelState::kUnavailable;
  std::string reason;
};

enum class ModelControlMode { kNone };

class ModelManager {
 public:
  struct Options {
    std::vector<std::filesystem::path> repositories;
    ModelControlMode mode = ModelControlMode::kNone;
    ThreadPool* pool = nullptr;         // execution threads; not owned
    ModelScheduler::Options scheduler;  // for every model version's scheduler
    // platform name ("onnxruntime_onnx") -> backend; not owned.
    std::map<std::string, Backend*, std::less<>> backends;
  };

  // Fails when a repository path is missing or not a directory.
  static StatusOr<std::unique_ptr<ModelManager>> Create(Options options);

  // Scans the repositories and loads every model's selected versions.
  // Per-model failures are recorded in Index(), not returned.
  void LoadAll();

  // The version `version` ("" = newest READY) of model `name`.
  // NOT_FOUND for an unknown model or version, UNAVAILABLE for one that is not READY.
  StatusOr<ModelHandle> Get(std::string_view name, std::string_view version) const;

  // Every model version known, sorted by name then version.
  std::vector<ModelVersionStatus> Index() const;

  // Every version ever listed for `name` (READY or not); NOT_FOUND if unknown.
  StatusOr<std::vector<ModelVersionStatus>> Versions(std::string_view name) const;

 private:
  struct VersionSlot {
    ModelVersionStatus status;
    ModelHandle handle;  // set while READY
  };
  struct ModelEntry {
    std::map<int64_t, VersionSlot> versions;  // may be empty
    std::string reason;                       // why the model has no version at all
  };

  explicit ModelManager(Options options);

  const Options options_;

  mutable std::mutex mu_;
  std::map<std::string, ModelEntry, std::less<>> models_;  // guarded by mu_
};

}  // namespace mm
