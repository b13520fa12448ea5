#include "ctl/top_view.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ctl/table.h"

namespace mm {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// An overview document as console/console_overview.h specifies it, with
// three bounds (so four counts) to keep it short; `a_success` etc. vary the
// cumulative counters between snapshots.
std::string Document(int64_t time_ms, int a_success, int a_failures, const std::string& a_counts,
                     int b_success) {
  return R"({
  "schema": 1,
  "server": {"name": "mmserve", "version": "0.1.0", "ready": true, "time_ms": )" +
         std::to_string(time_ms) + R"(,
             "uptime_s": 3725.5, "tenants": false, "control_mode": "explicit"},
  "slots": {"size": 16, "busy": 3, "waiting": 1},
  "latency_bounds_s": [0.001, 0.01, 0.1],
  "memory": {"budget": 8589934592, "loaded": 1610612736, "pinned": 0, "evictable": 0,
             "eviction_order": []},
  "models": [
    {"name": "add_sub", "version": 1, "state": "READY", "reason": "", "tenant": "",
     "repository": "/repo", "platform": "onnxruntime_onnx", "isolation": "in-process",
     "instances": 1, "pinned": false, "memory_bytes": 1048576, "queued": 2, "executing": 1,
     "restarts": 0, "last_failure": "",
     "stats": {"success": )" +
         std::to_string(a_success) + R"(, "failures": )" + std::to_string(a_failures) + R"(,
               "in_flight": 0, "executions": 0, "rows": 0, "loads": 1, "load_failures": 0,
               "evictions": 0, "last_load_s": 0.5,
               "latency": {"counts": )" +
         a_counts + R"(, "sum_s": 1.0},
               "queue": {"counts": [0, 0, 0, 0], "sum_s": 0},
               "compute": {"counts": [0, 0, 0, 0], "sum_s": 0}},
     "drift": []},
    {"name": "busy_model", "version": 3, "state": "READY", "reason": "", "tenant": "team-a",
     "repository": "/repo", "platform": "python", "isolation": "process", "instances": 2,
     "pinned": true, "memory_bytes": 0, "queued": 0, "executing": 0, "restarts": 0,
     "last_failure": "",
     "stats": {"success": )" +
         std::to_string(b_success) + R"(, "failures": 0, "in_flight": 0, "executions": 0,
               "rows": 0, "loads": 1, "load_failures": 0, "evictions": 0, "last_load_s": 0,
               "latency": {"counts": [0, 0, 0, 0], "sum_s": 0},
               "queue": {"counts": [0, 0, 0, 0], "sum_s": 0},
               "compute": {"counts": [0, 0, 0, 0], "sum_s": 0}},
     "drift": []},
    {"name": "cold", "version": 0, "state": "UNAVAILABLE", "reason": "unloaded", "tenant": "",
     "repository": "/repo", "platform": "", "isolation": "", "instances": 0, "pinned": false,
     "memory_bytes": 0, "queued": 0, "executing": 0, "restarts": 0, "last_failure": "",
     "drift": []}
  ],
  "tenants": []
})";
}

TEST(OverviewTest, ParsesTheDocument) {
  auto o = ParseOverview(Document(1000, 10, 1, "[1, 9, 1, 0]", 5));
  ASSERT_TRUE(o.ok()) << o.status().message();
  EXPECT_EQ(o->server_name, "mmserve");
  EXPECT_EQ(o->server_version, "0.1.0");
  EXPECT_TRUE(o->ready);
  EXPECT_EQ(o->time_ms, 1000);
  EXPECT_DOUBLE_EQ(o->uptime_s, 3725.5);
  EXPECT_EQ(o->slots_size, 16);
  EXPECT_EQ(o->slots_busy, 3);
  EXPECT_EQ(o->slots_waiting, 1);
  EXPECT_EQ(o->latency_bounds_s, (std::vector<double>{0.001, 0.01, 0.1}));
  EXPECT_EQ(o->memory_budget, 8589934592);
  EXPECT_EQ(o->memory_loaded, 1610612736);
  ASSERT_EQ(o->models.size(), 3u);
  const OverviewModel& a = o->models[0];
  EXPECT_EQ(a.name, "add_sub");
  EXPECT_EQ(a.version, 1);
  EXPECT_EQ(a.state, "READY");
  EXPECT_EQ(a.memory_bytes, 1048576);
  EXPECT_EQ(a.queued, 2);
  EXPECT_EQ(a.executing, 1);
  EXPECT_TRUE(a.has_stats);
  EXPECT_EQ(a.success, 10u);
  EXPECT_EQ(a.failures, 1u);
  EXPECT_EQ(a.latency_counts, (std::vector<uint64_t>{1, 9, 1, 0}));
  EXPECT_EQ(o->models[1].tenant, "team-a");
  EXPECT_FALSE(o->models[2].has_stats);
}

TEST(OverviewTest, RefusesOtherDocuments) {
  EXPECT_FALSE(ParseOverview("{").ok());
  EXPECT_FALSE(ParseOverview("[]").ok());
  EXPECT_THAT(ParseOverview(R"({"schema": 2, "server": {}, "models": []})").status().message(),
              HasSubstr("schema 2"));
  EXPECT_FALSE(ParseOverview(R"({"schema": 1, "models": []})").ok());
}

TEST(TopViewTest, RatesAndQuantilesFromTwoSnapshots) {
  auto before = ParseOverview(Document(10'000, 10, 1, "[1, 9, 1, 0]", 5));
  // Two seconds later: add_sub served 20 more (2 failed), all in (1, 10 ms];
  // busy_model 100 more.
  auto after = ParseOverview(Document(12'000, 28, 3, "[1, 29, 1, 0]", 105));
  ASSERT_TRUE(before.ok() && after.ok());
  const auto rows = ComputeTopRows(&*before, *after, 1.0);
  ASSERT_EQ(rows.size(), 3u);
  // Sorted by req/s, then name.
  EXPECT_EQ(rows[0].name, "busy_model");
  EXPECT_EQ(rows[1].name, "add_sub");
  EXPECT_EQ(rows[2].name, "cold");
  EXPECT_DOUBLE_EQ(*rows[0].requests_per_s, 50.0);
  EXPECT_DOUBLE_EQ(*rows[1].requests_per_s, 10.0);
  EXPECT_DOUBLE_EQ(*rows[1].errors_per_s, 1.0);
  // 20 observations in (0.001, 0.01]: p50 at rank 10 -> 0.001 + 0.009 * 10/20.
  EXPECT_DOUBLE_EQ(*rows[1].p50_s, 0.001 + 0.009 * 0.5);
  EXPECT_DOUBLE_EQ(*rows[1].p99_s, 0.001 + 0.009 * 0.99);
  EXPECT_FALSE(rows[0].p50_s.has_value());  // its histogram did not move
  EXPECT_DOUBLE_EQ(*rows[2].requests_per_s, 0.0);
  EXPECT_EQ(rows[1].queued, 2);
  EXPECT_EQ(rows[1].executing, 1);
}

TEST(TopViewTest, FirstSnapshotHasNoRatesAndAResetCountsFromZero) {
  auto first = ParseOverview(Document(10'000, 10, 1, "[1, 9, 1, 0]", 5));
  ASSERT_TRUE(first.ok());
  const auto rows = ComputeTopRows(nullptr, *first, 1.0);
  for (const TopRow& r : rows) EXPECT_FALSE(r.requests_per_s.has_value()) << r.name;
  // The version reloaded: its counters restarted below the earlier ones.
  auto reloaded = ParseOverview(Document(11'000, 4, 0, "[0, 4, 0, 0]", 5));
  ASSERT_TRUE(reloaded.ok());
  const auto after = ComputeTopRows(&*first, *reloaded, 1.0);
  const TopRow* add_sub = nullptr;
  for (const TopRow& r : after) {
    if (r.name == "add_sub") add_sub = &r;
  }
  ASSERT_NE(add_sub, nullptr);
  EXPECT_DOUBLE_EQ(*add_sub->requests_per_s, 4.0);
  EXPECT_DOUBLE_EQ(*add_sub->p50_s, 0.001 + 0.009 * 0.5);
}

TEST(TopViewTest, UsesTheFallbackIntervalWhenTheClockDidNotMove) {
  auto a = ParseOverview(Document(10'000, 0, 0, "[0, 0, 0, 0]", 0));
  auto b = ParseOverview(Document(10'000, 6, 0, "[0, 6, 0, 0]", 0));
  ASSERT_TRUE(a.ok() && b.ok());
  const auto rows = ComputeTopRows(&*a, *b, 2.0);
  EXPECT_DOUBLE_EQ(*rows[0].requests_per_s, 3.0);
}

TEST(TopViewTest, RendersTheHeaderAndTheTableWithinTheWidth) {
  auto before = ParseOverview(Document(10'000, 10, 1, "[1, 9, 1, 0]", 5));
  auto after = ParseOverview(Document(12'000, 28, 3, "[1, 29, 1, 0]", 105));
  ASSERT_TRUE(before.ok() && after.ok());
  const auto rows = ComputeTopRows(&*before, *after, 1.0);
  const std::string wide = RenderTopFrame(*after, rows, 0, "q: quit");
  EXPECT_THAT(wide, HasSubstr("mmserve 0.1.0"));
  EXPECT_THAT(wide, HasSubstr("up 1h02m"));
  EXPECT_THAT(wide, HasSubstr("slots 3/16 busy, 1 waiting"));
  EXPECT_THAT(wide, HasSubstr("memory 1.50 GiB / 8.00 GiB"));
  EXPECT_THAT(wide, HasSubstr("models 2/3 ready"));
  for (const char* column : {"MODEL", "VERSION", "STATE", "TENANT", "REQ/S", "ERR/S", "P50 MS",
                             "P99 MS", "QUEUE", "EXEC", "MEMORY"}) {
    EXPECT_THAT(wide, HasSubstr(column));
  }
  EXPECT_THAT(wide, HasSubstr("busy_model"));
  EXPECT_THAT(wide, HasSubstr("50.0"));
  EXPECT_THAT(wide, HasSubstr("5.50"));  // p50 of add_sub, ms
  EXPECT_THAT(wide, HasSubstr("1.00 MiB"));
  EXPECT_THAT(wide, HasSubstr("q: quit"));
  // busy_model's row comes before add_sub's.
  EXPECT_LT(wide.find("busy_model"), wide.find("add_sub"));
  const std::string narrow = RenderTopFrame(*after, rows, 60, "q: quit");
  size_t start = 0;
  while (start < narrow.size()) {
    const size_t end = narrow.find('\n', start);
    EXPECT_LE(DisplayWidth(narrow.substr(start, end - start)), 60u)
        << narrow.substr(start, end - start);
    start = end + 1;
  }
  EXPECT_THAT(narrow, Not(HasSubstr("\x1b")));
}

}  // namespace
}  // namespace mm
