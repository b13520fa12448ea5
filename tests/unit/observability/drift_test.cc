#include "observability/drift.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace mm {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// ------------------------------------------------------------ helpers

// The tool's rule (numpy quantile method 'inverted_cdf', then unique): cut
// point j is the smallest sample whose empirical CDF reaches j/k; expected
// fractions are counted with BinOf.
DriftBaseline::Feature FeatureFromSamples(std::vector<double> samples, int bins) {
  std::sort(samples.begin(), samples.end());
  const size_t n = samples.size();
  DriftBaseline::Feature f;
  for (int j = 1; j < bins; ++j) {
    const size_t index = (static_cast<size_t>(j) * n + bins - 1) / bins - 1;
    const double edge = samples[index];
    if (f.edges.empty() || f.edges.back() < edge) f.edges.push_back(edge);
  }
  std::vector<size_t> counts(f.edges.size() + 1, 0);
  for (double v : samples) ++counts[DriftBaseline::BinOf(f.edges, v)];
  for (size_t c : counts) f.expected.push_back(static_cast<double>(c) / static_cast<double>(n));
  return f;
}

struct Dist {
  double mean;
  double sd;
};
// Three features with different scales.
const std::vector<Dist> kDists = {{0.0, 1.0}, {10.0, 3.0}, {-5.0, 0.5}};

// `rows` rows of FP32 features drawn from `dists`, each mean moved by `shift` sds.
std::vector<float> Rows(std::mt19937_64& rng, size_t rows, double shift = 0.0) {
  std::vector<float> out;
  out.reserve(rows * kDists.size());
  for (size_t r = 0; r < rows; ++r) {
    for (const Dist& d : kDists) {
      std::normal_distribution<double> normal(d.mean + shift * d.sd, d.sd);
      out.push_back(static_cast<float>(normal(rng)));
    }
  }
  return out;
}

DriftBaseline NormalBaseline(uint64_t seed, size_t samples = 20000, int bins = 10) {
  std::mt19937_64 rng(seed);
  const std::vector<float> rows = Rows(rng, samples);
  DriftBaseline::Input input{"INPUT0", {}};
  for (size_t f = 0; f < kDists.size(); ++f) {
    std::vector<double> column;
    for (size_t r = 0; r < samples; ++r) column.push_back(rows[r * kDists.size() + f]);
    input.features.push_back(FeatureFromSamples(std::move(column), bins));
  }
  std::vector<DriftBaseline::Input> inputs;
  inputs.push_back(std::move(input));
  auto baseline = DriftBaseline::FromInputs(bins, std::move(inputs), "test");
  EXPECT_TRUE(baseline.ok()) << baseline.status().ToString();
  return std::move(baseline).value();
}

template <typename T>
std::span<const uint8_t> Bytes(const std::vector<T>& values) {
  return {reinterpret_cast<const uint8_t*>(values.data()), values.size() * sizeof(T)};
}

// Feeds `rows` FP32 rows in batches of 50.
void Feed(DriftMonitor& monitor, std::mt19937_64& rng, size_t rows, double shift = 0.0) {
  for (size_t done = 0; done < rows;) {
    const size_t batch = std::min<size_t>(50, rows - done);
    const std::vector<float> data = Rows(rng, batch, shift);
    monitor.Observe("INPUT0", DataType::kFp32, static_cast<int64_t>(batch), Bytes(data));
    done += batch;
  }
}

std::unique_ptr<DriftMonitor> MakeMonitor(DriftBaseline baseline, DriftMonitor::Options options) {
  auto monitor = DriftMonitor::Create(std::move(baseline), options);
  EXPECT_TRUE(monitor.ok()) << monitor.status().ToString();
  return std::move(monitor).value();
}

DriftMonitor::Options SmallOptions() {
  DriftMonitor::Options o;
  o.sample_every = 1;
  o.window_rows = 10000;
  o.sub_windows = 10;
  o.threshold = 0.2;
  o.min_rows = 100;
  return o;
}

// ------------------------------------------------------------ baseline parsing

constexpr std::string_view kValid = R"({
  "version": 1, "bins": 4, "generator": "test",
  "inputs": {
    "x": {"rows": 100, "features": [
      {"edges": [-1, 0, 1.5], "expected": [0.25, 0.25, 0.25, 0.25]},
      {"edges": [2], "expected": [1.0, 0.0]}
    ]},
    "y": {"features": [{"edges": [], "expected": [1]}]}
  }
})";

TEST(DriftBaselineTest, ParsesAValidFile) {
  auto baseline = DriftBaseline::Parse(kValid, "m/drift_baseline.json");
  ASSERT_TRUE(baseline.ok()) << baseline.status().ToString();
  EXPECT_EQ(baseline->bins(), 4);
  ASSERT_EQ(baseline->inputs().size(), 2u);
  const DriftBaseline::Input* x = baseline->FindInput("x");
  ASSERT_NE(x, nullptr);
  ASSERT_EQ(x->features.size(), 2u);
  EXPECT_EQ(x->features[0].edges, (std::vector<double>{-1, 0, 1.5}));
  EXPECT_EQ(x->features[1].expected, (std::vector<double>{1.0, 0.0}));
  EXPECT_EQ(baseline->FindInput("y")->features[0].edges.size(), 0u);
  EXPECT_EQ(baseline->FindInput("z"), nullptr);
}

std::string Doc(std::string_view inputs, std::string_view head = R"("version": 1, "bins": 4)") {
  return "{" + std::string(head) + R"(, "inputs": )" + std::string(inputs) + "}";
}

struct BadCase {
  std::string json;
  std::string message;  // a part the error must contain
};

TEST(DriftBaselineTest, RejectsInvalidFilesNamingTheProblem) {
  const std::string f_ok = R"({"edges": [0], "expected": [0.5, 0.5]})";
  const std::vector<BadCase> cases = {
      {"{", "the JSON is invalid"},
      {"[1]", "the top level is not an object"},
      {Doc(R"({"x": {"features": [)" + f_ok + "]}}", R"("version": 2, "bins": 4)"),
       "'version' is 2; this server reads version 1"},
      {Doc(R"({"x": {"features": [)" + f_ok + "]}}", R"("version": 1, "bins": 101)"),
       "'bins' is 101; it must be an integer from 1 to 100"},
      {Doc(R"({"x": {"features": [)" + f_ok + "]}}", R"("version": 1, "bins": 2.5)"),
       "'bins' is 2.5"},
      {R"({"version": 1, "bins": 4})", "missing 'inputs'"},
      {R"({"bins": 4, "inputs": {}})", "missing 'version'"},
      {Doc(R"({"x": {"features": [)" + f_ok + "]}}", R"("version": 1, "bins": 4, "bin": 3)"),
       "unknown key 'bin'"},
      {Doc("[]"), "'inputs' is not an object"},
      {Doc("{}"), "'inputs' names no input"},
      {Doc(R"({"x": {}})"), "input 'x': missing 'features'"},
      {Doc(R"({"x": {"features": []}})"), "input 'x' has no features"},
      {Doc(R"({"x": {"features": [], "weights": 1}})"), "input 'x': unknown key 'weights'"},
      {Doc(R"({"x": {"rows": -1, "features": []}})"), "input 'x': 'rows' is not a non-negative"},
      {Doc(R"({"x": {"features": [)" + f_ok + R"(]}, "x": {"features": [)" + f_ok + "]}}"),
       "input 'x' appears twice"},
      {Doc(R"({"x": {"features": [)" + f_ok + R"(, {"expected": [1]}]}})"),
       "input 'x' feature 1: missing 'edges'"},
      {Doc(R"({"x": {"features": [{"edges": []}]}})"), "input 'x' feature 0: missing 'expected'"},
      {Doc(R"({"x": {"features": [)" + f_ok + R"(, {"edges": [1, 2], "expected": [0.5, 0.5]}]}})"),
       "input 'x' feature 1: 'expected' has 2 values but 'edges' has 2 (expected 3)"},
      {Doc(R"({"x": {"features": [{"edges": [1, 1], "expected": [0.5, 0.5, 0]}]}})"),
       "input 'x' feature 0: 'edges' are not strictly ascending at edge 1"},
      {Doc(R"({"x": {"features": [{"edges": [1, 2, 3, 4], "expected": [0.2, 0.2, 0.2, 0.2, 0.2]}]}})"),
       "input 'x' feature 0: 'edges' has 4 values but 'bins' is 4 (at most 3 edges)"},
      {Doc(R"({"x": {"features": [{"edges": [0], "expected": [0.5, 0.4]}]}})"),
       "input 'x' feature 0: 'expected' sums to 0.9"},
      {Doc(R"({"x": {"features": [{"edges": [0], "expected": [1.5, -0.5]}]}})"),
       "input 'x' feature 0: expected fraction 1 (-0.5"},
      {Doc(R"({"x": {"features": [{"edges": [0, "a"], "expected": [1, 0, 0]}]}})"),
       "input 'x' feature 0: 'edges' value 1 is not a number"},
      {Doc(R"({"x": {"features": [{"edges": [0], "expected": [1, 0], "w": 1}]}})"),
       "input 'x' feature 0: unknown key 'w'"},
      {Doc(R"({"x": {"features": [{"edges": 0, "expected": [1]}]}})"),
       "input 'x' feature 0: 'edges' is not an array"},
  };
  for (const BadCase& c : cases) {
    auto baseline = DriftBaseline::Parse(c.json, "m/drift_baseline.json");
    ASSERT_FALSE(baseline.ok()) << c.json;
    EXPECT_EQ(baseline.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(baseline.status().message(), StartsWith("drift baseline m/drift_baseline.json: "))
        << c.json;
    EXPECT_THAT(baseline.status().message(), HasSubstr(c.message)) << c.json;
  }
}

TEST(DriftBaselineTest, EnforcesSizeLimits) {
  std::string features;
  for (size_t i = 0; i <= DriftBaseline::kMaxFeaturesPerInput; ++i) {
    features += (i ? "," : "") + std::string(R"({"edges": [], "expected": [1]})");
  }
  auto many = DriftBaseline::Parse(Doc(R"({"x": {"features": [)" + features + "]}}"), "f");
  ASSERT_FALSE(many.ok());
  EXPECT_THAT(many.status().message(), HasSubstr("input 'x' has more than 4096 features"));

  std::string inputs;
  for (size_t i = 0; i <= DriftBaseline::kMaxInputs; ++i) {
    inputs += (i ? "," : "") + ("\"i" + std::to_string(i) + R"(": {"features": [)" +
                                R"({"edges": [], "expected": [1]}]})");
  }
  auto wide = DriftBaseline::Parse(Doc("{" + inputs + "}"), "f");
  ASSERT_FALSE(wide.ok());
  EXPECT_THAT(wide.status().message(), HasSubstr("more than 64 inputs"));

  std::string edges;
  for (int i = 0; i < 200; ++i) edges += (i ? "," : "") + std::to_string(i);
  auto long_edges = DriftBaseline::Parse(
      Doc(R"({"x": {"features": [{"edges": [)" + edges + R"(], "expected": [1]}]}})"), "f");
  ASSERT_FALSE(long_edges.ok());
  EXPECT_THAT(
      long_edges.status().message(),
      HasSubstr("input 'x' feature 0: 'edges' has more than 101 values (at most 100 bins)"));
}

TEST(DriftBaselineTest, BinRuleCountsEdgesBelowTheValue) {
  const std::vector<double> edges = {1, 2, 3};
  constexpr double kInf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(DriftBaseline::BinOf(edges, -kInf), 0u);
  EXPECT_EQ(DriftBaseline::BinOf(edges, 0.5), 0u);
  EXPECT_EQ(DriftBaseline::BinOf(edges, 1.0), 0u);  // upper bound inclusive
  EXPECT_EQ(DriftBaseline::BinOf(edges, 1.5), 1u);
  EXPECT_EQ(DriftBaseline::BinOf(edges, 2.0), 1u);
  EXPECT_EQ(DriftBaseline::BinOf(edges, 3.0), 2u);
  EXPECT_EQ(DriftBaseline::BinOf(edges, 3.5), 3u);
  EXPECT_EQ(DriftBaseline::BinOf(edges, kInf), 3u);
  EXPECT_EQ(DriftBaseline::BinOf({}, 7.0), 0u);
}

// ------------------------------------------------------------ monitor options

TEST(DriftMonitorTest, RejectsBadOptions) {
  auto make = [](auto edit) {
    DriftMonitor::Options o = SmallOptions();
    edit(o);
    return DriftMonitor::Create(NormalBaseline(1, 1000), o).status();
  };
  auto expect = [](const Status& s, std::string_view part) {
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(s.message(), HasSubstr(std::string(part)));
  };
  expect(make([](auto& o) { o.sample_every = 0; }), "sample_every must be at least 1");
  expect(make([](auto& o) { o.sub_windows = 1; }), "sub_windows is 1");
  expect(make([](auto& o) { o.window_rows = 5; }), "window_rows is 5");
  expect(make([](auto& o) { o.threshold = 0; }), "threshold is 0");
  expect(make([](auto& o) { o.threshold = std::nan(""); }), "threshold is");
  expect(make([](auto& o) { o.min_rows = 0; }), "min_rows is 0");
  // The window keeps 9 full sub-windows and one row right after it slides.
  expect(make([](auto& o) { o.min_rows = 9002; }), "it must be from 1 to 9001");
  EXPECT_TRUE(make([](auto& o) { o.min_rows = 9001; }).ok());
}

// ------------------------------------------------------------ PSI

TEST(DriftMonitorTest, PsiNearZeroForTheBaselineDistribution) {
  auto monitor = MakeMonitor(NormalBaseline(1), SmallOptions());
  std::mt19937_64 rng(2);
  Feed(*monitor, rng, 10000);
  const auto drift = monitor->Read();
  ASSERT_EQ(drift.size(), kDists.size());
  for (const auto& d : drift) {
    EXPECT_EQ(d.input, "INPUT0");
    EXPECT_TRUE(d.ready);
    EXPECT_EQ(d.rows, 10000u);
    EXPECT_EQ(d.nans, 0u);
    EXPECT_LT(d.psi, 0.02) << "feature " << d.feature;
    EXPECT_GE(d.psi, 0.0);
  }
  EXPECT_EQ(monitor->observed_rows(), 10000u);
  EXPECT_EQ(monitor->mismatches(), 0u);
}

TEST(DriftMonitorTest, PsiAboveThresholdForAShiftedDistribution) {
  auto monitor = MakeMonitor(NormalBaseline(1), SmallOptions());
  std::mt19937_64 rng(3);
  Feed(*monitor, rng, 10000, /*shift=*/1.0);
  for (const auto& d : monitor->Read()) {
    EXPECT_TRUE(d.ready);
    EXPECT_GT(d.psi, 0.2) << "feature " << d.feature;
  }
}

TEST(DriftMonitorTest, NoPsiBeforeMinRows) {
  auto monitor = MakeMonitor(NormalBaseline(1), SmallOptions());
  std::mt19937_64 rng(4);
  Feed(*monitor, rng, 99);
  for (const auto& d : monitor->Read()) {
    EXPECT_FALSE(d.ready);
    EXPECT_TRUE(std::isnan(d.psi));
    EXPECT_EQ(d.rows, 99u);
  }
  EXPECT_TRUE(monitor->CheckThreshold().empty());
  Feed(*monitor, rng, 1);
  for (const auto& d : monitor->Read()) EXPECT_TRUE(d.ready);
}

TEST(DriftMonitorTest, SlidingWindowForgetsOldRows) {
  auto monitor = MakeMonitor(NormalBaseline(1), SmallOptions());
  std::mt19937_64 rng(5);
  Feed(*monitor, rng, 10000, /*shift=*/1.0);
  for (const auto& d : monitor->Read()) EXPECT_GT(d.psi, 0.2);
  // Half a window of baseline rows: a mix, still drifting.
  Feed(*monitor, rng, 5000);
  for (const auto& d : monitor->Read()) {
    EXPECT_EQ(d.rows, 10000u);
    EXPECT_GT(d.psi, 0.05);
  }
  // A whole window of them: the shifted rows are gone.
  Feed(*monitor, rng, 5000);
  for (const auto& d : monitor->Read()) {
    EXPECT_EQ(d.rows, 10000u);
    EXPECT_LT(d.psi, 0.02) << "feature " << d.feature;
  }
  // And back.
  Feed(*monitor, rng, 10000, /*shift=*/1.0);
  for (const auto& d : monitor->Read()) EXPECT_GT(d.psi, 0.2);
}

TEST(DriftMonitorTest, WindowSlidesBySubWindows) {
  DriftMonitor::Options o = SmallOptions();
  o.window_rows = 100;
  o.sub_windows = 4;  // 25 rows each
  o.min_rows = 10;
  auto monitor = MakeMonitor(NormalBaseline(1, 1000), o);
  std::mt19937_64 rng(6);
  auto rows = [&] { return monitor->Read()[0].rows; };
  Feed(*monitor, rng, 100);
  EXPECT_EQ(rows(), 100u);
  Feed(*monitor, rng, 1);  // the oldest 25 go, the new row starts a sub-window
  EXPECT_EQ(rows(), 76u);
  Feed(*monitor, rng, 24);
  EXPECT_EQ(rows(), 100u);
  // One batch that spans several sub-windows slides within the batch.
  const std::vector<float> batch = Rows(rng, 60);
  monitor->Observe("INPUT0", DataType::kFp32, 60, Bytes(batch));
  EXPECT_EQ(rows(), 85u);  // 3 full sub-windows of 25 and 10 rows
  uint64_t counted = 0;
  for (uint64_t c : monitor->WindowCounts("INPUT0", 1)) counted += c;
  EXPECT_EQ(counted, 85u);
}

TEST(DriftMonitorTest, CheckThresholdReportsEachCrossingOnce) {
  auto monitor = MakeMonitor(NormalBaseline(1), SmallOptions());
  std::mt19937_64 rng(7);
  EXPECT_TRUE(monitor->CheckThreshold().empty());  // nothing ready
  Feed(*monitor, rng, 10000);
  EXPECT_TRUE(monitor->CheckThreshold().empty());

  Feed(*monitor, rng, 10000, /*shift=*/1.0);
  auto up = monitor->CheckThreshold();
  ASSERT_EQ(up.size(), kDists.size());
  for (size_t i = 0; i < up.size(); ++i) {
    EXPECT_EQ(up[i].input, "INPUT0");
    EXPECT_EQ(up[i].feature, static_cast<int>(i));
    EXPECT_TRUE(up[i].above);
    EXPECT_GT(up[i].psi, 0.2);
  }
  EXPECT_TRUE(monitor->CheckThreshold().empty());  // still above: no new crossing
  for (const auto& d : monitor->Read()) EXPECT_TRUE(d.alerting);

  Feed(*monitor, rng, 10000);
  auto down = monitor->CheckThreshold();
  ASSERT_EQ(down.size(), kDists.size());
  for (const auto& c : down) {
    EXPECT_FALSE(c.above);
    EXPECT_LE(c.psi, 0.2);
  }
  EXPECT_TRUE(monitor->CheckThreshold().empty());
  for (const auto& d : monitor->Read()) EXPECT_FALSE(d.alerting);
}

TEST(DriftMonitorTest, AnAlertClearsOnlyWellBelowTheThreshold) {
  // One feature, two bins of 1/2 each (values -1 and 1). A window with a
  // fraction a of 1s has PSI (a - 1/2) ln(2a) + (1/2 - a) ln(2 - 2a): 0.275 at
  // 3/4, 0.170 at 7/10 (between 0.8 x 0.2 and 0.2), 0 at 1/2.
  auto baseline = DriftBaseline::FromInputs(2, {{"INPUT0", {{{0.0}, {0.5, 0.5}}}}}, "test");
  ASSERT_TRUE(baseline.ok()) << baseline.status().ToString();
  DriftMonitor::Options o;
  o.sample_every = 1;
  o.window_rows = 200;
  o.sub_windows = 10;  // 20 rows each
  o.min_rows = 20;
  o.threshold = 0.2;
  auto monitor = MakeMonitor(*baseline, o);
  auto window_of = [&](int ones_per_20) {  // ten sub-windows with that many 1s in each 20
    for (int w = 0; w < 10; ++w) {
      std::vector<float> rows(20, -1.0f);
      for (int i = 0; i < ones_per_20; ++i) rows[static_cast<size_t>(i)] = 1.0f;
      monitor->Observe("INPUT0", DataType::kFp32, 20, Bytes(rows));
    }
    return monitor->Read()[0].psi;
  };
  EXPECT_NEAR(window_of(15), 0.2747, 1e-3);
  auto up = monitor->CheckThreshold();
  ASSERT_EQ(up.size(), 1u);
  EXPECT_TRUE(up[0].above);
  EXPECT_NEAR(window_of(14), 0.1695, 1e-3);  // below 0.2, above 0.16: still alerting
  EXPECT_TRUE(monitor->CheckThreshold().empty());
  EXPECT_TRUE(monitor->Read()[0].alerting);
  EXPECT_NEAR(window_of(10), 0.0, 1e-3);
  auto down = monitor->CheckThreshold();
  ASSERT_EQ(down.size(), 1u);
  EXPECT_FALSE(down[0].above);
  // Rising to 0.17 again does not alert: the threshold itself applies on the way up.
  window_of(14);
  EXPECT_TRUE(monitor->CheckThreshold().empty());
}

// ------------------------------------------------------------ sampling, mismatches

TEST(DriftMonitorTest, SamplesOneRequestInN) {
  DriftMonitor::Options o = SmallOptions();
  o.sample_every = 4;
  auto monitor = MakeMonitor(NormalBaseline(1, 1000), o);
  std::vector<int> taken;
  for (int i = 0; i < 12; ++i) {
    if (monitor->ShouldSample()) taken.push_back(i);
  }
  EXPECT_EQ(taken, (std::vector<int>{0, 4, 8}));
  EXPECT_EQ(monitor->sampled(), 3u);
  EXPECT_TRUE(monitor->ShouldSample());  // call 12
  EXPECT_FALSE(monitor->ShouldSample());
  EXPECT_EQ(monitor->sampled(), 4u);
}

TEST(DriftMonitorTest, CountsMismatchesAndIgnoresThem) {
  auto monitor = MakeMonitor(NormalBaseline(1, 1000), SmallOptions());
  const std::vector<float> two_rows(6, 0.0f);  // 2 rows x 3 features
  monitor->Observe("OTHER", DataType::kFp32, 2, Bytes(two_rows));
  EXPECT_EQ(monitor->mismatches(), 1u);
  EXPECT_THAT(monitor->last_mismatch(), HasSubstr("input 'OTHER' is not in the drift baseline"));
  monitor->Observe("INPUT0", DataType::kFp32, 3, Bytes(two_rows));  // 3 rows of 2 features
  EXPECT_THAT(monitor->last_mismatch(),
              HasSubstr("input 'INPUT0': rows of 2 elements but the baseline has 3 features"));
  monitor->Observe("INPUT0", DataType::kFp32, 2,
                   Bytes(two_rows).subspan(0, 22));  // not whole elements
  EXPECT_THAT(monitor->last_mismatch(), HasSubstr("22 bytes are not 2 rows of 3 FP32 features"));
  monitor->Observe("INPUT0", DataType::kBytes, 2, Bytes(two_rows));
  EXPECT_THAT(monitor->last_mismatch(), HasSubstr("BYTES values cannot be binned"));
  monitor->Observe("INPUT0", DataType::kFp32, -1, Bytes(two_rows));
  monitor->Observe("INPUT0", DataType::kFp64, 2, Bytes(two_rows));  // 24 bytes: 1 row of FP64
  EXPECT_EQ(monitor->mismatches(), 6u);
  EXPECT_EQ(monitor->observed_rows(), 0u);
  for (const auto& d : monitor->Read()) EXPECT_EQ(d.rows, 0u);

  monitor->Observe("INPUT0", DataType::kFp32, 0, {});  // an empty batch: nothing, no mismatch
  monitor->Observe("INPUT0", DataType::kFp32, 2, Bytes(two_rows));
  EXPECT_EQ(monitor->mismatches(), 6u);
  EXPECT_EQ(monitor->observed_rows(), 2u);
}

// ------------------------------------------------------------ dtypes

// One input "v" of one feature with edges {-1, 0, 0.5, 1}: bins
// (-inf,-1] (-1,0] (0,0.5] (0.5,1] (1,inf).
std::unique_ptr<DriftMonitor> OneFeatureMonitor() {
  std::vector<DriftBaseline::Input> inputs(1);
  inputs[0].name = "v";
  inputs[0].features.push_back({{-1, 0, 0.5, 1}, {0.2, 0.2, 0.2, 0.2, 0.2}});
  auto baseline = DriftBaseline::FromInputs(5, std::move(inputs), "test");
  EXPECT_TRUE(baseline.ok()) << baseline.status().ToString();
  DriftMonitor::Options o = SmallOptions();
  o.min_rows = 1;
  return MakeMonitor(std::move(baseline).value(), o);
}

TEST(DriftMonitorTest, ConvertsFp16) {
  auto monitor = OneFeatureMonitor();
  const std::vector<uint16_t> halves = {
      0xC000,  // -2        -> bin 0
      0xFC00,  // -inf      -> bin 0
      0xBC00,  // -1        -> bin 0 (inclusive upper bound)
      0x8000,  // -0        -> bin 1
      0x0000,  // 0         -> bin 1
      0x0001,  // 2^-24     -> bin 2 (subnormal)
      0x3800,  // 0.5       -> bin 2
      0x3C00,  // 1         -> bin 3
      0x7BFF,  // 65504     -> bin 4
      0x7C00,  // +inf      -> bin 4
      0x7E00,  // NaN       -> no bin
  };
  monitor->Observe("v", DataType::kFp16, static_cast<int64_t>(halves.size()), Bytes(halves));
  EXPECT_EQ(monitor->WindowCounts("v", 0), (std::vector<uint64_t>{3, 2, 2, 1, 2}));
  const auto drift = monitor->Read();
  EXPECT_EQ(drift[0].rows, halves.size());
  EXPECT_EQ(drift[0].nans, 1u);
}

TEST(DriftMonitorTest, ConvertsIntegerAndOtherTypes) {
  {
    auto monitor = OneFeatureMonitor();
    const std::vector<int64_t> v = {
        -5, -1, 0, 1, int64_t{1} << 62, std::numeric_limits<int64_t>::min()};
    monitor->Observe("v", DataType::kInt64, 6, Bytes(v));
    EXPECT_EQ(monitor->WindowCounts("v", 0), (std::vector<uint64_t>{3, 1, 0, 1, 1}));
  }
  {
    auto monitor = OneFeatureMonitor();
    const std::vector<uint64_t> v = {0, 1, std::numeric_limits<uint64_t>::max()};
    monitor->Observe("v", DataType::kUint64, 3, Bytes(v));
    EXPECT_EQ(monitor->WindowCounts("v", 0), (std::vector<uint64_t>{0, 1, 0, 1, 1}));
  }
  {
    auto monitor = OneFeatureMonitor();
    const std::vector<int8_t> v = {-128, 0, 127};
    monitor->Observe("v", DataType::kInt8, 3, Bytes(v));
    EXPECT_EQ(monitor->WindowCounts("v", 0), (std::vector<uint64_t>{1, 1, 0, 0, 1}));
  }
  {
    auto monitor = OneFeatureMonitor();
    const std::vector<uint8_t> v = {0, 1, 2};  // BOOL: any non-zero byte is true
    monitor->Observe("v", DataType::kBool, 3, Bytes(v));
    EXPECT_EQ(monitor->WindowCounts("v", 0), (std::vector<uint64_t>{0, 1, 0, 2, 0}));
  }
  {
    auto monitor = OneFeatureMonitor();
    const std::vector<uint16_t> v = {0x3F80, 0xC000, 0x3E80, 0x7FC0};  // 1, -2, 0.25, NaN
    monitor->Observe("v", DataType::kBf16, 4, Bytes(v));
    EXPECT_EQ(monitor->WindowCounts("v", 0), (std::vector<uint64_t>{1, 0, 1, 1, 0}));
    EXPECT_EQ(monitor->Read()[0].nans, 1u);
  }
  {
    auto monitor = OneFeatureMonitor();
    const std::vector<double> v = {-0.5, 0.75, 3.0};
    monitor->Observe("v", DataType::kFp64, 3, Bytes(v));
    EXPECT_EQ(monitor->WindowCounts("v", 0), (std::vector<uint64_t>{0, 1, 0, 1, 1}));
  }
  {
    auto monitor = OneFeatureMonitor();
    const std::vector<int16_t> i16 = {-2, 2};
    const std::vector<int32_t> i32 = {-1, 1};
    const std::vector<uint16_t> u16 = {0};
    const std::vector<uint32_t> u32 = {7};
    monitor->Observe("v", DataType::kInt16, 2, Bytes(i16));
    monitor->Observe("v", DataType::kInt32, 2, Bytes(i32));
    monitor->Observe("v", DataType::kUint16, 1, Bytes(u16));
    monitor->Observe("v", DataType::kUint32, 1, Bytes(u32));
    EXPECT_EQ(monitor->WindowCounts("v", 0), (std::vector<uint64_t>{2, 1, 0, 1, 2}));
    EXPECT_EQ(monitor->observed_rows(), 6u);
  }
}

TEST(DriftMonitorTest, ReadsUnalignedData) {
  auto monitor = OneFeatureMonitor();
  std::vector<uint8_t> buffer(1 + 2 * sizeof(double));
  const double values[2] = {-3.0, 0.25};
  std::memcpy(buffer.data() + 1, values, sizeof(values));
  monitor->Observe("v", DataType::kFp64, 2, std::span<const uint8_t>(buffer).subspan(1));
  EXPECT_EQ(monitor->WindowCounts("v", 0), (std::vector<uint64_t>{1, 0, 1, 0, 0}));
  EXPECT_TRUE(monitor->WindowCounts("v", 1).empty());
  EXPECT_TRUE(monitor->WindowCounts("w", 0).empty());
}

TEST(DriftMonitorTest, ConcurrentUseIsSafe) {
  auto monitor = MakeMonitor(NormalBaseline(1, 1000), SmallOptions());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(100 + t);
      for (int i = 0; i < 200; ++i) {
        if (monitor->ShouldSample()) Feed(*monitor, rng, 5);
        if (i % 50 == 0) {
          (void)monitor->Read();
          (void)monitor->CheckThreshold();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(monitor->sampled(), 800u);
  EXPECT_EQ(monitor->observed_rows(), 4000u);
}

}  // namespace
}  // namespace mm
