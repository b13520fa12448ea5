// Where an instance group's instances run. KIND_CPU and KIND_AUTO: the CPU.
// KIND_MODEL: where the module's tensors were saved (no device is forced).
// KIND_GPU: cuda:<id> for each of the group's gpus (all visible GPUs when it
// lists none), which needs libtorch's CUDA half: libtorch_cuda.so, opened
// from libtorch_cpu.so's folder the first time a KIND_GPU group loads. A
// server whose libtorch has no CUDA libraries, or a machine with no visible
// GPU, refuses the group, saying why and to use KIND_CPU.
//
// Thread-safety: every function may be called from any thread; the library
// is opened at most once per process.
#pragma once

#include <c10/core/Device.h>

#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "model_config.pb.h"

namespace mm {

struct TorchPlacement {
  std::optional<c10::Device> device;  // nullopt: KIND_MODEL, where the file says
  bool gpu = false;                   // a CUDA device (inputs copied there, outputs back)
};

// One placement per instance of `group`, in Triton's order (count instances
// on each listed GPU). INVALID_ARGUMENT for a negative count or a GPU id out of
// range; UNAVAILABLE for KIND_GPU without CUDA ("instance_group 'g' asks for
// KIND_GPU, but this server's libtorch has no CUDA libraries (...); use
// KIND_CPU").
StatusOr<std::vector<TorchPlacement>> PlaceInstances(const inference::ModelInstanceGroup& group);

// Opens libtorch_cuda.so once; then the number of visible CUDA devices, or
// the reason there is none usable ("this server's libtorch has no CUDA
// libraries (<dlerror>)" / "no CUDA device is visible").
StatusOr<int> CudaDeviceCount();

// Frees the CUDA caching allocator's unused blocks (ENABLE_CACHE_CLEANING);
// a no-op without CUDA.
void EmptyCudaCache();

}  // namespace mm
