#include "backends/pytorch/torch_backend.h"

#include <torch/script.h>

#include <string>

namespace mm {

StatusOr<std::unique_ptr<Backend>> TorchBackend::Create(const BackendSettings& settings) {
  for (const auto& [key, value] : settings) {
    return InvalidArgument("unknown setting '" + key + "'");
  }
  return std::unique_ptr<Backend>(new TorchBackend());
}

StatusOr<std::unique_ptr<LoadedModel>> TorchBackend::Load(const LoadSpec& spec) {
  try {
    torch::jit::Module module = torch::jit::load((spec.version_dir / "model.pt").string());
    (void)module;
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("cannot load: ") + e.what());
  }
  return Unimplemented("model '" + spec.model_name + "': the PyTorch backend is not written yet");
}

}  // namespace mm
