#include "python_backend.h"

#include <spdlog/spdlog.h>

#include <optional>
#include <vector>

#include "backends/model_file.h"
#include "python_env.h"
#include "python_interpreter.h"
#include "python_model.h"
#include "repository/mlflow/mlmodel.h"
#include "repository/repository_file.h"
#include "requirements_env.h"

namespace mm {

namespace {

constexpr std::string_view kKnownSettings = "env, env-cache-dir, mlflow-create-env, uv";

bool IsMlflowModel(const LoadSpec& spec) {
  return spec.config.parameters().count(std::string(kMlflowPyfuncParameter)) > 0;
}

// The MLflow model's own requirements when they make its environment
// (--mlflow-create-env); nullopt when they do not (the option is off, the
// model is not an MLflow model or has none).
StatusOr<std::optional<PackageRequirements>> OwnRequirements(
    const LoadSpec& spec, const PythonBackend::Options& options) {
  if (!options.mlflow_create_env || !IsMlflowModel(spec)) return std::nullopt;
  MM_ASSIGN_OR_RETURN(std::optional<MlflowRequirements> read,
                      ReadMlflowRequirements(spec.version_dir));
  if (!read) return std::nullopt;
  return PackageRequirements{std::move(read->packages), std::move(read->python),
                             std::move(read->source)};
}

// The model's environment (made first, for its own requirements, when it
// has not been).
StatusOr<PythonEnvironment> Environment(const LoadSpec& spec, const PythonBackend::Options& options,
                                        const std::string& label) {
  PythonEnvOptions env_options;
  env_options.default_env = options.default_env;
  env_options.cache_dir = options.cache_dir;
  env_options.embedded_version = std::string(EmbeddedPythonVersion());
  env_options.create_from_requirements = options.mlflow_create_env;
  env_options.uv = options.uv;
  env_options.python_executable = std::string(EmbeddedPythonExecutable());
  auto requirements = OwnRequirements(spec, options);
  if (!requirements.ok()) return requirements.status().WithContext(label);
  auto env = ResolvePythonEnvironment(spec.config, spec.model_dir, env_options,
                                      *requirements ? &**requirements : nullptr);
  if (!env.ok()) return env.status().WithContext(label);
  return env;
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
    } else if (key == "mlflow-create-env") {
      if (value != "true" && value != "false") {
        return InvalidArgument("python backend setting mlflow-create-env is '" + value +
                               "'; expected true or false");
      }
      options.mlflow_create_env = value == "true";
    } else if (key == "uv") {
      if (value.empty()) return InvalidArgument("python backend setting uv is empty");
      options.uv = std::filesystem::absolute(value, error);
    } else {
      return InvalidArgument("python backend setting '" + key + "' is unknown; expected one of " +
                             std::string(kKnownSettings));
    }
  }
  if (options.mlflow_create_env) {
    // Checked as the server starts, not at the first MLflow model's load.
    MM_ASSIGN_OR_RETURN(options.uv, FindUv(options.uv, options.default_env));
  }
  return std::unique_ptr<Backend>(new PythonBackend(std::move(options)));
}

Status PythonBackend::Prepare(const LoadSpec& spec,
                              const std::function<void(std::string)>& progress) {
  if (!options_.mlflow_create_env || !IsMlflowModel(spec)) return OkStatus();
  const std::string label =
      "model '" + spec.model_name + "' version " + std::to_string(spec.version);
  if (progress) progress("making its Python environment (--mlflow-create-env)");
  MM_ASSIGN_OR_RETURN(PythonEnvironment env, Environment(spec, options_, label));
  spdlog::info("{}: Python environment: {}", label, env.description);
  return OkStatus();
}

StatusOr<std::unique_ptr<LoadedModel>> PythonBackend::Load(const LoadSpec& spec) {
  const std::string label =
      "model '" + spec.model_name + "' version " + std::to_string(spec.version);
  // An MLflow pyfunc model (repository/mlflow/mlmodel.h) runs the built-in
  // model.py (an empty path), not a file of its folder.
  const bool mlflow = IsMlflowModel(spec);
  std::filesystem::path path;
  if (!mlflow) {
    MM_ASSIGN_OR_RETURN(path, ModelFilePath(spec, kDefaultModelFile, label));
  }
  MM_ASSIGN_OR_RETURN(PythonEnvironment env, Environment(spec, options_, label));
  spdlog::info("{}: Python environment: {}", label, env.description);
  MM_RETURN_IF_ERROR(StartPythonInterpreter());
  SetPythonLogModel(spec.model_name);
  return LoadPythonModel(spec, path, env.site_packages);
}

Status RegisterPythonBackend(BackendRegistry& registry) {
  return registry.Register({.name = std::string(PythonBackend::kName),
                            .platforms = {},
                            .default_model_file = std::string(PythonBackend::kDefaultModelFile),
                            .create = &PythonBackend::Create,
                            .process_only = true});
}

}  // namespace mm
