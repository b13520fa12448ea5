// OrtInstance: one ONNX Runtime session serving a model's requests, one at
// a time (ModelInstance, backends/backend.h).
//
// Inputs are views over the request's bytes, copied only when misaligned
// for their element type. Outputs go one of two ways:
//   - planned (output_plan.h): every requested output's shape follows from
//     the inputs' as the graph declares it, and they are small; the instance
//     allocates them in one buffer and ONNX Runtime writes into it. If ONNX
//     Runtime refuses them (a declaration that is not what the graph
//     computes), the request runs again the other way, and the instance
//     stops planning for good.
//   - otherwise ONNX Runtime allocates them; the response's tensors point
//     into its values, which keep their session alive (a response may
//     outlive its model).
// BYTES tensors are converted to and from ONNX string tensors. Not a door:
// this folder only.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <memory>
#include <string>

#include "backends/backend.h"

namespace mm::ort {

// `unbounded`: the graph's run time depends on its inputs' values, so a run
// says it may last (core/blocking_wait.h). May throw Ort::Exception.
std::unique_ptr<ModelInstance> MakeOrtInstance(std::string model_name,
                                               std::shared_ptr<Ort::Session> session,
                                               const inference::ModelConfig& config,
                                               bool unbounded);

}  // namespace mm::ort
