// The one check of a tensor's bytes against its datatype and shape. Both
// transports' codecs call it on the bytes a request carries (HTTP binary
// data, gRPC raw_input_contents), and the service's validator calls it on
// every input (shared memory included), so every door refuses the same bytes
// with the same words, and a new datatype rule is written here once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "core/data_type.h"
#include "core/shape.h"
#include "core/status.h"

namespace mm {

// OK when `data` holds exactly the `count` elements of a `dtype` tensor of
// `shape` (count = ElementCount(shape), computed by the caller):
//  - a fixed-size datatype: count x its size bytes ("input 'x': shape [2] of
//    FP32 needs 8 bytes, got 6");
//  - BOOL, in addition: every byte 0 or 1 ("input 'x': BOOL element 2 is 2,
//    expected 0 or 1");
//  - BYTES: exactly `count` length-prefixed elements, nothing left over (the
//    messages of SplitBytesTensor).
// INVALID_ARGUMENT naming `what` otherwise. Allocates nothing on success.
Status CheckTensorData(DataType dtype, std::span<const int64_t> shape, int64_t count,
                       std::span<const std::byte> data, std::string_view what);

}  // namespace mm
