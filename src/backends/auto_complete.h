// Config auto-complete (Triton's term): merging the user's config with the
// tensor signature a backend reads from the model file.
//
// Framework-neutral and pure (no I/O), so any backend that can list its
// model's tensors uses it and it is tested without a runtime.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/data_type.h"
#include "core/shape.h"
#include "core/status.h"
#include "model_config.pb.h"

namespace mm {

// One input or output as the model file declares it. `dims` is the full
// shape, batch dimension included; -1 marks a dynamic (symbolic or unknown)
// dim.
struct ModelTensorSignature {
  std::string name;
  DataType dtype = DataType::kInvalid;
  Shape dims;
};

// The tensors a model file declares; `format` names the file in messages
// ("ONNX model").
struct ModelSignature {
  std::string format;
  std::vector<ModelTensorSignature> inputs;
  std::vector<ModelTensorSignature> outputs;
};

// Returns `user` completed against the model's signature:
//  - no inputs (outputs) in `user`: every model input (output), with dims
//    that exclude the batch dim when max_batch_size > 0;
//  - listed tensors: each must exist in the model, with the same data type
//    and rank (of `reshape` when set, plus the batch dim when batching),
//    and fixed dims that agree; a -1 in the config where the model is fixed
//    is tightened to the model's value; every model input must be listed;
//  - max_batch_size > 0: every model input and output must have a dynamic
//    first dim;
//  - empty name/platform/backend are filled from `model_name`, `platform`,
//    `backend`; no instance_group becomes one group of count 1.
// INVALID_ARGUMENT naming the model, the tensor and both sides otherwise
// ("model 'm' input 'x': config says TYPE_INT32 but the ONNX model has
// TYPE_FP32").
StatusOr<inference::ModelConfig> CompleteModelConfig(std::string_view model_name,
                                                     inference::ModelConfig user,
                                                     const ModelSignature& model,
                                                     std::string_view platform,
                                                     std::string_view backend);

}  // namespace mm
