#include "http/usage_codec.h"

#include <gtest/gtest.h>

namespace mm {
namespace {

TEST(UsageCodecTest, Empty) { EXPECT_EQ(EncodeUsage({}), R"({"tenants":[]})"); }

TEST(UsageCodecTest, TenantsAndModelsInOrder) {
  UsageFigures f;
  f.requests = 3;
  f.failures = 1;
  f.queue_ns = 1'500'000'000;
  f.compute_ns = 250'000'000;
  f.bytes_in = 64;
  f.bytes_out = 32;
  std::vector<TenantUsageReport> reports(2);
  reports[0].tenant = "acme";
  reports[0].refused = 2;
  reports[0].models = {{"m1", f}, {"m2", UsageFigures{}}};
  reports[1].tenant = "beta";
  EXPECT_EQ(EncodeUsage(reports),
            R"({"tenants":[{"tenant":"acme","refused":2,"models":[)"
            R"({"name":"m1","requests":3,"failures":1,"queue_seconds":1.5,)"
            R"("compute_seconds":0.25,"queue_ns":1500000000,"compute_ns":250000000,)"
            R"("bytes_in":64,"bytes_out":32},)"
            R"({"name":"m2","requests":0,"failures":0,"queue_seconds":0,"compute_seconds":0,)"
            R"("queue_ns":0,"compute_ns":0,"bytes_in":0,"bytes_out":0}]},)"
            R"({"tenant":"beta","refused":0,"models":[]}]})");
}

}  // namespace
}  // namespace mm
