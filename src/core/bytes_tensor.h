// BYTES tensors in their serialized form: per element, a 4-byte little-endian
// length and then that many bytes (Triton's binary tensor layout).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace mm {

// Splits `data` into exactly `expected` elements (views into `data`).
// INVALID_ARGUMENT naming `what` when the layout is truncated, has bytes left
// over, or holds a different number of elements.
StatusOr<std::vector<std::string_view>> SplitBytesTensor(std::span<const std::byte> data,
                                                         int64_t expected, std::string_view what);

// SplitBytesTensor's check alone, allocating nothing.
Status CheckBytesTensor(std::span<const std::byte> data, int64_t expected, std::string_view what);

// Appends one element (length prefix + bytes) to `out`.
void AppendBytesElement(std::string_view element, std::string& out);

}  // namespace mm
