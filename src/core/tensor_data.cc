#include "core/tensor_data.h"

#include <string>

#include "core/bytes_tensor.h"

namespace mm {

Status CheckTensorData(DataType dtype, std::span<const int64_t> shape, int64_t count,
                       std::span<const std::byte> data, std::string_view what) {
  if (dtype == DataType::kBytes) return CheckBytesTensor(data, count, what);
  const uint64_t elem = DataTypeSize(dtype);
  const uint64_t n = static_cast<uint64_t>(count);
  if (elem == 0 || n > data.size() / elem || n * elem != data.size()) {
    const std::string need = elem == 0                 ? "a known element size"
                             : n > ~uint64_t{0} / elem ? "more than 2^64 bytes"
                                                       : std::to_string(n * elem) + " bytes";
    return InvalidArgument(std::string(what) + ": shape " + ShapeToString(shape) + " of " +
                           std::string(DataTypeName(dtype)) + " needs " + need + ", got " +
                           std::to_string(data.size()));
  }
  if (dtype == DataType::kBool) {
    // One pass that compilers vectorize; the element is looked for only on failure.
    const auto* p = reinterpret_cast<const uint8_t*>(data.data());
    uint8_t high = 0;
    for (size_t i = 0; i < data.size(); ++i) high |= p[i];
    if (high > 1) {
      for (size_t i = 0; i < data.size(); ++i) {
        if (p[i] > 1) {
          return InvalidArgument(std::string(what) + ": BOOL element " + std::to_string(i) +
                                 " is " + std::to_string(p[i]) + ", expected 0 or 1");
        }
      }
    }
  }
  return OkStatus();
}

}  // namespace mm
