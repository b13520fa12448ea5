#include "tenancy/usage.h"

#include <gtest/gtest.h>

#include <string>
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

// The request path's lookup (a memo keyed by the servable's address, no
// lock on a hit) gives the same counters as the locked one, whatever the
// keys: a key shared by two models, or reused by another, is checked by name.
TEST(UsageTest, KeyedLookupFindsTheModelsOwnCounters) {
  UsageLedger ledger;
  TenantUsage* a = ledger.Tenant("a");
  int servable_1 = 0, servable_2 = 0;
  ModelUsage* m = a->Model("m", &servable_1);
  EXPECT_EQ(m, a->Model("m"));
  EXPECT_EQ(m->model(), "m");
  EXPECT_EQ(a->Model("m", &servable_1), m);              // from the memo
  EXPECT_EQ(a->Model("n", &servable_1), a->Model("n"));  // the same key, another model
  EXPECT_EQ(a->Model("m", &servable_1), m);
  EXPECT_EQ(a->Model("m", &servable_2), m);  // a new version of "m": the same counters
  // Every key in a range maps somewhere; each answers its own model.
  std::vector<char> keys(4096);
  for (size_t i = 0; i < keys.size(); i += 16) {
    const std::string name = "model" + std::to_string(i % 48);
    ASSERT_EQ(a->Model(name, &keys[i]), a->Model(name)) << i;
  }
  EXPECT_EQ(ledger.Tenant("b")->Model("m", &servable_1), ledger.Tenant("b")->Model("m"));
  EXPECT_NE(ledger.Tenant("b")->Model("m", &servable_1), m);  // per tenant
}

TEST(UsageTest, KeyedLookupUnderConcurrentUse) {
  UsageLedger ledger;
  TenantUsage* a = ledger.Tenant("a");
  constexpr int kThreads = 4, kEach = 5000;
  std::vector<int> servables(7);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const int k = (i + t) % 7;
        a->Model("m" + std::to_string(k), &servables[static_cast<size_t>(k)])
            ->RecordSuccess(1, 0, 0);
      }
    });
  }
  for (auto& t : threads) t.join();
  uint64_t requests = 0;
  for (const auto& [name, f] : a->Models()) requests += f.requests;
  EXPECT_EQ(requests, uint64_t{kThreads} * kEach);
  EXPECT_EQ(a->Models().size(), 7u);
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
