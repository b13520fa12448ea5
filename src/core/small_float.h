// 16-bit floats as the wire and the engines carry them (IEEE binary16 and
// bfloat16), widened exactly to float: for codecs and for anyone reading
// tensor values (drift detection).
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace mm {

// IEEE 754 binary16 to float, exactly (subnormals, infinities and NaN kept).
inline float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h >> 15) << 31;
  const uint32_t exp = (h >> 10) & 0x1F;
  const uint32_t mant = h & 0x3FF;
  if (exp == 0) {
    const float v = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -v : v;
  }
  if (exp == 0x1F) return std::bit_cast<float>(sign | 0x7F800000u | (mant << 13));
  return std::bit_cast<float>(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

// bfloat16 to float, exactly (it is a float's upper half).
inline float Bf16ToFloat(uint16_t b) {
  return std::bit_cast<float>(static_cast<uint32_t>(b) << 16);
}

}  // namespace mm
