#include "tenancy/quota.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "tenancy/tenants.h"

namespace mm {

void TenantQuota::Configure(const TenantQuotas& quotas) {
  max_concurrency_.store(static_cast<int64_t>(quotas.max_concurrency), std::memory_order_relaxed);
  if (quotas.requests_per_second > 0) {
    const double interval = 1e9 / quotas.requests_per_second;
    interval_ns_.store(std::max<int64_t>(1, std::llround(interval)), std::memory_order_relaxed);
    tolerance_ns_.store(std::llround((std::max(1.0, quotas.burst) - 1) * interval),
                        std::memory_order_relaxed);
  } else {
    interval_ns_.store(0, std::memory_order_relaxed);
  }
  rate_.store(quotas.requests_per_second, std::memory_order_relaxed);
  burst_.store(quotas.burst, std::memory_order_relaxed);
}

Status TenantQuota::Admit(int64_t now_ns, bool* counted) {
  *counted = false;
  const int64_t max = max_concurrency_.load(std::memory_order_relaxed);
  if (max > 0 && in_flight_.fetch_add(1, std::memory_order_acq_rel) >= max) {
    in_flight_.fetch_sub(1, std::memory_order_acq_rel);
    return ResourceExhausted("tenant '" + tenant_id_ + "' has " + std::to_string(max) +
                             " requests in flight, its max_concurrency quota; retry when one "
                             "has completed")
        .WithRetryAfter(1000);
  }
  const int64_t interval = interval_ns_.load(std::memory_order_relaxed);
  if (interval > 0) {
    const int64_t tolerance = tolerance_ns_.load(std::memory_order_relaxed);
    int64_t tat = tat_ns_.load(std::memory_order_relaxed);
    for (;;) {
      const int64_t start = std::max(tat, now_ns);
      if (start - now_ns > tolerance) {
        if (max > 0) in_flight_.fetch_sub(1, std::memory_order_acq_rel);
        const int64_t wait_ns = start - now_ns - tolerance;
        const auto wait_ms = static_cast<uint32_t>(std::min<int64_t>(
            (wait_ns + 999'999) / 1'000'000, std::numeric_limits<uint32_t>::max()));
        char rate[64];
        std::snprintf(rate, sizeof(rate), "%g requests/s (burst %g)",
                      rate_.load(std::memory_order_relaxed),
                      burst_.load(std::memory_order_relaxed));
        return ResourceExhausted("tenant '" + tenant_id_ + "' is over its rate quota of " + rate +
                                 "; retry in " + std::to_string(std::max<uint32_t>(1, wait_ms)) +
                                 " ms")
            .WithRetryAfter(std::max<uint32_t>(1, wait_ms));
      }
      if (tat_ns_.compare_exchange_weak(tat, start + interval, std::memory_order_relaxed)) break;
    }
  }
  *counted = max > 0;
  return OkStatus();
}

}  // namespace mm
