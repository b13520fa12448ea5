// Inside the PyTorch plugin: the Backend that loads TorchScript modules with
// libtorch (pytorch_backend.h is the server's side).
#pragma once

#include <memory>

#include "backends/backend.h"
#include "backends/registry.h"
#include "core/status.h"

namespace mm {

class TorchBackend final : public Backend {
 public:
  static StatusOr<std::unique_ptr<Backend>> Create(const BackendSettings& settings);

  StatusOr<std::unique_ptr<LoadedModel>> Load(const LoadSpec& spec) override;
};

}  // namespace mm
