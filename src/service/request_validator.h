// Checks an InferRequest against a model's complete config before anything is
// queued: every input known, present once, of the right datatype, shape and
// byte size; every requested output known. Transport-agnostic, so HTTP and
// gRPC reject bad requests with the same words.
#pragma once

#include "core/infer_request.h"
#include "core/status.h"
#include "model_config.pb.h"

namespace mm {

// INVALID_ARGUMENT with a message such as
// "input 'x': expected FP32 [?,4], got INT64 [2,3]" when `request` does not fit.
Status ValidateRequest(const inference::ModelConfig& config, const InferRequest& request);

}  // namespace mm
