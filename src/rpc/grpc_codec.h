// Pure conversions between the KServe v2 gRPC messages and the core's
// InferRequest / InferResponse. No I/O.
#pragma once

#include "core/infer_request.h"
#include "core/status.h"
#include "grpc_service.pb.h"

namespace mm {

// Decodes `msg`. Input tensors from raw_input_contents and from typed contents
// whose layout matches the tensor (FP32, INT32, INT64, ...) are views into
// `msg`, which must outlive the request; narrower types (INT8, UINT16, ...)
// and BYTES are converted into buffers the tensors own.
// INVALID_ARGUMENT naming the input on any inconsistency.
StatusOr<InferRequest> DecodeGrpcInferRequest(const inference::ModelInferRequest& msg);

// Fills `out` from `response`; outputs go to raw_output_contents, as Triton does
// (an output written to shared memory has an empty entry and its parameters).
void EncodeGrpcInferResponse(const InferResponse& response, inference::ModelInferResponse* out);

}  // namespace mm
