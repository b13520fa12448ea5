// One instance of a TorchScript model: runs forward on one request (a merged
// batch) at a time.
//
// Inputs are views of the request's bytes (torch::from_blob; no copy), except
// a misaligned input (copied into the instance's scratch buffer), an input of
// a model that writes into its inputs (copied: the request's bytes are the
// client's), a BYTES input (a List[str]), and inputs of a GPU instance (copied
// to the device). Outputs are views of the returned tensors (made contiguous,
// on the CPU) kept alive by Tensor::owner; an output that shares memory with
// an input or the scratch buffer is copied, since those are gone or reused
// after the response. List[str] outputs are serialized as BYTES.
//
// Per execution, on the executing thread: c10::InferenceMode (INFERENCE_MODE)
// and NoGradGuard, the graph executor's optimization switch
// (DISABLE_OPTIMIZED_EXECUTION, thread-local in libtorch), the intra-op thread
// count (INTRA_OP_THREAD_COUNT, when the thread's differs), and the
// process-wide JIT switches the model names.
//
// Errors: a forward that raises fails that request only, INTERNAL "model 'm':
// PyTorch execute failure: <message>" (bounded; the log has all of it). An
// output that does not match the config (missing, dtype, a 0-dim tensor, a
// first dimension that is not the batch size) is INTERNAL naming the output.
// No exception leaves Execute.
//
// Thread-safety: Execute is called by one thread at a time per instance;
// instances of one model may run concurrently, sharing a module
// (ENABLE_WEIGHT_SHARING), which libtorch allows for forward.
#pragma once

#include <torch/script.h>

#include <memory>
#include <string>

#include "backends/backend.h"
#include "backends/pytorch/torch_device.h"
#include "backends/pytorch/torch_parameters.h"
#include "backends/pytorch/torch_signature.h"
#include "model_config.pb.h"

namespace mm {

struct TorchInstanceOptions {
  std::string model_name;
  std::shared_ptr<torch::jit::Module> module;
  inference::ModelConfig config;  // complete
  TorchIoMap io;
  TorchParameters parameters;
  TorchPlacement placement;
  bool unbounded = false;      // a run's time is not bounded by its inputs' sizes
  bool writes_inputs = false;  // forward may write into its inputs
};

std::unique_ptr<ModelInstance> MakeTorchInstance(TorchInstanceOptions options);

// The longest part of an exception's text put in a response (the log has it all).
inline constexpr size_t kMaxTorchErrorBytes = 2048;

}  // namespace mm
