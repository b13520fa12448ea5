#include "ctl/listings.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mm {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kIndex[] = R"([
  {"name": "add_sub", "version": "1", "state": "READY", "reason": ""},
  {"name": "broken", "state": "UNAVAILABLE",
   "reason": "config.pbtxt: line 2: expected an integer for max_batch_size, got \"x\""}
])";

TEST(ModelsTableTest, OneRowPerEntry) {
  auto t = FormatModelsTable(kIndex, 0);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(*t,
            "NAME     VERSION  STATE        REASON\n"
            "add_sub  1        READY\n"
            "broken   -        UNAVAILABLE  config.pbtxt: line 2: expected an integer for "
            "max_batch_size, got \"x\"\n");
}

TEST(ModelsTableTest, TruncatesTheReasonToTheWidth) {
  auto t = FormatModelsTable(kIndex, 50);
  ASSERT_TRUE(t.ok());
  EXPECT_THAT(*t, HasSubstr("broken   -        UNAVAILABLE  config.pbtxt: line…\n"));
  EXPECT_THAT(*t, Not(HasSubstr("max_batch_size")));
}

TEST(ModelsTableTest, RefusesWhatIsNotAnIndex) {
  EXPECT_FALSE(FormatModelsTable("{}", 0).ok());
  EXPECT_FALSE(FormatModelsTable("nope", 0).ok());
  auto empty = FormatModelsTable("[]", 0);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, "NAME  VERSION  STATE  REASON\n");
}

TEST(StatsTableTest, AveragesFromCumulativeNanoseconds) {
  constexpr char kStats[] = R"({"model_stats": [{"name": "add_sub", "version": "1",
    "last_inference": 1, "inference_count": 12, "execution_count": 10,
    "inference_stats": {"success": {"count": 10, "ns": 25000000},
                        "fail": {"count": 2, "ns": 1000},
                        "queue": {"count": 10, "ns": 1000000},
                        "compute_input": {"count": 10, "ns": 0},
                        "compute_infer": {"count": 10, "ns": 12345000},
                        "compute_output": {"count": 10, "ns": 0},
                        "cache_hit": {"count": 0, "ns": 0}, "cache_miss": {"count": 0, "ns": 0}},
    "batch_stats": []},
    {"name": "add_sub", "version": "2", "inference_count": 0, "execution_count": 0,
     "inference_stats": {"success": {"count": 0, "ns": 0}}}]})";
  auto t = FormatStatsTable(kStats);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(
      *t,
      "MODEL    VERSION  SUCCESS  FAILURES  EXECUTIONS  ROWS  QUEUE MS  INFER MS  TOTAL MS\n"
      "add_sub  1             10         2          10    12     0.100      1.23      2.50\n"
      "add_sub  2              0         0           0     0         -         -         -\n");
  EXPECT_FALSE(FormatStatsTable("[]").ok());
}

TEST(UsageTableTest, OneRowPerTenantAndModel) {
  constexpr char kUsage[] = R"({"tenants": [
    {"tenant": "team-a", "refused": 3, "models": [
      {"name": "add_sub", "requests": 11, "failures": 2, "queue_seconds": 0.001,
       "compute_seconds": 0.0125, "queue_ns": 1000000, "compute_ns": 12500000,
       "bytes_in": 288, "bytes_out": 2048},
      {"name": "other", "requests": 1, "failures": 0, "compute_seconds": 0,
       "bytes_in": 0, "bytes_out": 0}]},
    {"tenant": "ops", "refused": 0, "models": []}]})";
  auto t = FormatUsageTable(kUsage);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(*t,
            "TENANT  MODEL    REQUESTS  FAILURES  COMPUTE S  BYTES IN  BYTES OUT  REFUSED\n"
            "team-a  add_sub        11         2      0.013     288 B   2.00 KiB        3\n"
            "team-a  other           1         0      0.000       0 B        0 B\n"
            "ops     -               0         0      0.000       0 B        0 B        0\n");
  EXPECT_FALSE(FormatUsageTable("{}").ok());
}

}  // namespace
}  // namespace mm
