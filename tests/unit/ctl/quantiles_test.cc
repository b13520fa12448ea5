#include "ctl/quantiles.h"

#include <gtest/gtest.h>

#include <vector>

namespace mm {
namespace {

const std::vector<double> kBounds = {0.001, 0.005, 0.01, 0.05, 0.1};

TEST(HistogramQuantileTest, InterpolatesInsideTheBucket) {
  // 10 observations, all in (0.01, 0.05].
  const std::vector<uint64_t> counts = {0, 0, 0, 10, 0, 0};
  EXPECT_DOUBLE_EQ(*HistogramQuantile(0.5, kBounds, counts), 0.01 + 0.04 * 0.5);
  EXPECT_DOUBLE_EQ(*HistogramQuantile(0.99, kBounds, counts), 0.01 + 0.04 * 0.99);
  EXPECT_DOUBLE_EQ(*HistogramQuantile(1.0, kBounds, counts), 0.05);
}

TEST(HistogramQuantileTest, FirstBucketStartsAtZero) {
  const std::vector<uint64_t> counts = {4, 0, 0, 0, 0, 0};
  EXPECT_DOUBLE_EQ(*HistogramQuantile(0.5, kBounds, counts), 0.0005);
}

TEST(HistogramQuantileTest, AcrossBucketsAsPrometheusDoes) {
  // 2 in (0, 1ms], 6 in (1, 5ms], 2 in (5, 10ms]: rank 5 (p50) is 3 into the
  // second bucket's 6; rank 9.9 (p99) is 1.9 into the third bucket's 2.
  const std::vector<uint64_t> counts = {2, 6, 2, 0, 0, 0};
  EXPECT_DOUBLE_EQ(*HistogramQuantile(0.5, kBounds, counts), 0.001 + 0.004 * 3.0 / 6.0);
  EXPECT_DOUBLE_EQ(*HistogramQuantile(0.99, kBounds, counts), 0.005 + 0.005 * 1.9 / 2.0);
  // A rank that falls exactly on a bucket's end is that bucket's upper bound.
  EXPECT_DOUBLE_EQ(*HistogramQuantile(0.2, kBounds, counts), 0.001);
}

TEST(HistogramQuantileTest, InfBucketAnswersTheHighestFiniteBound) {
  const std::vector<uint64_t> counts = {1, 0, 0, 0, 0, 9};
  EXPECT_DOUBLE_EQ(*HistogramQuantile(0.5, kBounds, counts), 0.1);
  EXPECT_DOUBLE_EQ(*HistogramQuantile(0.05, kBounds, counts), 0.0005);
}

TEST(HistogramQuantileTest, NoObservationsOrMismatchedSizes) {
  EXPECT_FALSE(HistogramQuantile(0.5, kBounds, std::vector<uint64_t>(6, 0)).has_value());
  EXPECT_FALSE(HistogramQuantile(0.5, kBounds, std::vector<uint64_t>{1, 2, 3}).has_value());
  EXPECT_FALSE(HistogramQuantile(0.5, {}, std::vector<uint64_t>{1}).has_value());
}

TEST(HistogramQuantileTest, QuantileIsClamped) {
  const std::vector<uint64_t> counts = {0, 0, 0, 10, 0, 0};
  EXPECT_DOUBLE_EQ(*HistogramQuantile(2.0, kBounds, counts), 0.05);
  EXPECT_DOUBLE_EQ(*HistogramQuantile(-1.0, kBounds, counts), 0.01);
}

}  // namespace
}  // namespace mm
