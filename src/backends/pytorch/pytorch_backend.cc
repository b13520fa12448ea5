#include "backends/pytorch/pytorch_backend.h"

#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include "backends/pytorch/torch_plugin.h"

namespace mm {

namespace {

// The folder of the running mmserve binary (a worker process runs the
// server's binary, so it finds the same plugin).
std::filesystem::path ExecutableDir() {
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path() : exe.parent_path();
}

// Opens the plugin once per process: libtorch cannot be unloaded, so the
// handle is never closed, and a second backend (another registry, in tests)
// shares it.
StatusOr<const TorchPluginEntry*> OpenPlugin(const std::filesystem::path& path) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (handle == nullptr) {
    const char* error = dlerror();
    return Unavailable("cannot open the PyTorch plugin '" + path.string() +
                       "': " + (error ? error : "unknown error") +
                       " (build it with the server, MMSERVE_BACKEND_PYTORCH=ON, or name it with "
                       "--backend-config=pytorch,plugin=PATH)");
  }
  auto* entry_point =
      reinterpret_cast<const TorchPluginEntry* (*)()>(dlsym(handle, kTorchPluginSymbol));
  if (entry_point == nullptr) {
    return Unavailable("'" + path.string() + "' is not a PyTorch plugin of mmserve: it has no " +
                       kTorchPluginSymbol);
  }
  const TorchPluginEntry* entry = entry_point();
  if (entry == nullptr || entry->version != kTorchPluginVersion || entry->create == nullptr) {
    return Unavailable("the PyTorch plugin '" + path.string() + "' is of version " +
                       std::to_string(entry ? entry->version : 0) + ", this server needs " +
                       std::to_string(kTorchPluginVersion) + ": rebuild it with the server");
  }
  return entry;
}

StatusOr<std::unique_ptr<Backend>> CreateFromPlugin(const BackendSettings& settings) {
  BackendSettings rest = settings;
  std::filesystem::path path;
  if (auto it = rest.find("plugin"); it != rest.end()) {
    path = it->second;
    rest.erase(it);
  } else {
    path = ExecutableDir() / kPytorchPluginFile;
  }
  MM_ASSIGN_OR_RETURN(const TorchPluginEntry* entry, OpenPlugin(path));
  return entry->create(rest);
}

}  // namespace

Status RegisterPytorchBackend(BackendRegistry& registry) {
  return registry.Register({.name = std::string(kPytorchBackendName),
                            .platforms = {std::string(kPytorchPlatform)},
                            .default_model_file = std::string(kPytorchDefaultModelFile),
                            .create = &CreateFromPlugin,
                            .lazy = true});
}

}  // namespace mm
