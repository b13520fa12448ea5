#include "backends/backend_flags.h"

#include <cstdlib>

#include <CLI/CLI.hpp>

namespace mm {
namespace {

bool IsBackendName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

// One "<backend>,<key>=<value>" into `out`; `what` names its origin.
Status AddSetting(std::string_view text, const std::string& what, BackendSettingsByName& out) {
  const std::string shown = what + " '" + std::string(text) + "'";
  if (text.find('\n') != std::string_view::npos || text.find('\r') != std::string_view::npos) {
    return InvalidArgument(shown +
                           " holds a line break; expected <backend>,<key>=<value> on one "
                           "line");
  }
  const size_t comma = text.find(',');
  const size_t eq = comma == std::string_view::npos ? comma : text.find('=', comma + 1);
  if (comma == std::string_view::npos || eq == std::string_view::npos) {
    return InvalidArgument(shown + ": expected <backend>,<key>=<value>, e.g. python,env=/opt/venv");
  }
  const std::string_view backend = text.substr(0, comma);
  const std::string_view key = text.substr(comma + 1, eq - comma - 1);
  if (!IsBackendName(backend)) {
    return InvalidArgument(shown + ": the backend name '" + std::string(backend) +
                           "' is not one; expected lowercase letters, digits and '_' before the "
                           "comma");
  }
  if (key.empty()) return InvalidArgument(shown + ": the key is empty; expected <key>=<value>");
  BackendSettings& settings = out[std::string(backend)];
  if (!settings.emplace(std::string(key), std::string(text.substr(eq + 1))).second) {
    return InvalidArgument(shown + ": backend '" + std::string(backend) + "' key '" +
                           std::string(key) + "' is set twice; expected each key once");
  }
  return OkStatus();
}

}  // namespace

void AddBackendFlags(CLI::App& app, BackendFlags& flags) {
  app.add_option("--backend-config", flags.backend_config,
                 "A backend's setting, as Triton's: <backend>,<key>=<value> (repeatable). The "
                 "python backend knows env (as --python-env), env-cache-dir (where "
                 "EXECUTION_ENV_PATH archives unpack and environments are made; default "
                 "~/.cache/mmserve/python-envs), mlflow-create-env (as --mlflow-create-env) and uv")
      ->type_name("BACKEND,KEY=VALUE");
  app.add_option("--python-env", flags.python_env,
                 "The virtual environment whose packages Python models import (besides the "
                 "embedded Python's own); a model's EXECUTION_ENV_PATH parameter overrides it")
      ->type_name("PATH");
  app.add_flag("--mlflow-create-env", flags.mlflow_create_env,
               "An MLflow pyfunc model runs in a Python environment made from its own "
               "python_env.yaml / requirements.txt (by uv, wheels only, cached in the python "
               "backend's env-cache-dir) instead of --python-env");
}

StatusOr<BackendSettingsByName> ParseBackendFlags(const BackendFlags& flags) {
  BackendSettingsByName out;
  for (const std::string& value : flags.backend_config) {
    MM_RETURN_IF_ERROR(AddSetting(value, "--backend-config", out));
  }
  if (!flags.python_env.empty()) {
    MM_RETURN_IF_ERROR(AddSetting("python,env=" + flags.python_env, "--python-env", out)
                           .WithContext("--python-env and --backend-config=python,env=..."));
  }
  if (flags.mlflow_create_env) {
    MM_RETURN_IF_ERROR(
        AddSetting("python,mlflow-create-env=true", "--mlflow-create-env", out)
            .WithContext("--mlflow-create-env and --backend-config=python,mlflow-create-env=..."));
  }
  return out;
}

Status ApplyBackendSettings(const BackendSettingsByName& settings, BackendRegistry& registry) {
  for (const auto& [backend, values] : settings) {
    MM_RETURN_IF_ERROR(registry.Configure(backend, values).WithContext("--backend-config"));
  }
  return OkStatus();
}

std::string EncodeBackendSettings(const BackendSettingsByName& settings) {
  std::string out;
  for (const auto& [backend, values] : settings) {
    for (const auto& [key, value] : values) out += backend + "," + key + "=" + value + "\n";
  }
  return out;
}

StatusOr<BackendSettingsByName> DecodeBackendSettings(std::string_view encoded) {
  BackendSettingsByName out;
  size_t line = 0;
  while (!encoded.empty()) {
    ++line;
    const size_t end = encoded.find('\n');
    if (end == std::string_view::npos) {
      return InvalidArgument(std::string(kBackendConfigEnv) + " line " + std::to_string(line) +
                             " does not end with a line break");
    }
    MM_RETURN_IF_ERROR(AddSetting(encoded.substr(0, end),
                                  std::string(kBackendConfigEnv) + " line " + std::to_string(line),
                                  out));
    encoded.remove_prefix(end + 1);
  }
  return out;
}

Status ConfigureBackendsFromFlags(const BackendFlags& flags, BackendRegistry& registry) {
  MM_ASSIGN_OR_RETURN(BackendSettingsByName settings, ParseBackendFlags(flags));
  MM_RETURN_IF_ERROR(ApplyBackendSettings(settings, registry));
  if (settings.empty()) {
    ::unsetenv(kBackendConfigEnv);
  } else {
    ::setenv(kBackendConfigEnv, EncodeBackendSettings(settings).c_str(), 1);
  }
  return OkStatus();
}

Status ConfigureBackendsFromEnvironment(BackendRegistry& registry) {
  const char* encoded = std::getenv(kBackendConfigEnv);
  if (encoded == nullptr) return OkStatus();
  MM_ASSIGN_OR_RETURN(BackendSettingsByName settings, DecodeBackendSettings(encoded));
  return ApplyBackendSettings(settings, registry);
}

}  // namespace mm
