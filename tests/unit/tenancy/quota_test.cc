#include "tenancy/quota.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "tenancy/tenants.h"

namespace mm {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

// Admits at `now`, releasing nothing: what a request arriving then is told.
Status Admit(TenantQuota& quota, int64_t now) {
  bool counted = false;
  return quota.Admit(now, &counted);
}

TenantQuotas Rate(double rps, double burst) {
  TenantQuotas q;
  q.requests_per_second = rps;
  q.burst = burst;
  return q;
}

TEST(TenantQuotaTest, NoQuotaAdmitsEverything) {
  TenantQuota quota("t");
  quota.Configure(TenantQuotas{});
  EXPECT_FALSE(quota.limited());
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(Admit(quota, 0).ok());
}

TEST(TenantQuotaTest, TheRateAdmitsABurstThenOnePerInterval) {
  TenantQuota quota("team-a");
  quota.Configure(Rate(10, 3));  // one per 100 ms, three at once
  const int64_t t0 = 5 * kSecond;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(Admit(quota, t0).ok()) << i;
  Status refused = Admit(quota, t0);
  EXPECT_EQ(refused.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(refused.retry_after_ms(), 100u);
  EXPECT_NE(refused.message().find("tenant 'team-a' is over its rate quota of 10 requests/s "
                                   "(burst 3); retry in 100 ms"),
            std::string::npos)
      << refused.message();
  // Refusals take nothing: 100 ms later exactly one more gets through.
  EXPECT_FALSE(Admit(quota, t0 + kSecond / 10 - 1).ok());
  EXPECT_TRUE(Admit(quota, t0 + kSecond / 10).ok());
  EXPECT_FALSE(Admit(quota, t0 + kSecond / 10).ok());
  // After a quiet second the whole burst is back, and no more.
  const int64_t t1 = t0 + 2 * kSecond;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(Admit(quota, t1).ok()) << i;
  EXPECT_FALSE(Admit(quota, t1).ok());
}

TEST(TenantQuotaTest, ASlowRateSaysHowLongToWait) {
  TenantQuota quota("t");
  quota.Configure(Rate(0.5, 1));  // one per 2 s
  EXPECT_TRUE(Admit(quota, 0).ok());
  Status refused = Admit(quota, kSecond / 2);
  EXPECT_EQ(refused.retry_after_ms(), 1500u);
}

TEST(TenantQuotaTest, ConcurrencyCountsRequestsUntilReleased) {
  TenantQuota quota("team-b");
  TenantQuotas q;
  q.max_concurrency = 2;
  quota.Configure(q);
  EXPECT_TRUE(quota.limits_concurrency());
  EXPECT_TRUE(Admit(quota, 0).ok());
  EXPECT_TRUE(Admit(quota, 0).ok());
  Status refused = Admit(quota, 0);
  EXPECT_EQ(refused.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(refused.retry_after_ms(), 1000u);
  EXPECT_NE(refused.message().find("2 requests in flight, its max_concurrency quota"),
            std::string::npos);
  EXPECT_EQ(quota.in_flight(), 2);
  quota.Release();
  EXPECT_TRUE(Admit(quota, 0).ok());
  EXPECT_EQ(quota.in_flight(), 2);
}

TEST(TenantQuotaTest, OnlyAConcurrencyQuotaCountsTheRequest) {
  TenantQuota rate_only("t");
  rate_only.Configure(Rate(100, 10));
  bool counted = true;
  EXPECT_TRUE(rate_only.Admit(0, &counted).ok());
  EXPECT_FALSE(counted);
  TenantQuota narrow("t");
  TenantQuotas q;
  q.max_concurrency = 1;
  narrow.Configure(q);
  EXPECT_TRUE(narrow.Admit(0, &counted).ok());
  EXPECT_TRUE(counted);
  EXPECT_FALSE(narrow.Admit(0, &counted).ok());
  EXPECT_FALSE(counted);  // refused: nothing to release
  EXPECT_EQ(narrow.in_flight(), 1);
}

TEST(TenantQuotaTest, ARateRefusalGivesBackItsConcurrencySlot) {
  TenantQuota quota("t");
  TenantQuotas q = Rate(1, 1);
  q.max_concurrency = 5;
  quota.Configure(q);
  EXPECT_TRUE(Admit(quota, 0).ok());
  EXPECT_FALSE(Admit(quota, 0).ok());
  EXPECT_EQ(quota.in_flight(), 1);
}

TEST(TenantQuotaTest, ConcurrentAdmissionsNeverExceedTheBurst) {
  TenantQuota quota("t");
  quota.Configure(Rate(1, 100));  // at one instant: exactly 100
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      for (int n = 0; n < 100; ++n) admitted += Admit(quota, kSecond).ok() ? 1 : 0;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 100);
}

TEST(TenantQuotaTest, ReconfiguringKeepsRequestsInFlight) {
  TenantQuota quota("t");
  TenantQuotas q;
  q.max_concurrency = 1;
  quota.Configure(q);
  EXPECT_TRUE(Admit(quota, 0).ok());
  q.max_concurrency = 2;
  quota.Configure(q);  // a reload
  EXPECT_TRUE(Admit(quota, 0).ok());
  EXPECT_FALSE(Admit(quota, 0).ok());
}

}  // namespace
}  // namespace mm
