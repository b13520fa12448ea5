// The ONNX Runtime backend: loads <version_dir>/model.onnx (or the config's
// default_model_filename) into one Ort::Session per instance, on the CPU.
//
// Load auto-completes the config from the model's inputs and outputs (see
// backends/auto_complete.h) and sets platform "onnxruntime_onnx", backend
// "onnxruntime". Config `parameters` it reads (Triton's names):
//   intra_op_thread_count     threads one Run may use       (default Options)
//   inter_op_thread_count     threads across graph branches (default Options)
//   graph_optimization_level  disable | basic | extended | all (default all)
// Errors from ONNX Runtime never escape as exceptions: they become a Status
// naming the model (INVALID_ARGUMENT for a bad model or input, INTERNAL else).
//
// Execute borrows request inputs without copying when they are aligned to
// their element size (copies them otherwise). Small outputs whose shapes the
// graph declares in terms of its inputs' are allocated by the instance and
// written by ONNX Runtime; others point into the values ONNX Runtime
// allocated; either way Tensor::owner keeps them alive (ort_instance.h).
// BYTES tensors are converted to and from ONNX string tensors.
//
// Thread-safety: Create and Load may be called concurrently. Each instance
// runs one request at a time (backend.h); different instances run in parallel.
#pragma once

#include <memory>
#include <string_view>

#include "backends/backend.h"

namespace mm {

class BackendRegistry;

class OnnxRuntimeBackend final : public Backend {
 public:
  // Its names in the registry (registry.h) and the model file it loads.
  static constexpr std::string_view kName = "onnxruntime";
  static constexpr std::string_view kPlatform = "onnxruntime_onnx";
  static constexpr std::string_view kDefaultModelFile = "model.onnx";

  struct Options {
    // Defaults when a config sets no thread counts. 1 suits a shared server:
    // parallelism comes from running many instances and models at once, not
    // from one request taking every core. Raise per model for latency.
    int intra_op_threads = 1;
    int inter_op_threads = 1;
  };

  // Fails (INTERNAL) only when the process-wide Ort::Env cannot be created.
  static StatusOr<std::unique_ptr<Backend>> Create(const Options& options);

  StatusOr<std::unique_ptr<LoadedModel>> Load(const LoadSpec& spec) override;

 private:
  explicit OnnxRuntimeBackend(const Options& options) : options_(options) {}

  const Options options_;
};

// Registers the backend above under its names, created with default Options
// (mmserve_backend() in this folder's CMakeLists.txt calls it).
Status RegisterOnnxRuntimeBackend(BackendRegistry& registry);

}  // namespace mm
