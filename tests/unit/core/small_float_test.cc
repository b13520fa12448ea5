#include "core/small_float.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

namespace mm {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(SmallFloatTest, HalfWidensExactly) {
  EXPECT_EQ(HalfToFloat(0x0000), 0.0f);
  EXPECT_TRUE(std::signbit(HalfToFloat(0x8000)));
  EXPECT_EQ(HalfToFloat(0x3C00), 1.0f);
  EXPECT_EQ(HalfToFloat(0xC000), -2.0f);
  EXPECT_EQ(HalfToFloat(0x7BFF), 65504.0f);
  EXPECT_EQ(HalfToFloat(0x0001), std::ldexp(1.0f, -24));     // smallest subnormal
  EXPECT_EQ(HalfToFloat(0x03FF), std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_EQ(HalfToFloat(0x0400), std::ldexp(1.0f, -14));     // smallest normal
  EXPECT_EQ(HalfToFloat(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(HalfToFloat(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7E00)));
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7C01)));  // a signalling payload is still NaN
}

TEST(SmallFloatTest, Bf16WidensExactly) {
  EXPECT_EQ(Bf16ToFloat(0x3F80), 1.0f);
  EXPECT_EQ(Bf16ToFloat(0xC000), -2.0f);
  EXPECT_EQ(Bf16ToFloat(0x3E80), 0.25f);
  EXPECT_EQ(Bf16ToFloat(0x0001), std::bit_cast<float>(0x00010000u));  // subnormal
  EXPECT_EQ(Bf16ToFloat(0x7F80), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(Bf16ToFloat(0x7FC0)));
}

// Every finite half (and both infinities) narrows back to its own bits.
TEST(SmallFloatTest, HalfRoundTripsEveryValue) {
  for (uint32_t h = 0; h <= 0xFFFF; ++h) {
    const auto bits = static_cast<uint16_t>(h);
    if ((bits & 0x7C00) == 0x7C00 && (bits & 0x3FF) != 0) continue;  // NaN: below
    bool overflow = true;
    EXPECT_EQ(DoubleToHalf(HalfToFloat(bits), overflow), bits) << std::hex << h;
    EXPECT_FALSE(overflow) << std::hex << h;
  }
}

TEST(SmallFloatTest, Bf16RoundTripsEveryValue) {
  for (uint32_t b = 0; b <= 0xFFFF; ++b) {
    const auto bits = static_cast<uint16_t>(b);
    if ((bits & 0x7F80) == 0x7F80 && (bits & 0x7F) != 0) continue;  // NaN: below
    bool overflow = true;
    EXPECT_EQ(DoubleToBf16(Bf16ToFloat(bits), overflow), bits) << std::hex << b;
    EXPECT_FALSE(overflow) << std::hex << b;
  }
}

TEST(SmallFloatTest, NaNStaysNaN) {
  bool overflow = true;
  const uint16_t h = DoubleToHalf(kNaN, overflow);
  EXPECT_FALSE(overflow);
  EXPECT_EQ(h & 0x7C00, 0x7C00);
  EXPECT_NE(h & 0x3FF, 0);
  EXPECT_TRUE(std::isnan(HalfToFloat(h)));
  EXPECT_TRUE(std::isnan(HalfToFloat(DoubleToHalf(-kNaN))));
  const uint16_t b = DoubleToBf16(kNaN, overflow);
  EXPECT_FALSE(overflow);
  EXPECT_TRUE(std::isnan(Bf16ToFloat(b)));
}

TEST(SmallFloatTest, InfinitiesStayInfinite) {
  bool overflow = true;
  EXPECT_EQ(DoubleToHalf(kInf, overflow), 0x7C00);
  EXPECT_FALSE(overflow);  // not an overflow: it was infinite already
  EXPECT_EQ(DoubleToHalf(-kInf, overflow), 0xFC00);
  EXPECT_FALSE(overflow);
  EXPECT_EQ(DoubleToBf16(kInf, overflow), 0x7F80);
  EXPECT_FALSE(overflow);
  EXPECT_EQ(DoubleToBf16(-kInf, overflow), 0xFF80);
  EXPECT_FALSE(overflow);
}

TEST(SmallFloatTest, FiniteValuesTooLargeOverflow) {
  bool overflow = false;
  EXPECT_EQ(DoubleToHalf(65504, overflow), 0x7BFF);  // max
  EXPECT_FALSE(overflow);
  EXPECT_EQ(DoubleToHalf(65519.99, overflow), 0x7BFF);  // below the tie with infinity
  EXPECT_FALSE(overflow);
  EXPECT_EQ(DoubleToHalf(65520, overflow), 0x7C00);  // the tie: to even, which is infinity
  EXPECT_TRUE(overflow);
  EXPECT_EQ(DoubleToHalf(-1e300, overflow), 0xFC00);
  EXPECT_TRUE(overflow);
  EXPECT_EQ(DoubleToBf16(3.3895313892515355e38, overflow), 0x7F7F);  // max
  EXPECT_FALSE(overflow);
  EXPECT_EQ(DoubleToBf16(std::ldexp(2.0 - std::ldexp(1.0, -8), 127), overflow), 0x7F80);
  EXPECT_TRUE(overflow);
  EXPECT_EQ(DoubleToBf16(1e39, overflow), 0x7F80);
  EXPECT_TRUE(overflow);
}

TEST(SmallFloatTest, HalfSubnormals) {
  EXPECT_EQ(DoubleToHalf(std::ldexp(1.0, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(DoubleToHalf(std::ldexp(3.0, -24)), 0x0003);
  EXPECT_EQ(DoubleToHalf(std::ldexp(1023.0, -24)), 0x03FF);  // largest subnormal
  EXPECT_EQ(DoubleToHalf(std::ldexp(1.0, -14)), 0x0400);     // smallest normal
  // Half the smallest subnormal is a tie between 0 and it: to even (zero).
  EXPECT_EQ(DoubleToHalf(std::ldexp(1.0, -25)), 0x0000);
  EXPECT_EQ(DoubleToHalf(std::ldexp(1.0, -25) * (1 + 1e-9)), 0x0001);  // just above
  EXPECT_EQ(DoubleToHalf(std::ldexp(3.0, -25)), 0x0002);               // 1.5 ulp: tie, to even (up)
  EXPECT_EQ(DoubleToHalf(std::ldexp(1.0, -40)), 0x0000);               // far below
  EXPECT_EQ(DoubleToHalf(-std::ldexp(1.0, -40)), 0x8000);              // keeps its sign
  EXPECT_EQ(DoubleToHalf(std::numeric_limits<double>::denorm_min()), 0x0000);
  // Rounding up out of the subnormals carries into the exponent.
  EXPECT_EQ(DoubleToHalf(std::ldexp(1023.75, -24)), 0x0400);
}

TEST(SmallFloatTest, Bf16Subnormals) {
  EXPECT_EQ(DoubleToBf16(std::bit_cast<float>(0x00010000u)), 0x0001);
  EXPECT_EQ(DoubleToBf16(std::bit_cast<float>(0x00008000u)), 0x0000);  // tie, to even
  EXPECT_EQ(DoubleToBf16(std::bit_cast<float>(0x00018000u)), 0x0002);  // tie, to even (up)
  EXPECT_EQ(DoubleToBf16(std::bit_cast<float>(0x00008001u)), 0x0001);  // above the tie
}

TEST(SmallFloatTest, RoundsToNearestEven) {
  EXPECT_EQ(DoubleToHalf(1.0 + std::ldexp(1.0, -11)), 0x3C00);         // tie, to even (down)
  EXPECT_EQ(DoubleToHalf(1.0 + 3 * std::ldexp(1.0, -11)), 0x3C02);     // tie, to even (up)
  EXPECT_EQ(DoubleToHalf(1.0005), 0x3C01);                             // above the tie
  EXPECT_EQ(DoubleToHalf(1.0 + std::ldexp(1.0, -11) * 0.99), 0x3C00);  // below it
  EXPECT_EQ(DoubleToHalf(-(1.0 + 3 * std::ldexp(1.0, -11))), 0xBC02);  // symmetric
  EXPECT_EQ(DoubleToHalf(0.1), 0x2E66);
  EXPECT_EQ(DoubleToBf16(1.0 + std::ldexp(1.0, -8)), 0x3F80);      // tie, to even (down)
  EXPECT_EQ(DoubleToBf16(1.0 + 3 * std::ldexp(1.0, -8)), 0x3F82);  // tie, to even (up)
  EXPECT_EQ(DoubleToBf16(0.1), 0x3DCD);
  // Once from the double: 1 + 2^-11 + 2^-40 is above the half tie, though a
  // float would have rounded it onto the tie first.
  EXPECT_EQ(DoubleToHalf(1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40)), 0x3C01);
}

// Warm-up data (lifecycle/warmup.cc) is k / 1024 as FP16 and k / 256 as BF16:
// the same bits as its former hand-built encodings.
TEST(SmallFloatTest, WarmupValuesAreExact) {
  for (uint32_t k = 0; k < 1024; ++k) {
    uint16_t expected = 0;
    if (k != 0) {
      const int e = std::bit_width(k) - 1;
      expected = static_cast<uint16_t>((e - 10 + 15) << 10 | ((k << (10 - e)) & 0x3ff));
    }
    EXPECT_EQ(DoubleToHalf(static_cast<double>(k) / 1024), expected) << k;
  }
  for (uint32_t k = 0; k < 256; ++k) {
    const float f = static_cast<float>(k) / 256.0f;
    EXPECT_EQ(DoubleToBf16(f), static_cast<uint16_t>(std::bit_cast<uint32_t>(f) >> 16)) << k;
  }
}

TEST(SmallFloatTest, SignedZeros) {
  EXPECT_EQ(DoubleToHalf(0.0), 0x0000);
  EXPECT_EQ(DoubleToHalf(-0.0), 0x8000);
  EXPECT_EQ(DoubleToBf16(-0.0), 0x8000);
}

}  // namespace
}  // namespace mm
