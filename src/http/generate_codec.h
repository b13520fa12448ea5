// Triton's generate extension (docs/protocol/extension_generate.md) as pure
// functions: a flat JSON request object becomes an InferRequest, and a
// response becomes a flat JSON object.
//
// Request: every key that names one of the model's inputs becomes that input
// (a JSON string, number or boolean is one element; an array, nested or not,
// its elements in order), of the input's config dtype, its shape the config's
// dims with each variable dim 1 except the last, which takes the elements
// left ([n] for dims [-1], [1, n] for a batched [-1]). The key "parameters"
// (an object) and every other key whose value is a string, number or boolean
// become request parameters. Anything else is INVALID_ARGUMENT saying which
// key was wrong and what was expected.
//
// Response: {"model_name":..., "model_version":..., <output>: value, ...},
// where an output of one element is a scalar, and of several a flat array
// (BYTES elements as strings; FP16/BF16 as numbers).
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "core/infer_request.h"
#include "core/status.h"
#include "service/inference_service.h"  // TensorMetadata

namespace mm {

// `body`: the request's JSON; `inputs`: the model's inputs (ModelMetadata,
// batch dim included when batched). The tensors own their bytes.
StatusOr<InferRequest> DecodeGenerateRequest(std::string_view body,
                                             std::span<const TensorMetadata> inputs);

// Appends the response object to `out`. INVALID_ARGUMENT for an output whose
// bytes do not match its dtype and shape.
Status EncodeGenerateResponse(const InferResponse& response, std::string& out);

// One Server-Sent Event carrying `json`: "data: <json>\n\n".
std::string SseEvent(std::string_view json);

// {"error":"message"}, as the generate endpoints write errors.
std::string GenerateErrorJson(const Status& status);

}  // namespace mm
