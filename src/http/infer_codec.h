// The KServe v2 inference body over HTTP, with Triton's binary tensor data
// extension: decoding `POST /v2/models/{m}[/versions/{v}]/infer` bodies into an
// InferRequest and encoding an InferResponse back. Pure functions, no I/O;
// safe to call concurrently from any number of threads.
//
// Body layout: a JSON header, optionally followed by a binary section when the
// request carries `Inference-Header-Content-Length: N` (the first N bytes are
// the JSON). Inputs with `parameters.binary_data_size` take consecutive slices
// of the binary section, in input order; the others carry JSON `data`.
//
// This header is the codec's one door; its two halves are implemented apart,
// infer_decoder.cc (requests) and infer_encoder.cc (responses), and share only
// HttpResponseFormat, which the decoder fills and the encoder reads.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/infer_request.h"
#include "core/status.h"

namespace mm {

// simdjson reads up to this many bytes past the JSON header. When the body's
// capacity() reaches header length + kRequestBodyPadding (reserve it when
// reading the body), the header is parsed in place; otherwise it is copied once
// into the parser's padded buffer.
inline constexpr size_t kRequestBodyPadding = 64;

// How the response to a request is to be written.
struct HttpResponseFormat {
  // Request-level default: `parameters.binary_data_output`.
  bool binary_data_output = false;
  // Requested outputs whose own `parameters.binary_data` overrides the default.
  std::vector<std::pair<std::string, bool>> per_output_binary;

  // Whether output `name` goes in the binary section.
  bool IsBinary(std::string_view name) const;
};

struct DecodedInferRequest {
  InferRequest request;
  HttpResponseFormat format;
};

// Decodes an inference request body. `header_length` is the value of
// Inference-Header-Content-Length (nullopt: the whole body is JSON).
//
// On success:
//  - model_name/model_version are left empty: the router fills them in.
//  - Binary inputs are views into `*body` (zero-copy, possibly unaligned: read
//    them with memcpy or check alignment before reinterpreting); their `owner`
//    and `request.body` both hold `body`.
//  - JSON inputs own their bytes (`owner` is a ByteBuffer, or a std::string
//    holding the serialized form for BYTES). FP16/BF16 are rounded to nearest
//    even from the JSON number; the strings "NaN", "Infinity", "-Infinity" are
//    accepted for floating-point types.
//  - Transport-only parameters (binary_data_output, binary_data, binary_data_size,
//    class_count 0) are consumed into `format` and not passed on; every other
//    request and output parameter is kept.
// Errors: INVALID_ARGUMENT naming the input and, for data, the element index;
// UNIMPLEMENTED for a non-zero `class_count` (classification extension).
StatusOr<DecodedInferRequest> DecodeInferRequest(std::shared_ptr<const std::string> body,
                                                 std::optional<size_t> header_length);

// Encodes `r`. `json_out` and `binary_chunks_out` are cleared first (keep them
// across calls to reuse their capacity). The response body is `json_out`
// followed by the chunks in order, and Inference-Header-Content-Length is
// json_out.size() when there is at least one chunk. There is one chunk per
// binary output, in output order (possibly empty); chunks are views into the
// outputs' data, so `r` must outlive the write.
//
// Floating-point NaN/Inf are written as the JSON strings "NaN", "Infinity",
// "-Infinity". Errors (both outputs left cleared):
//  - INVALID_ARGUMENT: a BYTES output to be written as JSON holds an element
//    that is not valid UTF-8 (JSON cannot carry it; the client can ask for the
//    output with binary_data: true).
//  - INTERNAL: an output whose data size does not match its datatype and shape.
Status EncodeInferResponse(const InferResponse& r, const HttpResponseFormat& fmt,
                           std::string& json_out,
                           std::vector<std::span<const std::byte>>& binary_chunks_out);

// Writes {"error":"<message>"} into `json_out` (cleared first).
void EncodeError(std::string_view message, std::string& json_out);

}  // namespace mm
