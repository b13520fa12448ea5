#include "python_backend.h"

#include <spdlog/spdlog.h>

#include <vector>

#include "backends/model_file.h"
#include "python_env.h"
#include "python_interpreter.h"
#include "python_model.h"
#include "repository/mlflow/mlmodel.h"
#include "repository/repository_file.h"

namespace mm {

namespace {

constexpr std::string_view kKnownSettings = "env, env-cache-dir";

// The environment's site-packages folders, to put first on sys.path.
StatusOr<std::vector<std::filesystem::path>> SitePackages(const LoadSpec& spec,
                                                          const PythonBackend::Options& options,
                                                          const std::string& label) {
  PythonEnvOptions env_options;
  env_options.default_env = options.default_env;
  env_options.cache_dir = options.cache_dir;
  env_options.embedded_version = std::string(EmbeddedPythonVersion());
  auto env = ResolvePythonEnvironment(spec.config, spec.model_dir, env_options);
  if (!env.ok()) return env.status().WithContext(label);
  spdlog::info("{}: Python environment: {}", label, env->description);
  return env->site_packages;
}

}  // namespace

StatusOr<std::unique_ptr<Backend>> PythonBackend::Create(const BackendSettings& settings) {
  Options options;
  options.cache_dir = DefaultPythonEnvCacheDir();
  for (const auto& [key, value] : settings) {
    std::error_code error;
    if (key == "env") {
      // Checked here, as the server starts (CreateAll), not at the first load.
      options.default_env = std::filesystem::absolute(value, error);
      const auto status = std::filesystem::status(options.default_env, error);
      if (value.empty() ||
          !(std::filesystem::is_directory(status) || std::filesystem::is_regular_file(status))) {
        return InvalidArgument("python backend setting env (--python-env) '" + value +
                               "': no such folder or file; expected a virtual environment's "
                               "folder or a .tar.gz made by conda-pack or venv-pack");
      }
    } else if (key == "env-cache-dir") {
      if (value.empty()) return InvalidArgument("python backend setting env-cache-dir is empty");
      options.cache_dir = std::filesystem::absolute(value, error);
    } else {
      return InvalidArgument("python backend setting '" + key + "' is unknown; expected one of " +
                             std::string(kKnownSettings));
    }
  }
  return std::unique_ptr<Backend>(new PythonBackend(std::move(options)));
}

StatusOr<std::unique_ptr<LoadedModel>> PythonBackend::Load(const LoadSpec& spec) {
  const std::string label =
      "model '" + spec.model_name + "' version " + std::to_string(spec.version);
  // An MLflow pyfunc model (repository/mlflow/mlmodel.h) runs the built-in
  // model.py (an empty path), not a file of its folder.
  const bool mlflow = spec.config.parameters().count(std::string(kMlflowPyfuncParameter)) > 0;
  std::filesystem::path path;
  if (!mlflow) {
    MM_ASSIGN_OR_RETURN(path, ModelFilePath(spec, kDefaultModelFile, label));
  }
  MM_ASSIGN_OR_RETURN(std::vector<std::filesystem::path> site_packages,
                      SitePackages(spec, options_, label));
  MM_RETURN_IF_ERROR(StartPythonInterpreter());
  SetPythonLogModel(spec.model_name);
  return LoadPythonModel(spec, path, site_packages);
}

Status RegisterPythonBackend(BackendRegistry& registry) {
  return registry.Register({.name = std::string(PythonBackend::kName),
                            .platforms = {},
                            .default_model_file = std::string(PythonBackend::kDefaultModelFile),
                            .create = &PythonBackend::Create,
                            .process_only = true});
}

}  // namespace mm
