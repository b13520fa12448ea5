// The PyTorch backend: Triton's PyTorch (libtorch) backend for mmserve. A
// model is a TorchScript module saved by torch.jit.save,
// `<model>/<version>/model.pt` (or the config's default_model_filename),
// with config `platform: "pytorch_libtorch"` or `backend: "pytorch"`, loaded
// unchanged from a Triton repository (torch_backend.h says how inputs and
// outputs are matched, which parameters are read and what each load error
// says).
//
// The server holds only this door: the registration, and the loader of the
// plugin (libmmserve_pytorch.so) that links libtorch. The plugin is opened
// the first time a PyTorch model is resolved (the registration is lazy,
// registry.h), in the server or in the model's worker process, and stays
// open for the life of the process (libtorch cannot be unloaded).
//
// Settings (Triton's --backend-config=pytorch,<key>=<value>):
//   plugin   the plugin's path (default: libmmserve_pytorch.so in the
//            mmserve binary's folder)
// Every other key goes to the plugin, which refuses those it does not know.
#pragma once

#include <string_view>

#include "backends/registry.h"
#include "core/status.h"

namespace mm {

inline constexpr std::string_view kPytorchBackendName = "pytorch";
inline constexpr std::string_view kPytorchPlatform = "pytorch_libtorch";
inline constexpr std::string_view kPytorchDefaultModelFile = "model.pt";
inline constexpr std::string_view kPytorchPluginFile = "libmmserve_pytorch.so";

Status RegisterPytorchBackend(BackendRegistry& registry);

}  // namespace mm
