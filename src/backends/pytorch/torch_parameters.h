// A PyTorch model's config `parameters` (Triton's PyTorch backend keys,
// `parameters: { key: "INFERENCE_MODE" value: { string_value: "false" } }`),
// parsed into one struct. Pure: no libtorch call, no global state; applying
// them is the instance's and the backend's job (torch_instance.h,
// torch_backend.h).
//
// Values: booleans as Triton reads them (true/on/1, false/off/0, any case);
// thread counts as integers, where a value <= 0 keeps the default (Triton
// ignores those too). A value that does not parse fails the load naming the
// key and the value. An unknown key is not an error (the load goes on): it is
// returned in `warnings`, naming it and the keys that exist.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "model_config.pb.h"

namespace mm {

struct TorchParameters {
  // Per execution, on the executing thread.
  bool inference_mode = true;                // INFERENCE_MODE; false: NoGradGuard only
  bool disable_optimized_execution = false;  // DISABLE_OPTIMIZED_EXECUTION
  int intra_op_threads = 1;                  // INTRA_OP_THREAD_COUNT
  // Process-wide: set before each forward only when the model names them.
  std::optional<bool> enable_jit_executor;   // ENABLE_JIT_EXECUTOR
  std::optional<bool> enable_jit_profiling;  // ENABLE_JIT_PROFILING
  std::optional<bool> enable_tensor_fuser;   // ENABLE_TENSOR_FUSER
  bool disable_cudnn = false;                // DISABLE_CUDNN (GPU instances only)
  // Process-wide, once: the first model that sets it wins.
  std::optional<int> inter_op_threads;  // INTER_OP_THREAD_COUNT
  // Per instance.
  bool enable_cache_cleaning = false;  // ENABLE_CACHE_CLEANING (GPU instances only)
  bool enable_weight_sharing = false;  // ENABLE_WEIGHT_SHARING
  // One line per unknown key, for the load to log.
  std::vector<std::string> warnings;
};

// The largest thread count accepted (more is a typo, not a plan).
inline constexpr int kMaxTorchThreads = 1024;

// INVALID_ARGUMENT "parameter 'INFERENCE_MODE' must be a boolean (true/on/1 or
// false/off/0), got 'maybe'" for a bad value; the caller adds the model.
StatusOr<TorchParameters> ParseTorchParameters(const inference::ModelConfig& config);

// Every key ParseTorchParameters reads, comma-separated (for messages).
std::string KnownTorchParameters();

}  // namespace mm
