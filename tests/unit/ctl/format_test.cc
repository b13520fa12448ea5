#include "ctl/format.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace mm {
namespace {

TEST(FormatTest, Bytes) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1536), "1.50 KiB");
  EXPECT_EQ(FormatBytes(12 * 1024 * 1024), "12.0 MiB");
  EXPECT_EQ(FormatBytes(int64_t{300} << 30), "300 GiB");
}

TEST(FormatTest, Uptime) {
  EXPECT_EQ(FormatUptime(0), "0s");
  EXPECT_EQ(FormatUptime(45.9), "45s");
  EXPECT_EQ(FormatUptime(725), "12m05s");
  EXPECT_EQ(FormatUptime(3 * 3600 + 7 * 60 + 1), "3h07m");
  EXPECT_EQ(FormatUptime(2 * 86400 + 4 * 3600), "2d04h");
}

TEST(FormatTest, Milliseconds) {
  EXPECT_EQ(FormatMs(std::nullopt), "-");
  EXPECT_EQ(FormatMs(0.000412), "0.412");
  EXPECT_EQ(FormatMs(0.0055), "5.50");
  EXPECT_EQ(FormatMs(0.0123), "12.3");
  EXPECT_EQ(FormatMs(1.234), "1234");
}

TEST(FormatTest, Shortest) {
  EXPECT_EQ(FormatShortest(0.1), "0.1");
  EXPECT_EQ(FormatShortest(3), "3");
  EXPECT_EQ(FormatShortest(-2.5), "-2.5");
  EXPECT_EQ(FormatShortest(std::numeric_limits<double>::quiet_NaN()), "NaN");
  EXPECT_EQ(FormatShortest(-std::numeric_limits<double>::infinity()), "-Infinity");
}

}  // namespace
}  // namespace mm
