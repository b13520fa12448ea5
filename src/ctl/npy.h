// Reading NumPy's .npy files (format versions 1, 2 and 3) into a tensor for
// the binary tensor extension: the KServe datatype, the shape and the raw
// little-endian element bytes, as `numpy.save` wrote them.
//
// Accepted dtypes: <f2 <f4 <f8, <i1|i1 <i2 <i4 <i8, <u1|u1 <u2 <u4 <u8, |b1
// (FP16 FP32 FP64 INT8..INT64 UINT8..UINT64 BOOL), C order only. Anything else
// (big-endian, Fortran order, object, string or structured dtypes, a size
// that does not match the shape) is an INVALID_ARGUMENT naming the file and
// saying what was expected.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace mm {

struct NpyArray {
  std::string datatype;        // KServe name: "FP32"
  std::vector<int64_t> shape;  // () is a scalar: an empty shape
  std::string data;            // element bytes, C order, little-endian
};

// Parses the contents of a .npy file; `file` names it in messages.
StatusOr<NpyArray> ParseNpy(std::string_view contents, std::string_view file);

// Reads and parses the file at `path`.
StatusOr<NpyArray> ReadNpyFile(const std::string& path);

}  // namespace mm
