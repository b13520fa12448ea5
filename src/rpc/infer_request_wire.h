// Parsing a ModelInferRequest without copying its tensors.
//
// protobuf parses raw_input_contents (field 7, `repeated bytes`) into strings
// of its own: a 4 MiB tensor is copied once more after the transport has
// gathered the message. This parser walks the message's top-level fields,
// hands every field but the raw contents to protobuf, and returns the raw
// contents as views into the bytes they arrived in. Pure: no I/O, no state.
#pragma once

#include <string_view>
#include <vector>

#include "core/status.h"
#include "grpc_service.pb.h"

namespace mm {

// Parses a serialized inference.ModelInferRequest from `wire` into `msg`,
// except its raw_input_contents (field 7), which are returned in `raw` in
// order, so a big tensor is not copied.
//
// On success:
//  1. The result is what msg->ParseFromArray(wire) gives, with the raw
//     contents moved from `msg` to `raw`: `raw` holds one view per entry
//     protobuf would have put in raw_input_contents, in the same order, and
//     every other field (unknown fields and a field 7 sent with another wire
//     type, which protobuf keeps as an unknown field, included) is in `msg`.
//  2. Normally `raw`'s views point into `wire` and `msg` has no
//     raw_input_contents: keep `wire` alive while `raw` (or a tensor decoded
//     from it) is used.
//  3. Rarely — the message holds a group (wire types 3/4), which no KServe
//     client sends but protobuf accepts as an unknown field — the whole
//     message is parsed by protobuf, `msg` keeps its raw_input_contents and
//     `raw`'s views point into them: keep `msg` alive (and unchanged) too.
//     Keeping both alive, as a transport does for a request, covers both.
// Cost: no copy when the raw contents are the message's last fields, as
// every protobuf serializer writes them (fields in number order); otherwise
// the other fields (metadata, small) are copied once into one buffer.
//
// INVALID_ARGUMENT, with the words of the gRPC transport's parse error, when
// protobuf would refuse `wire` (or it is over INT_MAX bytes, which protobuf
// cannot parse); `msg` is cleared and `raw` emptied then. `msg` and `raw`
// are replaced, not merged into.
Status ParseModelInferRequestInPlace(std::string_view wire, inference::ModelInferRequest* msg,
                                     std::vector<std::string_view>* raw);

}  // namespace mm
