#include "backends/pytorch/torch_device.h"

#include <c10/core/CachingDeviceAllocator.h>
#include <dlfcn.h>
#include <spdlog/spdlog.h>
#include <torch/cuda.h>

#include <filesystem>
#include <mutex>

namespace mm {

namespace {

// The folder libtorch_cpu.so was loaded from (libtorch_cuda.so lies beside it).
std::filesystem::path TorchLibraryDir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&torch::cuda::device_count), &info) == 0 ||
      info.dli_fname == nullptr) {
    return {};
  }
  return std::filesystem::path(info.dli_fname).parent_path();
}

// Empty when libtorch_cuda.so is open, else why it is not. Opened once, never
// closed (libtorch cannot be unloaded).
const std::string& OpenCudaLibrary() {
  static const std::string error = [] {
    const std::filesystem::path path = TorchLibraryDir() / "libtorch_cuda.so";
    if (dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL | RTLD_NODELETE) != nullptr) {
      spdlog::info("PyTorch backend: opened {}", path.string());
      return std::string();
    }
    const char* why = dlerror();
    return std::string(why != nullptr ? why : "cannot open " + path.string());
  }();
  return error;
}

}  // namespace

StatusOr<int> CudaDeviceCount() {
  const std::string& error = OpenCudaLibrary();
  if (!error.empty())
    return Unavailable("this server's libtorch has no CUDA libraries (" + error + ")");
  int count = 0;
  try {
    count = static_cast<int>(torch::cuda::device_count());
  } catch (const std::exception& e) {
    return Unavailable(std::string("libtorch cannot count the CUDA devices (") + e.what() + ")");
  }
  if (count <= 0) return Unavailable("no CUDA device is visible");
  return count;
}

StatusOr<std::vector<TorchPlacement>> PlaceInstances(const inference::ModelInstanceGroup& group) {
  if (group.count() < 0) {
    return InvalidArgument("instance_group '" + group.name() + "' has a negative count " +
                           std::to_string(group.count()));
  }
  const int count = group.count() == 0 ? 1 : group.count();
  std::vector<TorchPlacement> placements;
  switch (group.kind()) {
    case inference::ModelInstanceGroup::KIND_MODEL:
      // Where the file says: a module saved on a GPU needs libtorch's CUDA
      // half when it is there (without it, libtorch's load says why).
      (void)CudaDeviceCount();
      placements.assign(static_cast<size_t>(count), TorchPlacement{});
      return placements;
    case inference::ModelInstanceGroup::KIND_GPU: {
      auto devices = CudaDeviceCount();
      if (!devices.ok()) {
        return Unavailable("instance_group '" + group.name() + "' asks for KIND_GPU, but " +
                           devices.status().message() + "; use KIND_CPU");
      }
      std::vector<int> gpus(group.gpus().begin(), group.gpus().end());
      if (gpus.empty()) {
        for (int i = 0; i < *devices; ++i) gpus.push_back(i);
      }
      for (int gpu : gpus) {
        if (gpu < 0 || gpu >= *devices) {
          return InvalidArgument("instance_group '" + group.name() + "' names GPU " +
                                 std::to_string(gpu) + ", but " + std::to_string(*devices) +
                                 " CUDA device(s) are visible (ids 0.." +
                                 std::to_string(*devices - 1) + ")");
        }
        for (int i = 0; i < count; ++i) {
          placements.push_back(TorchPlacement{
              c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(gpu)), true});
        }
      }
      return placements;
    }
    default:  // KIND_CPU, KIND_AUTO
      placements.assign(static_cast<size_t>(count), TorchPlacement{c10::Device(c10::kCPU), false});
      return placements;
  }
}

void EmptyCudaCache() {
  if (!OpenCudaLibrary().empty()) return;
  try {
    c10::getDeviceAllocator(c10::DeviceType::CUDA)->emptyCache();
  } catch (const std::exception& e) {
    spdlog::warn("PyTorch backend: emptying the CUDA cache failed: {}", e.what());
  }
}

}  // namespace mm
