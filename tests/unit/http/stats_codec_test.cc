#include "http/stats_codec.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cmath>
#include <string>

namespace mm {
namespace {

TEST(StatsCodecTest, Empty) { EXPECT_EQ(EncodeStatistics({}), R"({"model_stats":[]})"); }

TEST(StatsCodecTest, OneModel) {
  ModelStatsSnapshot s;
  s.model = "add_sub";
  s.version = 2;
  s.tenant = "acme";
  s.last_inference_ms = 1700000000000;
  s.inference_count = 10;
  s.execution_count = 4;
  s.success = {10, 5000};
  s.fail = {1, 70};
  s.queue = {10, 100};
  s.compute_input = {4, 11};
  s.compute_infer = {4, 22};
  s.compute_output = {4, 33};
  s.batches = {{1, {1, 1}, {1, 2}, {1, 3}}, {4, {3, 4}, {3, 5}, {3, 6}}};
  s.failures_by_code[static_cast<size_t>(StatusCode::kInvalidArgument)] = 1;
  s.in_flight = 2;
  s.loads = 1;
  s.load_failures = 0;
  s.last_load_ns = 123;
  s.evictions = 5;
  s.on_demand_loads = 6;
  EXPECT_EQ(EncodeStatistics({s}),
            R"({"model_stats":[{"name":"add_sub","version":"2","last_inference":1700000000000,)"
            R"("inference_count":10,"execution_count":4,"inference_stats":{)"
            R"("success":{"count":10,"ns":5000},"fail":{"count":1,"ns":70},)"
            R"("queue":{"count":10,"ns":100},"compute_input":{"count":4,"ns":11},)"
            R"("compute_infer":{"count":4,"ns":22},"compute_output":{"count":4,"ns":33},)"
            R"("cache_hit":{"count":0,"ns":0},"cache_miss":{"count":0,"ns":0}},)"
            R"("batch_stats":[{"batch_size":1,"compute_input":{"count":1,"ns":1},)"
            R"("compute_infer":{"count":1,"ns":2},"compute_output":{"count":1,"ns":3}},)"
            R"({"batch_size":4,"compute_input":{"count":3,"ns":4},)"
            R"("compute_infer":{"count":3,"ns":5},"compute_output":{"count":3,"ns":6}}],)"
            R"("memory_usage":[],"mmserve":{"tenant":"acme","in_flight":2,)"
            R"("failures":{"INVALID_ARGUMENT":1},"loads":1,"load_failures":0,)"
            R"("last_load_ns":123,"evictions":5,"on_demand_loads":6}}]})");
}

TEST(StatsCodecTest, DriftFeaturesNotReadyHaveNullPsi) {
  ModelStatsSnapshot s;
  s.model = "m";
  DriftMonitor::FeatureDrift ready;
  ready.input = "x";
  ready.feature = 1;
  ready.psi = 0.5;
  ready.rows = 100;
  ready.ready = true;
  ready.alerting = true;
  DriftMonitor::FeatureDrift waiting;
  waiting.input = "x";
  waiting.psi = std::nan("");
  waiting.rows = 3;
  s.drift = {ready, waiting};
  const std::string json = EncodeStatistics({s, s});
  EXPECT_NE(json.find(R"("on_demand_loads":0,"drift":[)"
                      R"({"input":"x","feature":1,"psi":0.5,"rows":100,"alerting":true},)"
                      R"({"input":"x","feature":0,"psi":null,"rows":3,"alerting":false}]}})"),
            std::string::npos)
      << json;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_FALSE(parser.parse(json).get(doc)) << json;
  simdjson::dom::array models;
  ASSERT_FALSE(doc["model_stats"].get(models));
  EXPECT_EQ(models.size(), 2u);
}

}  // namespace
}  // namespace mm
