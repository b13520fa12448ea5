// The backends' flags: Triton's --backend-config=<backend>,<key>=<value>,
// and --python-env PATH (the python backend's `env`), turned into each
// backend's BackendSettings (registry.h).
//
// Worker processes create their model's backend with the same settings: the
// server hands them over in the environment variable MMSERVE_BACKEND_CONFIG
// (as it does the log format), which WorkerMain decodes strictly. The
// encoding is one `<backend>,<key>=<value>` per line, which is why no part
// may hold a newline.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "backends/registry.h"
#include "core/status.h"

namespace CLI {
class App;
}

namespace mm {

inline constexpr char kBackendConfigEnv[] = "MMSERVE_BACKEND_CONFIG";

struct BackendFlags {
  std::vector<std::string> backend_config;  // each "<backend>,<key>=<value>"
  std::string python_env;                   // empty: none
  bool mlflow_create_env = false;           // --mlflow-create-env: python,mlflow-create-env=true
};

// Every backend's settings, by backend name.
using BackendSettingsByName = std::map<std::string, BackendSettings, std::less<>>;

// Registers --backend-config (repeatable) and --python-env into `flags`
// (which must outlive the parse).
void AddBackendFlags(CLI::App& app, BackendFlags& flags);

// The settings the flags say. INVALID_ARGUMENT naming the flag and the value
// for one that is not `<backend>,<key>=<value>` (a backend name of
// lowercase letters, digits and '_', a key that is not empty), that holds a
// newline, or that sets one key twice; --python-env is python,env=PATH
// (given twice, with --backend-config=python,env=..., is an error too).
StatusOr<BackendSettingsByName> ParseBackendFlags(const BackendFlags& flags);

// Configures `registry` with `settings` (INVALID_ARGUMENT for a backend it
// does not have, naming the flag).
Status ApplyBackendSettings(const BackendSettingsByName& settings, BackendRegistry& registry);

// The settings as MMSERVE_BACKEND_CONFIG carries them, and back. Decoding
// takes exactly what encoding writes: INVALID_ARGUMENT naming the line
// otherwise.
std::string EncodeBackendSettings(const BackendSettingsByName& settings);
StatusOr<BackendSettingsByName> DecodeBackendSettings(std::string_view encoded);

// Server side: parses the flags, configures `registry`, and sets
// MMSERVE_BACKEND_CONFIG for the worker processes to come (unset when there
// are no settings). Worker side: reads MMSERVE_BACKEND_CONFIG (absent: no
// settings) and configures `registry`.
Status ConfigureBackendsFromFlags(const BackendFlags& flags, BackendRegistry& registry);
Status ConfigureBackendsFromEnvironment(BackendRegistry& registry);

}  // namespace mm
