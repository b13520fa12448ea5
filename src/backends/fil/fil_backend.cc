#include "backends/fil/fil_backend.h"

#include <spdlog/spdlog.h>

#include <exception>
#include <string>
#include <system_error>
#include <utility>

#include "backends/fil/fil_config.h"
#include "backends/fil/fil_instance.h"
#include "backends/fil/fil_io.h"
#include "backends/model_file.h"

namespace mm::fil {

namespace {

struct LibrarySetting {
  std::string_view key;
  std::filesystem::path TreeLibraryPaths::*path;
};
constexpr LibrarySetting kLibrarySettings[] = {
    {"xgboost-library", &TreeLibraryPaths::xgboost},
    {"lightgbm-library", &TreeLibraryPaths::lightgbm},
    {"treelite-library", &TreeLibraryPaths::treelite},
};

// The number of instances: the groups' counts summed (a count of 0 means 1).
// The engines run on the CPU only.
StatusOr<int64_t> InstanceCount(const inference::ModelConfig& config) {
  int64_t total = 0;
  for (int i = 0; i < config.instance_group_size(); ++i) {
    const auto& group = config.instance_group(i);
    const std::string what = group.name().empty() ? "instance_group[" + std::to_string(i) + "]"
                                                  : "instance_group '" + group.name() + "'";
    if (group.kind() == inference::ModelInstanceGroup::KIND_GPU) {
      return InvalidArgument(what +
                             " asks for KIND_GPU, but the fil backend has no GPU engine: it runs "
                             "tree models on the CPU (use KIND_CPU or KIND_AUTO)");
    }
    if (group.count() < 0) {
      return InvalidArgument(what + " has a negative count " + std::to_string(group.count()) +
                             "; expected 1 or more");
    }
    total += group.count() == 0 ? 1 : group.count();
  }
  return total < 1 ? 1 : total;
}

}  // namespace

StatusOr<TreeLibraryPaths> TreeLibrariesFromSettings(const BackendSettings& settings) {
  TreeLibraryPaths paths;
  for (const auto& [key, value] : settings) {
    const LibrarySetting* setting = nullptr;
    for (const auto& s : kLibrarySettings) {
      if (key == s.key) setting = &s;
    }
    if (setting == nullptr) {
      return InvalidArgument("fil backend: unknown setting '" + key +
                             "'; expected xgboost-library, lightgbm-library or treelite-library "
                             "(--backend-config=fil,<key>=<library file>)");
    }
    std::error_code ec;
    if (!std::filesystem::is_regular_file(value, ec)) {
      return InvalidArgument("fil backend: setting '" + key + "' is '" + value +
                             "', which is not a library file (expected the path of " +
                             (key == "xgboost-library"    ? "libxgboost.so"
                              : key == "lightgbm-library" ? "lib_lightgbm.so"
                                                          : "libtreelite.so") +
                             ")");
    }
    paths.*(setting->path) = value;
  }
  return paths;
}

StatusOr<std::unique_ptr<Backend>> FilBackend::Create(Options options) {
  if (!options.loader) return InvalidArgument("fil backend: no model loader given");
  return std::unique_ptr<Backend>(new FilBackend(std::move(options)));
}

StatusOr<std::unique_ptr<LoadedModel>> FilBackend::Load(const LoadSpec& spec) {
  const std::string label =
      "model '" + spec.model_name + "' version " + std::to_string(spec.version);
  auto params = ParseFilParameters(spec.config);
  if (!params.ok()) return params.status().WithContext(label);
  for (const std::string& warning : params->warnings) spdlog::warn("{}: {}", label, warning);
  const std::string type_name(ModelTypeName(params->model_type));

  auto instances = InstanceCount(spec.config);
  if (!instances.ok()) return instances.status().WithContext(label);

  auto path = ModelFilePath(spec, DefaultModelFileName(params->model_type), label);
  if (!path.ok()) {
    if (path.status().code() != StatusCode::kNotFound) return path.status();
    // Say which model_type expects which file, and how to name another.
    return Status(StatusCode::kNotFound,
                  path.status().message() + " (model_type '" + type_name + "' loads " +
                      (spec.config.default_model_filename().empty()
                           ? "'" + std::string(DefaultModelFileName(params->model_type)) +
                                 "' from the version folder unless default_model_filename names "
                                 "another file)"
                           : "the file default_model_filename names)"));
  }

  StatusOr<std::unique_ptr<TreeModel>> loaded_tree = Internal("the engine returned nothing");
  try {
    loaded_tree = options_.loader(params->model_type, *path, options_.libraries);
  } catch (const std::exception& e) {  // the engines return Status; this is a last guard
    loaded_tree = Internal(std::string("the engine failed: ") + e.what());
  }
  if (loaded_tree.ok() && *loaded_tree == nullptr)
    loaded_tree = Internal("the engine loaded nothing");
  if (!loaded_tree.ok()) return loaded_tree.status().WithContext(label + " (" + type_name + ")");
  std::shared_ptr<const TreeModel> tree = std::move(*loaded_tree);
  const TreeModelInfo& info = tree->info();

  auto io =
      CompleteFilConfig(spec.model_name, spec.config, info, *params,
                        [&tree](const OutputRule& rule) { return tree->OutputColumns(rule); });
  if (!io.ok()) return io.status().WithContext(label);

  auto model = std::make_unique<LoadedModel>();
  model->inline_safe = true;
  model->model_bytes = info.bytes;
  model->instances.reserve(static_cast<size_t>(*instances));
  for (int64_t i = 0; i < *instances; ++i) {
    model->instances.push_back(std::make_unique<FilInstance>(spec.model_name, tree, *io));
  }
  model->config = std::move(io->config);
  spdlog::debug("{}: {} ({} features, {} bytes), {} instance(s)", label, info.description,
                info.num_features, info.bytes, *instances);
  return model;
}

}  // namespace mm::fil
