// A latency histogram for the request path: fixed buckets, relaxed atomic
// counters, no lock and no allocation per observation.
//
// Buckets (upper bounds, inclusive) run from 50 µs to 60 s in 1-2.5-5 steps,
// plus +Inf: the same bounds for every duration the server reports, so that
// dashboards can add and compare them. Observing costs a short search over
// the bounds and two atomic additions.
//
// Thread-safety: Observe and Read may run concurrently. A reader sees each
// counter exactly, but the counters of one Read are taken a moment apart (the
// count may be a few observations ahead of the sum or a bucket): fine for a
// scrape, which sees the missing ones next time.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace mm {

class LatencyHistogram {
 public:
  // Upper bounds of the finite buckets, in ns.
  static constexpr std::array<int64_t, 19> kBoundsNs = {
      50'000,        100'000,        250'000,        500'000,       1'000'000,
      2'500'000,     5'000'000,      10'000'000,     25'000'000,    50'000'000,
      100'000'000,   250'000'000,    500'000'000,    1'000'000'000, 2'500'000'000,
      5'000'000'000, 10'000'000'000, 30'000'000'000, 60'000'000'000};
  static constexpr size_t kBuckets = kBoundsNs.size() + 1;  // the last is +Inf

  // The bucket `ns` falls in (negative durations count as 0).
  static size_t BucketOf(int64_t ns) {
    size_t i = 0;
    while (i < kBoundsNs.size() && ns > kBoundsNs[i]) ++i;
    return i;
  }

  void Observe(int64_t ns) {
    if (ns < 0) ns = 0;
    counts_[BucketOf(ns)].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(static_cast<uint64_t>(ns), std::memory_order_relaxed);
  }

  struct Snapshot;
  // Adds another histogram's counts (carrying statistics over to a new owner).
  void Add(const Snapshot& other);

  struct Snapshot {
    std::array<uint64_t, kBuckets> counts{};  // per bucket, not cumulative
    uint64_t count = 0;                       // sum of counts
    uint64_t sum_ns = 0;
  };
  Snapshot Read() const {
    Snapshot s;
    for (size_t i = 0; i < kBuckets; ++i) {
      s.counts[i] = counts_[i].load(std::memory_order_relaxed);
      s.count += s.counts[i];
    }
    s.sum_ns = sum_ns_.load(std::memory_order_relaxed);
    return s;
  }

 private:
  std::array<std::atomic<uint64_t>, kBuckets> counts_{};
  std::atomic<uint64_t> sum_ns_{0};
};

inline void LatencyHistogram::Add(const Snapshot& other) {
  for (size_t i = 0; i < kBuckets; ++i)
    counts_[i].fetch_add(other.counts[i], std::memory_order_relaxed);
  sum_ns_.fetch_add(other.sum_ns, std::memory_order_relaxed);
}

}  // namespace mm
