#include "tenancy/usage.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "tenancy/tenant_registry.h"

namespace mm {
namespace {

TEST(UsageTest, RecordsAddUpPerTenantAndModel) {
  UsageLedger ledger;
  TenantUsage* a = ledger.Tenant("a");
  EXPECT_EQ(ledger.Tenant("a"), a);  // one record per id
  a->Model("m")->RecordSuccess(10, 20, 30);
  a->Model("m")->RecordDelivered(40);
  a->Model("m")->RecordSuccess(1, 2, 3);
  a->Model("m")->RecordDelivered(4);
  a->Model("m")->RecordSuccess(7, 7, 7);  // answered, never delivered: no bytes out
  a->Model("m")->RecordFailure();
  a->Model("n")->RecordFailure();
  a->RecordRefused();
  ledger.Tenant("b")->Model("m")->RecordSuccess(5, 5, 5);
  ledger.Tenant("b")->Model("m")->RecordDelivered(5);

  auto models = a->Models();
  ASSERT_EQ(models.size(), 2u);
  EXPECT_EQ(models[0].first, "m");
  const UsageFigures& m = models[0].second;
  EXPECT_EQ(m.requests, 4u);
  EXPECT_EQ(m.failures, 1u);
  EXPECT_EQ(m.queue_ns, 18u);
  EXPECT_EQ(m.compute_ns, 29u);
  EXPECT_EQ(m.bytes_in, 40u);
  EXPECT_EQ(m.bytes_out, 44u);
  EXPECT_EQ(models[1].first, "n");
  EXPECT_EQ(models[1].second.requests, 1u);
  EXPECT_EQ(a->refused(), 1u);

  auto tenants = ledger.Tenants();
  ASSERT_EQ(tenants.size(), 2u);
  EXPECT_EQ(tenants[0]->tenant_id(), "a");
  EXPECT_EQ(tenants[1]->tenant_id(), "b");
  EXPECT_EQ(tenants[1]->Models()[0].second.bytes_out, 5u);
}

TEST(UsageTest, ConcurrentRecordsAreAllCounted) {
  UsageLedger ledger;
  constexpr int kThreads = 4, kEach = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&ledger, t] {
      for (int i = 0; i < kEach; ++i) {
        // Models appear while others record: the first sight takes the write lock.
        ledger.Tenant("a")->Model("m" + std::to_string(i % 7))->RecordSuccess(1, 2, 3);
        ledger.Tenant("a")->Model("m" + std::to_string(i % 7))->RecordDelivered(4);
        if (i % 10 == t) ledger.Tenant("a")->RecordRefused();
      }
    });
  }
  for (auto& t : threads) t.join();
  uint64_t requests = 0, bytes_out = 0;
  for (const auto& [name, f] : ledger.Tenant("a")->Models()) {
    requests += f.requests;
    bytes_out += f.bytes_out;
  }
  EXPECT_EQ(requests, uint64_t{kThreads} * kEach);
  EXPECT_EQ(bytes_out, uint64_t{4} * kThreads * kEach);
  EXPECT_EQ(ledger.Tenant("a")->refused(), uint64_t{kThreads} * kEach / 10);
}

TEST(UsageTest, OpenModeChargesTheDefaultTenant) {
  auto open = TenantRegistry::Open();
  auto tenant = open->Authenticate("");
  ASSERT_TRUE(tenant.ok());
  ASSERT_NE((*tenant)->usage, nullptr);
  (*tenant)->usage->RecordRefused();
  EXPECT_EQ(open->usage().Tenants().at(0)->refused(), 1u);
  EXPECT_EQ(open->usage().Tenants().at(0)->tenant_id(), "default");
}

}  // namespace
}  // namespace mm
