#include "observability/model_stats.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "observability/metrics.h"

namespace mm {
namespace {

TEST(LatencyHistogramTest, BucketsRunFrom50usTo60sWithInclusiveUpperBounds) {
  EXPECT_EQ(LatencyHistogram::BucketOf(0), 0u);
  EXPECT_EQ(LatencyHistogram::BucketOf(50'000), 0u);  // le="5e-05"
  EXPECT_EQ(LatencyHistogram::BucketOf(50'001), 1u);
  EXPECT_EQ(LatencyHistogram::BucketOf(60'000'000'000), LatencyHistogram::kBoundsNs.size() - 1);
  EXPECT_EQ(LatencyHistogram::BucketOf(60'000'000'001), LatencyHistogram::kBoundsNs.size());
  LatencyHistogram h;
  h.Observe(-5);  // a clock step backwards counts as 0
  h.Observe(2'000'000);
  h.Observe(2'000'000);
  const auto s = h.Read();
  EXPECT_EQ(s.count, 3u);
  EXPECT_EQ(s.sum_ns, 4'000'000u);
  EXPECT_EQ(s.counts[0], 1u);
  EXPECT_EQ(s.counts[LatencyHistogram::BucketOf(2'000'000)], 2u);
}

TEST(ModelStatsTest, CountsRequestsExecutionsAndBatchSizes) {
  ModelStats stats("m", 3, "team-a", 8);
  for (int i = 0; i < 3; ++i) stats.RequestStarted();
  stats.RequestSucceeded(1000, 100, 10, 700, 20);
  stats.RequestSucceeded(3000, 300, 30, 2100, 60);
  stats.RequestFailed(StatusCode::kInvalidArgument, 50);
  stats.ExecutionFinished(4, 10, 700, 20);
  stats.ExecutionFinished(4, 30, 2100, 60);
  stats.ExecutionFinished(1, 1, 2, 3);
  stats.ExecutionFinished(99, 1, 2, 3);  // over max_batch_size: counted under 8
  const ModelStatsSnapshot s = stats.Read();
  EXPECT_EQ(s.model, "m");
  EXPECT_EQ(s.version, 3);
  EXPECT_EQ(s.tenant, "team-a");
  EXPECT_EQ(s.in_flight, 0);
  EXPECT_EQ(s.success.count, 2u);
  EXPECT_EQ(s.success.ns, 4000u);
  EXPECT_EQ(s.fail.count, 1u);
  EXPECT_EQ(s.fail.ns, 50u);
  EXPECT_EQ(s.queue.ns, 400u);
  EXPECT_EQ(s.compute_input.ns, 40u);
  EXPECT_EQ(s.compute_infer.ns, 2800u);
  EXPECT_EQ(s.compute_output.ns, 80u);
  EXPECT_EQ(s.failures_by_code[static_cast<size_t>(StatusCode::kInvalidArgument)], 1u);
  EXPECT_EQ(s.execution_count, 4u);
  EXPECT_EQ(s.inference_count, 4u + 4 + 1 + 99);
  EXPECT_GT(s.last_inference_ms, 0);
  ASSERT_EQ(s.batches.size(), 3u);
  EXPECT_EQ(s.batches[0].batch_size, 1);
  EXPECT_EQ(s.batches[1].batch_size, 4);
  EXPECT_EQ(s.batches[1].compute_infer.count, 2u);
  EXPECT_EQ(s.batches[1].compute_infer.ns, 2800u);
  EXPECT_EQ(s.batches[2].batch_size, 8);
  EXPECT_EQ(s.total_histogram.count, 2u);
}

TEST(ModelStatsTest, ConcurrentRecordingLosesNothing) {
  ModelStats stats("m", 1, "", 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10'000; ++i) {
        stats.RequestStarted();
        stats.RequestSucceeded(100, 1, 1, 1, 1);
        stats.ExecutionFinished(1, 1, 1, 1);
      }
    });
  }
  for (auto& t : threads) t.join();
  const auto s = stats.Read();
  EXPECT_EQ(s.success.count, 40'000u);
  EXPECT_EQ(s.execution_count, 40'000u);
  EXPECT_EQ(s.in_flight, 0);
  EXPECT_EQ(s.total_histogram.count, 40'000u);
}

// Issue 17: per-size statistics are made as sizes run, so a large
// max_batch_size allocates (and reads) nothing per size up front.
TEST(ModelStatsTest, LargeMaxBatchSizeIsSparse) {
  ModelStats stats("m", 1, "t", int64_t{1} << 20);
  EXPECT_TRUE(stats.Read().batches.empty());
  stats.ExecutionFinished(1, 10, 20, 30);
  stats.ExecutionFinished(300, 10, 20, 30);
  stats.ExecutionFinished(300, 10, 20, 30);
  stats.ExecutionFinished(int64_t{1} << 20, 1, 2, 3);
  stats.ExecutionFinished(int64_t{3} << 20, 1, 2, 3);  // counted under the largest
  auto batches = stats.Read().batches;
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0].batch_size, 1);
  EXPECT_EQ(batches[1].batch_size, 300);
  EXPECT_EQ(batches[1].compute_infer.count, 2u);
  EXPECT_EQ(batches[2].batch_size, int64_t{1} << 20);
  EXPECT_EQ(batches[2].compute_infer.count, 2u);
  // Absorbing into a larger copy keeps every size.
  ModelStats bigger("m", 1, "t", int64_t{2} << 20);
  bigger.Absorb(stats.Read());
  EXPECT_EQ(bigger.Read().batches.size(), 3u);
  // A chunk's end at max_batch_size: sizes up to it, none past.
  ModelStats odd("m", 1, "t", 257);
  odd.ExecutionFinished(257, 1, 1, 1);
  odd.ExecutionFinished(256, 1, 1, 1);
  ASSERT_EQ(odd.Read().batches.size(), 2u);
  EXPECT_EQ(odd.Read().batches[1].batch_size, 257);
}

TEST(StatsRegistryTest, KeepsEntriesAcrossReloadsAndGrowsForLargerBatches) {
  StatsRegistry registry;
  auto first = registry.For("m", 1, "a", 4);
  first->LoadSucceeded(5);
  first->RequestStarted();
  first->RequestSucceeded(10, 1, 1, 1, 1);
  first->ExecutionFinished(4, 1, 1, 1);
  EXPECT_EQ(registry.For("m", 1, "", 2), first);  // same entry; owner kept
  EXPECT_EQ(first->Read().tenant, "a");
  auto bigger = registry.For("m", 1, "b", 16);  // a reload raised max_batch_size
  EXPECT_NE(bigger, first);
  const auto s = bigger->Read();
  EXPECT_EQ(s.tenant, "b");
  EXPECT_EQ(s.loads, 1u);
  EXPECT_EQ(s.success.count, 1u);
  ASSERT_EQ(s.batches.size(), 1u);
  EXPECT_EQ(s.batches[0].batch_size, 4);
  EXPECT_EQ(registry.Find("m", 1), bigger);
  EXPECT_EQ(registry.Find("m", 2), nullptr);
  registry.For("a", 2, "", 0);
  const auto all = registry.All();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0]->model(), "a");  // by model, then version
}

// Records requests into `stats` from `threads` new threads (each its own shard).
void RecordFromThreads(ModelStats& stats, int threads) {
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&stats, t] {
      stats.RequestStarted();
      stats.RequestSucceeded(100'000 * (t + 1), 1'000, 10, 20, 30);
      stats.RequestStarted();
      stats.RequestFailed(StatusCode::kUnavailable, 7);
      stats.ExecutionFinished(1, 10, 20, 30);
    });
  }
  for (auto& t : pool) t.join();
}

void ExpectSameCounters(const ModelStatsSnapshot& a, const ModelStatsSnapshot& b) {
  EXPECT_EQ(a.last_inference_ms, b.last_inference_ms);
  EXPECT_EQ(a.inference_count, b.inference_count);
  EXPECT_EQ(a.execution_count, b.execution_count);
  EXPECT_EQ(a.in_flight, b.in_flight);
  EXPECT_EQ(a.success.count, b.success.count);
  EXPECT_EQ(a.success.ns, b.success.ns);
  EXPECT_EQ(a.fail.ns, b.fail.ns);
  EXPECT_EQ(a.queue.ns, b.queue.ns);
  EXPECT_EQ(a.compute_infer.ns, b.compute_infer.ns);
  EXPECT_EQ(a.failures_by_code, b.failures_by_code);
  EXPECT_EQ(a.total_histogram.counts, b.total_histogram.counts);
  EXPECT_EQ(a.total_histogram.sum_ns, b.total_histogram.sum_ns);
  EXPECT_EQ(a.infer_histogram.counts, b.infer_histogram.counts);
}

TEST(StatsRegistryTest, CompactFoldsAnUnheldEntrysShardsAndKeepsEveryCounter) {
  StatsRegistry registry;
  auto stats = registry.For("m", 1, "a", 0, "repo");
  RecordFromThreads(*stats, 4);
  ASSERT_GE(stats->shards(), 2u);
  const ModelStatsSnapshot before = stats->Read();
  EXPECT_EQ(before.success.count, 4u);
  EXPECT_EQ(before.in_flight, 0);
  // Held (a copy still serving, or a read under way): left as it is.
  EXPECT_EQ(registry.Compact("m", 1, "repo"), 0u);
  EXPECT_GE(stats->shards(), 2u);
  ModelStats* raw = stats.get();
  stats.reset();
  // Let go: the first call into the registry folds it.
  ASSERT_EQ(registry.All().size(), 1u);
  EXPECT_EQ(raw->shards(), 1u);
  auto again = registry.Find("m", 1, "repo");
  ASSERT_EQ(again.get(), raw);
  ExpectSameCounters(again->Read(), before);
  // A later load of the same version records on, from any thread.
  RecordFromThreads(*again, 2);
  EXPECT_EQ(again->Read().success.count, 6u);
  const size_t shards = again->shards();
  again.reset();
  EXPECT_EQ(registry.Compact("m", 1, "repo"), (shards - 1) * ModelStats::shard_bytes());
  EXPECT_EQ(raw->shards(), 1u);
  EXPECT_EQ(registry.Find("m", 1, "repo")->Read().success.count, 6u);
  // Unknown entries, or another repository's: nothing.
  EXPECT_EQ(registry.Compact("m", 1, "other"), 0u);
  EXPECT_EQ(registry.Compact("x", 1, "repo"), 0u);
}

TEST(MetricsTest, SerializesHistogramsCumulativelyInSecondsAndEscapesLabels) {
  MetricFamilies families;
  LatencyHistogram h;
  h.Observe(40'000);
  h.Observe(70'000);
  h.Observe(120'000'000'000);  // past 60 s: +Inf only
  AddHistogram(AddFamily(families, "x_seconds", "help", prometheus::MetricType::Histogram),
               {{"model", "we\"ird\\name\n"}}, h.Read());
  AddValue(AddFamily(families, "y_total", "help", prometheus::MetricType::Counter), {}, 3);
  const std::string text = MetricsServer::Serialize(families);
  EXPECT_NE(text.find("x_seconds_bucket{model=\"we\\\"ird\\\\name\\n\",le=\"5e-05\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("le=\"0.0001\"} 2"), std::string::npos) << text;
  EXPECT_NE(text.find("le=\"60\"} 2"), std::string::npos) << text;
  EXPECT_NE(text.find("le=\"+Inf\"} 3"), std::string::npos) << text;
  EXPECT_NE(text.find("x_seconds_count{model=\"we\\\"ird\\\\name\\n\"} 3"), std::string::npos)
      << text;
  EXPECT_NE(text.find("y_total 3"), std::string::npos) << text;
}

TEST(MetricsTest, ProcessMetricsAreReadFromProc) {
  MetricFamilies families;
  CollectProcessMetrics(families);
  std::vector<std::string> names;
  for (const auto& f : families) names.push_back(f.name);
  EXPECT_NE(std::find(names.begin(), names.end(), "process_cpu_seconds_total"), names.end());
  for (const auto& f : families) {
    if (f.name == "process_resident_memory_bytes") EXPECT_GT(f.metric[0].gauge.value, 1e6);
    if (f.name == "process_threads") EXPECT_GE(f.metric[0].gauge.value, 1);
  }
}

TEST(MetricsTest, ServesTheCollectorsOnAPortOfItsOwn) {
  int scrapes = 0;
  auto server = MetricsServer::Create(
      {.address = "127.0.0.1", .port = 0}, {[&scrapes](MetricFamilies& out) {
        ++scrapes;
        AddValue(AddFamily(out, "z", "h", prometheus::MetricType::Gauge), {}, 1);
      }});
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  EXPECT_GT((*server)->port(), 0);
  EXPECT_EQ((*server)->Collect().size(), 1u);
  EXPECT_EQ(scrapes, 1);
  // A port in use is an error naming the flags.
  auto clash = MetricsServer::Create({.address = "127.0.0.1", .port = (*server)->port()}, {});
  ASSERT_FALSE(clash.ok());
  EXPECT_NE(clash.status().message().find("--metrics-port"), std::string::npos);
}

}  // namespace
}  // namespace mm
