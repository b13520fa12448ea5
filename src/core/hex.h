// Bytes as lower-case hexadecimal ("3f2a..."), two digits a byte: digests in
// names, messages and comparisons with S3's ETags.
#pragma once

#include <cstddef>
#include <string>

namespace mm {

inline std::string LowerHex(const unsigned char* data, size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * size);
  for (size_t i = 0; i < size; ++i) {
    out.push_back(kHex[data[i] >> 4]);
    out.push_back(kHex[data[i] & 15]);
  }
  return out;
}

}  // namespace mm
