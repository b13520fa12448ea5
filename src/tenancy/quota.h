// TenantQuota: a tenant's request quotas, checked as each inference request
// arrives: how many may be in flight at once (max_concurrency), and how fast
// they may come (requests_per_second with a burst).
//
// The rate is a token bucket in its exact, single-word form (GCRA): the
// bucket is the "theoretical arrival time" of the next request, advanced by
// 1/rate per admitted request; a request is refused when that time is more
// than (burst - 1)/rate ahead of now, and told how long until it is not. One
// compare-and-swap per request, no lock.
//
// A TenantQuota outlives reloads of the tenants file: the registry keeps one
// per tenant id and reconfigures it, so a reload neither refills the bucket
// nor forgets the requests in flight.
//
// Thread-safety: every method may be called concurrently.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace mm {

struct TenantQuotas;

class TenantQuota {
 public:
  explicit TenantQuota(std::string tenant_id) : tenant_id_(std::move(tenant_id)) {}

  // Takes the limits in force (0: none).
  void Configure(const TenantQuotas& quotas);

  // Whether any request quota is set (else Admit always admits).
  bool limited() const {
    return max_concurrency_.load(std::memory_order_relaxed) > 0 ||
           interval_ns_.load(std::memory_order_relaxed) > 0;
  }
  bool limits_concurrency() const { return max_concurrency_.load(std::memory_order_relaxed) > 0; }

  // Admits one request arriving at `now_ns` (steady clock), or refuses it
  // with RESOURCE_EXHAUSTED naming the quota, with a retry-after hint (the
  // exact wait for the rate; 1 s for concurrency, which has no schedule).
  // `*counted` says whether the admitted request holds a concurrency slot,
  // which it must Release when it completes.
  Status Admit(int64_t now_ns, bool* counted);
  void Release() { in_flight_.fetch_sub(1, std::memory_order_acq_rel); }

  int64_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }

 private:
  const std::string tenant_id_;
  std::atomic<int64_t> max_concurrency_{0};
  std::atomic<int64_t> interval_ns_{0};   // 1/rate; 0: no rate quota
  std::atomic<int64_t> tolerance_ns_{0};  // (burst - 1) x interval
  std::atomic<double> rate_{0};           // for messages
  std::atomic<double> burst_{0};
  std::atomic<int64_t> in_flight_{0};
  std::atomic<int64_t> tat_ns_{0};  // when the bucket is full again
};

}  // namespace mm
