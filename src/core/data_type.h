// Tensor element types, named as the KServe v2 protocol names them ("FP32").
//
// The numeric values equal Triton's model_config.proto DataType enum, so a
// config's TYPE_* converts by value. BYTES tensors are held serialized as
// Triton's binary extension lays them out: each element a 4-byte little-endian
// length followed by its bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace mm {

enum class DataType : int {
  kInvalid = 0,
  kBool = 1,
  kUint8 = 2,
  kUint16 = 3,
  kUint32 = 4,
  kUint64 = 5,
  kInt8 = 6,
  kInt16 = 7,
  kInt32 = 8,
  kInt64 = 9,
  kFp16 = 10,
  kFp32 = 11,
  kFp64 = 12,
  kBytes = 13,
  kBf16 = 14,
};

// "FP32", "BYTES", ... ("INVALID" for kInvalid).
std::string_view DataTypeName(DataType type);
// Parses a KServe name ("FP32"); nullopt when unknown.
std::optional<DataType> DataTypeFromName(std::string_view name);
// Size of one element in bytes; 0 for BYTES (variable) and kInvalid.
size_t DataTypeSize(DataType type);
// Triton config spelling: "TYPE_FP32", "TYPE_STRING".
std::string_view DataTypeConfigName(DataType type);

}  // namespace mm
