#include "core/shape.h"

#include <limits>

namespace mm {

StatusOr<int64_t> ElementCount(std::span<const int64_t> shape, std::string_view what) {
  int64_t count = 1;
  for (int64_t d : shape) {
    if (d < 0) {
      return InvalidArgument(std::string(what) + ": shape " + ShapeToString(shape) +
                             " has a negative dimension");
    }
    if (d != 0 && count > std::numeric_limits<int64_t>::max() / d) {
      return InvalidArgument(std::string(what) + ": shape " + ShapeToString(shape) +
                             " has more elements than fit in 64 bits");
    }
    count *= d;
  }
  return count;
}

std::string ShapeToString(std::span<const int64_t> shape, bool wildcard) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ',';
    if (wildcard && shape[i] < 0) {
      s += '?';
    } else {
      s += std::to_string(shape[i]);
    }
  }
  s += ']';
  return s;
}

bool ShapeMatches(std::span<const int64_t> dims, std::span<const int64_t> shape) {
  if (dims.size() != shape.size()) return false;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] >= 0 && dims[i] != shape[i]) return false;
  }
  return true;
}

}  // namespace mm
