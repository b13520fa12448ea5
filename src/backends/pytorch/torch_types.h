// mmserve's data types and libtorch's scalar types, one to one. Every
// fixed-size DataType has a c10::ScalarType of the same size and layout
// (FP16 is kHalf, BF16 is kBFloat16, UINT16..64 are kUInt16..64), so a
// tensor's bytes pass between the two unchanged: no conversion, bit-exact.
// BYTES has none: it travels as List[str] (torch_instance.h).
#pragma once

#include <c10/core/ScalarType.h>

#include <optional>
#include <string>

#include "core/data_type.h"

namespace mm {

// nullopt for BYTES and kInvalid.
std::optional<c10::ScalarType> ToTorchType(DataType type);
// nullopt for the scalar types mmserve has no DataType for (complex, float8, qint, ...).
std::optional<DataType> FromTorchType(c10::ScalarType type);
// How messages name a torch type: the DataType's config name when it has one
// ("TYPE_FP32"), else libtorch's own ("torch.complex64").
std::string TorchTypeLabel(c10::ScalarType type);

}  // namespace mm
