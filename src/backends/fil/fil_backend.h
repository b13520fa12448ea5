// The FIL backend: tree models (XGBoost, LightGBM, scikit-learn through
// Treelite) served from Triton FIL backend configs unchanged
// (`backend: "fil"`; docs/fil.md).
//
// Load reads the config's parameters (fil_config.h), checks the model file
// (FIL's name per model_type, or default_model_filename) with the
// repository's file checks, loads it once through the engine seam
// (tree_model.h), checks and completes the config against it (fil_io.h), and
// makes one instance per instance_group count, all sharing that one
// TreeModel: its size (TreeModelInfo::bytes) is the model's footprint,
// counted once (LoadedModel::model_bytes). Runs on the CPU only: KIND_GPU is
// refused, KIND_AUTO and KIND_CPU run on the CPU. A tree prediction's cost is
// bounded by rows x trees, so the model is inline_safe.
//
// Settings (--backend-config=fil,<key>=<path>): xgboost-library,
// lightgbm-library, treelite-library, each a library file to open instead
// of the one found at build time (TreeLibraryPaths).
//
// Thread-safety: Load may run concurrently for different models (backend.h).
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string_view>

#include "backends/backend.h"
#include "backends/fil/tree_model.h"
#include "backends/registry.h"
#include "core/status.h"

namespace mm::fil {

// How the backend loads a model file: LoadTreeModel in the server; tests
// give a fake.
using TreeModelLoader = std::function<StatusOr<std::unique_ptr<TreeModel>>(
    ModelType type, const std::filesystem::path& file, const TreeLibraryPaths& libraries)>;

// The libraries `settings` name. INVALID_ARGUMENT for a key other than
// xgboost-library, lightgbm-library, treelite-library (listing them), or a
// path that is not a readable regular file.
StatusOr<TreeLibraryPaths> TreeLibrariesFromSettings(const BackendSettings& settings);

class FilBackend final : public Backend {
 public:
  static constexpr std::string_view kName = "fil";

  struct Options {
    TreeLibraryPaths libraries;
    TreeModelLoader loader;  // required
  };
  // Cheap: no library is opened until a model needs it.
  static StatusOr<std::unique_ptr<Backend>> Create(Options options);

  StatusOr<std::unique_ptr<LoadedModel>> Load(const LoadSpec& spec) override;

 private:
  explicit FilBackend(Options options) : options_(std::move(options)) {}
  const Options options_;
};

}  // namespace mm::fil

namespace mm {
// Registers backend "fil" (no platform: Triton's FIL backend has none; no
// default model file: a config names it) with LoadTreeModel as its loader.
// Defined beside the engine (fil_register.cc), which the server links.
Status RegisterFilBackend(BackendRegistry& registry);
}  // namespace mm
