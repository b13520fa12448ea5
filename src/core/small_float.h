// 16-bit floats as the wire and the engines carry them (IEEE binary16 and
// bfloat16), both ways: widened exactly to float (codecs, and anyone reading
// tensor values: drift detection), and narrowed from double, rounding to
// nearest with ties to even (codecs reading JSON numbers, warm-up data).
// Header-only and branch-light: these run per tensor element.
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

namespace small_float_internal {

// IEEE binary format with `kExp` exponent and `kMant` mantissa bits, held in uint16.
template <int kExp, int kMant>
struct SmallFloat {
  static constexpr int kBias = (1 << (kExp - 1)) - 1;
  static constexpr uint16_t kExpMask = ((1u << kExp) - 1) << kMant;

  // Rounds `d` to nearest, ties to even. Sets `overflow` when a finite `d`
  // rounds to infinity.
  static uint16_t FromDouble(double d, bool& overflow) {
    overflow = false;
    const uint64_t bits = std::bit_cast<uint64_t>(d);
    const uint16_t sign = static_cast<uint16_t>((bits >> 63) << (kExp + kMant));
    const int exp_field = static_cast<int>((bits >> 52) & 0x7FF);
    const uint64_t frac = bits & ((uint64_t{1} << 52) - 1);
    if (exp_field == 0x7FF) {  // Inf or NaN
      return sign | kExpMask | (frac != 0 ? (1u << (kMant - 1)) : 0u);
    }
    if (exp_field == 0) return sign;  // zero or a double subnormal: far below our range
    const int e = exp_field - 1023;
    const uint64_t m = frac | (uint64_t{1} << 52);  // 53 significant bits
    constexpr int kEmin = 1 - kBias;
    if (e > kBias) {
      overflow = true;
      return sign | kExpMask;
    }
    uint32_t base;  // exponent and truncated mantissa, contiguous so a carry rounds up
    int shift;
    if (e >= kEmin) {
      shift = 52 - kMant;
      base = (static_cast<uint32_t>(e + kBias) << kMant) |
             static_cast<uint32_t>((m >> shift) & ((1u << kMant) - 1));
    } else {
      shift = 52 - kMant + (kEmin - e);
      if (shift > 54) return sign;  // below half the smallest subnormal
      base = static_cast<uint32_t>(m >> shift);
    }
    const uint64_t half = uint64_t{1} << (shift - 1);
    const uint64_t rest = m & ((uint64_t{1} << shift) - 1);
    if (rest > half || (rest == half && (base & 1))) ++base;
    if ((base & kExpMask) == kExpMask) overflow = true;
    return sign | static_cast<uint16_t>(base);
  }
};

}  // namespace small_float_internal

// `d` as IEEE binary16, rounded to nearest, ties to even (once, from the
// double: no double rounding through float). Subnormal results are kept;
// what is below half the smallest subnormal becomes a signed zero. NaN stays
// a (quiet) NaN, infinities stay infinities. `overflow` is set when a finite
// `d` rounds to infinity (|d| >= 65520), and cleared otherwise.
inline uint16_t DoubleToHalf(double d, bool& overflow) {
  return small_float_internal::SmallFloat<5, 10>::FromDouble(d, overflow);
}
inline uint16_t DoubleToHalf(double d) {
  bool overflow;
  return DoubleToHalf(d, overflow);
}

// `d` as bfloat16, under the same rules as DoubleToHalf (a finite `d`
// overflows from (2 - 2^-8) * 2^127, about 3.3962e38, up).
inline uint16_t DoubleToBf16(double d, bool& overflow) {
  return small_float_internal::SmallFloat<8, 7>::FromDouble(d, overflow);
}
inline uint16_t DoubleToBf16(double d) {
  bool overflow;
  return DoubleToBf16(d, overflow);
}

}  // namespace mm
