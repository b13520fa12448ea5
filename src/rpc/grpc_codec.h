// Pure conversions between the KServe v2 gRPC messages and the core's
// InferRequest / InferResponse. No I/O.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

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

// As above, with the raw contents taken from `raw_input_contents` (one per
// input not in shared memory, in input order) instead of from `msg`: what
// ParseModelInferRequestInPlace (rpc/infer_request_wire.h) returns. `msg`'s
// own raw_input_contents are ignored. Tensors from raw contents are views
// of the span's bytes, which must outlive the request (the span itself need
// not); the rules and the error messages are the one-argument form's.
StatusOr<InferRequest> DecodeGrpcInferRequest(const inference::ModelInferRequest& msg,
                                              std::span<const std::string_view> raw_input_contents);

// `message` serialized with map entries sorted by key, so that equal
// messages give equal bytes (protobuf's own map order varies).
std::string SerializeDeterministic(const google::protobuf::MessageLite& message);

// Fills `out` from `response`; outputs go to raw_output_contents, as Triton does
// (an output written to shared memory has an empty entry and its parameters).
void EncodeGrpcInferResponse(const InferResponse& response, inference::ModelInferResponse* out);

// A ModelInferResponse as one length-prefixed gRPC message whose output
// tensors are not copied. The bytes on the wire are `pieces` in order, each
// a range of `head` or an output tensor's bytes:
//   head: the 5-byte gRPC prefix (flag 0, the message's length big-endian),
//         the message without raw_output_contents, then each output's field
//         tag and length (raw_output_contents is the message's last field,
//         and protobuf writes fields in number order, so the message is
//         exactly that followed by each output's tag, length and bytes).
//   pieces: alternate head ranges and tensors; an empty tensor has no piece.
// Pieces refer to `head` by offset, so the parts may be moved; tensor pieces
// point into the response's outputs (`response`, or whatever owns its
// tensors' bytes), which must outlive the parts.
struct GrpcResponseParts {
  struct Piece {
    bool in_head = false;             // true: head[head_offset, head_offset + size)
    size_t head_offset = 0;           // in_head only
    const std::byte* data = nullptr;  // !in_head: an output tensor's bytes
    size_t size = 0;
  };
  std::string head;
  std::vector<Piece> pieces;
  size_t total = 0;  // the bytes on the wire: the pieces' sizes summed

  // The bytes of `piece`, one of `pieces`.
  std::span<const std::byte> bytes(const Piece& piece) const {
    if (!piece.in_head) return {piece.data, piece.size};
    return {reinterpret_cast<const std::byte*>(head.data()) + piece.head_offset, piece.size};
  }
};

// The parts of `response`'s message, with the fields EncodeGrpcInferResponse
// fills, serialized deterministically (map entries sorted by key).
// RESOURCE_EXHAUSTED when the message would be over INT_MAX bytes, which no
// protobuf reader takes.
StatusOr<GrpcResponseParts> EncodeGrpcInferResponseParts(const InferResponse& response);

}  // namespace mm
