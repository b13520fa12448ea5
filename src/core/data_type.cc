#include "core/data_type.h"

#include <iterator>

namespace mm {

namespace {
struct TypeRow {
  DataType type;
  std::string_view name;
  std::string_view config_name;
  size_t size;
};
constexpr TypeRow kTypes[] = {
    {DataType::kInvalid, "INVALID", "TYPE_INVALID", 0},
    {DataType::kBool, "BOOL", "TYPE_BOOL", 1},
    {DataType::kUint8, "UINT8", "TYPE_UINT8", 1},
    {DataType::kUint16, "UINT16", "TYPE_UINT16", 2},
    {DataType::kUint32, "UINT32", "TYPE_UINT32", 4},
    {DataType::kUint64, "UINT64", "TYPE_UINT64", 8},
    {DataType::kInt8, "INT8", "TYPE_INT8", 1},
    {DataType::kInt16, "INT16", "TYPE_INT16", 2},
    {DataType::kInt32, "INT32", "TYPE_INT32", 4},
    {DataType::kInt64, "INT64", "TYPE_INT64", 8},
    {DataType::kFp16, "FP16", "TYPE_FP16", 2},
    {DataType::kFp32, "FP32", "TYPE_FP32", 4},
    {DataType::kFp64, "FP64", "TYPE_FP64", 8},
    {DataType::kBytes, "BYTES", "TYPE_STRING", 0},
    {DataType::kBf16, "BF16", "TYPE_BF16", 2},
};

const TypeRow& Row(DataType type) {
  auto i = static_cast<size_t>(type);
  return i < std::size(kTypes) ? kTypes[i] : kTypes[0];
}
}  // namespace

std::string_view DataTypeName(DataType type) { return Row(type).name; }
std::string_view DataTypeConfigName(DataType type) { return Row(type).config_name; }
size_t DataTypeSize(DataType type) { return Row(type).size; }

std::optional<DataType> DataTypeFromName(std::string_view name) {
  for (size_t i = 1; i < std::size(kTypes); ++i) {
    if (kTypes[i].name == name) return kTypes[i].type;
  }
  return std::nullopt;
}

}  // namespace mm
