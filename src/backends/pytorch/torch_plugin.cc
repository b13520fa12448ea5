// The plugin's one export (torch_plugin.h).
#include "backends/pytorch/torch_plugin.h"

#include "backends/pytorch/torch_backend.h"

extern "C" __attribute__((visibility("default"))) const mm::TorchPluginEntry*
mmserve_pytorch_plugin() {
  static const mm::TorchPluginEntry entry{.version = mm::kTorchPluginVersion,
                                          .create = &mm::TorchBackend::Create};
  return &entry;
}
