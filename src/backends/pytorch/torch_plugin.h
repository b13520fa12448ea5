// What the PyTorch plugin (libmmserve_pytorch.so) exports to the server that
// opens it: one C symbol returning the plugin's entry points. The plugin is
// built from the same tree as the server, against the same headers; the
// version below changes whenever the entry points' types do, and the server
// refuses a plugin of another version (a stale build, another checkout's
// plugin on the path) instead of calling into it.
#pragma once

#include <memory>

#include "backends/backend.h"
#include "backends/registry.h"
#include "core/status.h"

namespace mm {

inline constexpr int kTorchPluginVersion = 1;

struct TorchPluginEntry {
  int version = 0;  // kTorchPluginVersion of the plugin's build
  // Creates the backend with its settings (the loader's own keys removed).
  StatusOr<std::unique_ptr<Backend>> (*create)(const BackendSettings& settings) = nullptr;
};

}  // namespace mm

// The symbol the server looks up with dlsym.
inline constexpr char kTorchPluginSymbol[] = "mmserve_pytorch_plugin";
extern "C" const mm::TorchPluginEntry* mmserve_pytorch_plugin();
