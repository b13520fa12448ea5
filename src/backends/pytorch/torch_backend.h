// Inside the PyTorch plugin: the Backend that loads TorchScript modules with
// libtorch (pytorch_backend.h is the server's side).
//
// Load, on a loader thread:
//  1. the file: the config's default_model_filename or model.pt, inside the
//     version folder, checked by CheckRepositoryFile before libtorch reads it;
//  2. the parameters (torch_parameters.h), and the instances' places
//     (torch_device.h: KIND_GPU without CUDA is refused here, before the file
//     is read);
//  3. the file opened once (torch_archive.h), then torch::jit::load of that
//     open file on the first instance's device, and eval(). Loading runs the
//     archive's code: the operators that reach outside the model (files,
//     other processes) were removed from libtorch when the backend was
//     created (torch_sandbox.h), so a module calling one, however spelled,
//     fails to load, and the loaded functions are searched for them once
//     more (torch_graph.h);
//  4. the config against forward (torch_signature.h): a config is required,
//     since TorchScript carries no shapes; errors show forward's signature;
//  5. one module per instance, or one per device with ENABLE_WEIGHT_SHARING.
// Every error names the model, its version and the file; libtorch's own
// reason is kept ("PytorchStreamReader failed ...", "Attempted to read a
// PyTorch file with version 99 ..." with a hint that the file comes from a
// newer PyTorch than this server's libtorch).
//
// LoadedModel::inline_safe is true only when forward's inlined graph has no
// loop, fork or opaque call (torch_graph.h).
//
// Process-wide settings: INTER_OP_THREAD_COUNT can be set once per process
// (libtorch's rule): the first model that names it sets it; a later model
// naming another value gets a warning with the value in force. When no model
// has set it by the time a model that forks loads, it is set to 1 (the
// execution slots are the server's parallelism).
//
// Thread-safety: Load may run concurrently for different models.
#pragma once

#include <memory>

#include "backends/backend.h"
#include "backends/registry.h"
#include "core/status.h"

namespace mm {

class TorchBackend final : public Backend {
 public:
  // Settings (--backend-config=pytorch,<key>=<value>): none yet; an unknown
  // key is INVALID_ARGUMENT naming it. Never throws.
  static StatusOr<std::unique_ptr<Backend>> Create(const BackendSettings& settings);

  // Never throws.
  StatusOr<std::unique_ptr<LoadedModel>> Load(const LoadSpec& spec) override;
};

}  // namespace mm
