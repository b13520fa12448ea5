#include "observability/custom_metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>
#include <vector>

namespace mm {
namespace {

CustomMetricSpec Counter(std::string family, std::map<std::string, std::string> labels = {}) {
  return {std::move(family), "requests by kind", CustomMetricKind::kCounter, std::move(labels), {}};
}

std::string Scrape(const CustomMetrics& metrics) {
  MetricFamilies out;
  metrics.Collect(out);
  return MetricsServer::Serialize(out);
}

TEST(CustomMetricsTest, CounterGaugeAndHistogramAreExportedWithTheModelsLabels) {
  CustomMetrics metrics;
  auto owner = metrics.ForModel("bls", "2");
  auto counter = owner->Create(Counter("requests_by_kind_total", {{"kind", "a"}}));
  ASSERT_TRUE(counter.ok()) << counter.status().message();
  auto gauge = owner->Create({"queue_len", "items queued", CustomMetricKind::kGauge, {}, {}});
  ASSERT_TRUE(gauge.ok()) << gauge.status().message();
  auto histogram =
      owner->Create({"latency_ms", "latency", CustomMetricKind::kHistogram, {}, {1, 10, 100}});
  ASSERT_TRUE(histogram.ok()) << histogram.status().message();

  ASSERT_TRUE(owner->Update(*counter, CustomMetricOp::kIncrement, 2).ok());
  ASSERT_TRUE(owner->Update(*counter, CustomMetricOp::kIncrement, 0.5).ok());
  ASSERT_TRUE(owner->Update(*gauge, CustomMetricOp::kSet, 7).ok());
  ASSERT_TRUE(owner->Update(*gauge, CustomMetricOp::kIncrement, -3).ok());
  ASSERT_TRUE(owner->Update(*histogram, CustomMetricOp::kObserve, 10).ok());  // le=10
  ASSERT_TRUE(owner->Update(*histogram, CustomMetricOp::kObserve, 500).ok());
  EXPECT_DOUBLE_EQ(*owner->Value(*counter), 2.5);
  EXPECT_DOUBLE_EQ(*owner->Value(*gauge), 4);
  EXPECT_DOUBLE_EQ(*owner->Value(*histogram), 510);

  const std::string text = Scrape(metrics);
  EXPECT_NE(text.find("# TYPE requests_by_kind_total counter"), std::string::npos) << text;
  EXPECT_NE(text.find("requests_by_kind_total{kind=\"a\",model=\"bls\",version=\"2\"} 2.5"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("queue_len{model=\"bls\",version=\"2\"} 4"), std::string::npos) << text;
  EXPECT_NE(text.find("latency_ms_bucket{model=\"bls\",version=\"2\",le=\"1\"} 0"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("latency_ms_bucket{model=\"bls\",version=\"2\",le=\"10\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("latency_ms_bucket{model=\"bls\",version=\"2\",le=\"+Inf\"} 2"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("latency_ms_count{model=\"bls\",version=\"2\"} 2"), std::string::npos)
      << text;
}

TEST(CustomMetricsTest, OperationsAreCheckedAgainstTheKind) {
  CustomMetrics metrics;
  auto owner = metrics.ForModel("m", "1");
  auto counter = *owner->Create(Counter("c_total"));
  auto gauge = *owner->Create({"g", "", CustomMetricKind::kGauge, {}, {}});
  auto histogram = *owner->Create({"h", "", CustomMetricKind::kHistogram, {}, {1}});
  EXPECT_EQ(owner->Update(counter, CustomMetricOp::kIncrement, -1).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(owner->Update(counter, CustomMetricOp::kSet, 1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(owner->Update(counter, CustomMetricOp::kObserve, 1).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(owner->Update(gauge, CustomMetricOp::kObserve, 1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(owner->Update(histogram, CustomMetricOp::kIncrement, 1).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(owner->Update(histogram, CustomMetricOp::kSet, 1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(owner->Update(gauge, CustomMetricOp::kSet, std::nan("")).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(owner->Update(999, CustomMetricOp::kIncrement, 1).code(), StatusCode::kNotFound);
  EXPECT_EQ(owner->Value(999).status().code(), StatusCode::kNotFound);
  EXPECT_DOUBLE_EQ(*owner->Value(counter), 0);
}

TEST(CustomMetricsTest, NamesAndLabelsFollowPrometheusRules) {
  CustomMetrics metrics;
  auto owner = metrics.ForModel("m", "1");
  for (const char* bad : {"", "1abc", "has-dash", "has space", "mmserve_mine", "process_x"}) {
    auto s = owner->Create(Counter(bad));
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(owner->Create(Counter("ok:name_1")).ok());
  for (const char* bad : {"", "2x", "a-b", "__x"}) {
    auto s = owner->Create(Counter("fine_total", {{bad, "v"}}));
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.status().message().find("label"), std::string::npos) << s.status().message();
  }
  // The owner's labels: only with its own values (Triton's example names them).
  EXPECT_EQ(owner->Create(Counter("fine_total", {{"model", "other"}})).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(owner->Create(Counter("fine_total", {{"version", "2"}})).status().code(),
            StatusCode::kInvalidArgument);
  auto own = owner->Create(Counter("fine_total", {{"model", "m"}, {"version", "1"}}));
  ASSERT_TRUE(own.ok()) << own.status().message();
  EXPECT_EQ(*own, *owner->Create(Counter("fine_total")) - 1);  // the same series, next id
  EXPECT_NE(Scrape(metrics).find("fine_total{model=\"m\",version=\"1\"} 0"), std::string::npos)
      << Scrape(metrics);
  auto le = owner->Create({"h", "", CustomMetricKind::kHistogram, {{"le", "1"}}, {1}});
  EXPECT_EQ(le.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(owner->Create(Counter("le_ok_total", {{"le", "1"}})).ok());
  auto utf8 = owner->Create(Counter("u_total", {{"k", std::string("\xff\xfe")}}));
  EXPECT_EQ(utf8.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(owner->Create(Counter("u_total", {{"k", "caf\xc3\xa9"}})).ok());
  // Buckets: histograms only, present, finite, strictly ascending.
  EXPECT_FALSE(owner->Create({"b1", "", CustomMetricKind::kHistogram, {}, {}}).ok());
  EXPECT_FALSE(owner->Create({"b2", "", CustomMetricKind::kHistogram, {}, {2, 1}}).ok());
  EXPECT_FALSE(owner->Create({"b3", "", CustomMetricKind::kHistogram, {}, {1, 1}}).ok());
  EXPECT_FALSE(owner->Create({"b4", "", CustomMetricKind::kHistogram, {}, {INFINITY}}).ok());
  EXPECT_FALSE(owner->Create({"b5", "", CustomMetricKind::kGauge, {}, {1}}).ok());
}

TEST(CustomMetricsTest, AFamilyIsSharedOnlyWithTheSameKindAndKeepsItsFirstDescription) {
  CustomMetrics metrics;
  auto a = metrics.ForModel("a", "1");
  auto b = metrics.ForModel("b", "1");
  ASSERT_TRUE(a->Create(Counter("shared_total")).ok());
  ASSERT_TRUE(b->Create(Counter("shared_total")).ok());
  EXPECT_EQ(metrics.family_count(), 1u);
  auto other_kind =
      b->Create({"shared_total", "requests by kind", CustomMetricKind::kGauge, {}, {}});
  EXPECT_EQ(other_kind.status().code(), StatusCode::kAlreadyExists);
  EXPECT_NE(other_kind.status().message().find("counter"), std::string::npos);
  auto other_help = b->Create({"shared_total", "else", CustomMetricKind::kCounter, {}, {}});
  EXPECT_TRUE(other_help.ok());
  const std::string text = Scrape(metrics);
  EXPECT_NE(text.find("# HELP shared_total requests by kind"), std::string::npos) << text;
  EXPECT_NE(text.find("shared_total{model=\"a\",version=\"1\"} 0"), std::string::npos) << text;
  EXPECT_NE(text.find("shared_total{model=\"b\",version=\"1\"} 0"), std::string::npos) << text;
}

TEST(CustomMetricsTest, TheSameSeriesTwiceIsOneSeriesAndAnotherOwnerOfTheNameIsRefused) {
  CustomMetrics metrics;
  auto owner = metrics.ForModel("m", "1");
  auto first = *owner->Create(Counter("c_total", {{"k", "v"}}));
  auto second = *owner->Create(Counter("c_total", {{"k", "v"}}));
  EXPECT_NE(first, second);
  ASSERT_TRUE(owner->Update(first, CustomMetricOp::kIncrement, 1).ok());
  EXPECT_DOUBLE_EQ(*owner->Value(second), 1);
  // Another tenant's model of the same name and version.
  auto twin = metrics.ForModel("m", "1");
  EXPECT_EQ(twin->Create(Counter("c_total", {{"k", "v"}})).status().code(),
            StatusCode::kAlreadyExists);
  // Released once: the series stays for the other id.
  owner->Release(first);
  EXPECT_EQ(owner->Value(first).status().code(), StatusCode::kNotFound);
  EXPECT_DOUBLE_EQ(*owner->Value(second), 1);
  owner->Release(second);
  owner->Release(second);  // unknown: ignored
  EXPECT_EQ(metrics.family_count(), 0u);
  EXPECT_EQ(Scrape(metrics), "");
}

TEST(CustomMetricsTest, AnOwnersEndRemovesItsMetrics) {
  CustomMetrics metrics;
  auto stays = metrics.ForModel("stays", "1");
  ASSERT_TRUE(stays->Create(Counter("c_total")).ok());
  {
    auto goes = metrics.ForModel("goes", "1");
    ASSERT_TRUE(goes->Create(Counter("c_total")).ok());
    ASSERT_TRUE(goes->Create(Counter("only_mine_total")).ok());
    EXPECT_EQ(metrics.family_count(), 2u);
  }
  EXPECT_EQ(metrics.family_count(), 1u);
  const std::string text = Scrape(metrics);
  EXPECT_EQ(text.find("goes"), std::string::npos) << text;
  EXPECT_NE(text.find("stays"), std::string::npos) << text;
}

TEST(CustomMetricsTest, BoundsKeepAModelFromBlowingUpTheEndpoint) {
  CustomMetrics::Options options;
  options.max_families = 3;
  options.max_families_per_model = 2;
  options.max_metrics_per_model = 4;
  options.max_labels = 2;
  options.max_label_value_bytes = 8;
  options.max_name_bytes = 16;
  options.max_description_bytes = 10;
  options.max_buckets = 2;
  CustomMetrics metrics(options);
  auto owner = metrics.ForModel("m", "1");
  EXPECT_EQ(owner->Create(Counter("c_total", {{"a", "1"}, {"b", "2"}, {"c", "3"}})).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(owner->Create(Counter("c_total", {{"a", "123456789"}})).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(owner->Create(Counter("a_very_long_family_name")).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(owner->Create({"d", "01234567890", CustomMetricKind::kGauge, {}, {}}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(owner->Create({"h", "", CustomMetricKind::kHistogram, {}, {1, 2, 3}}).status().code(),
            StatusCode::kInvalidArgument);
  auto spec = [](std::string family, std::string value) {
    return CustomMetricSpec{std::move(family), "", CustomMetricKind::kCounter, {{"k", value}}, {}};
  };
  ASSERT_TRUE(owner->Create(spec("f1", "1")).ok());
  ASSERT_TRUE(owner->Create(spec("f2", "1")).ok());
  auto third_family = owner->Create(spec("f3", "1"));
  EXPECT_EQ(third_family.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(third_family.status().message().find("per model"), std::string::npos);
  ASSERT_TRUE(owner->Create(spec("f1", "2")).ok());
  ASSERT_TRUE(owner->Create(spec("f1", "3")).ok());
  auto fifth = owner->Create(spec("f1", "4"));
  EXPECT_EQ(fifth.status().code(), StatusCode::kResourceExhausted);
  auto other = metrics.ForModel("o", "1");
  ASSERT_TRUE(other->Create(spec("f3", "1")).ok());
  EXPECT_EQ(other->Create(spec("f4", "1")).status().code(), StatusCode::kResourceExhausted);
}

TEST(CustomMetricsTest, ConcurrentUpdatesAndScrapesAgree) {
  CustomMetrics metrics;
  auto owner = metrics.ForModel("m", "1");
  const uint64_t id = *owner->Create(Counter("c_total"));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i)
        ASSERT_TRUE(owner->Update(id, CustomMetricOp::kIncrement, 1).ok());
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; i < 50; ++i) (void)Scrape(metrics);
  });
  for (auto& t : threads) t.join();
  EXPECT_DOUBLE_EQ(*owner->Value(id), 4000);
}

}  // namespace
}  // namespace mm
