// The fleet simulator's placement invariants (bench/fleet_sim/fleet.h): a
// consistent-hash ring maps each model to one server and moves only a removed
// server's models; bounded loads never place past the cap; and a small
// simulation is deterministic, accounts for every request and keeps every
// server within its memory budget (the lifecycle's planner decides).
#include "bench/fleet_sim/fleet.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <string>
#include <vector>

namespace mm::fleet {
namespace {

std::vector<uint64_t> ModelHashes(size_t n) {
  std::vector<uint64_t> out;
  for (size_t i = 0; i < n; ++i) out.push_back(HashName("model-" + std::to_string(i)));
  return out;
}

TEST(HashRingTest, EachModelMapsToOneServer) {
  const HashRing ring(20, 50);
  const HashRing equal(20, 50);
  EXPECT_EQ(ring.points(), 1000u);
  std::set<size_t> used;
  for (uint64_t h : ModelHashes(5000)) {
    const size_t s = ring.Lookup(h);
    ASSERT_LT(s, 20u);
    EXPECT_EQ(ring.Lookup(h), s);   // the same answer every time
    EXPECT_EQ(equal.Lookup(h), s);  // and from an equal ring
    used.insert(s);
  }
  EXPECT_EQ(used.size(), 20u);  // with 50 points each, every server owns some
}

TEST(HashRingTest, RemovingAServerMovesOnlyItsModels) {
  HashRing ring(20, 50);
  const std::vector<uint64_t> hashes = ModelHashes(5000);
  std::vector<size_t> before;
  for (uint64_t h : hashes) before.push_back(ring.Lookup(h));
  ring.RemoveServer(7);
  EXPECT_EQ(ring.live_servers(), 19u);
  EXPECT_EQ(ring.points(), 950u);
  size_t moved = 0;
  for (size_t i = 0; i < hashes.size(); ++i) {
    const size_t after = ring.Lookup(hashes[i]);
    EXPECT_NE(after, 7u);
    if (before[i] == 7) {
      ++moved;
    } else {
      EXPECT_EQ(after, before[i]) << "model " << i << " moved off a server that stayed";
    }
  }
  EXPECT_GT(moved, 0u);
}

TEST(HashRingTest, SuccessorsAreDistinctOwnerFirst) {
  const HashRing ring(10, 20);
  for (uint64_t h : ModelHashes(200)) {
    const std::vector<size_t> s = ring.Successors(h, 4);
    ASSERT_EQ(s.size(), 4u);
    EXPECT_EQ(s[0], ring.Lookup(h));
    EXPECT_EQ(std::set<size_t>(s.begin(), s.end()).size(), 4u);
  }
  EXPECT_EQ(ring.Successors(HashName("m"), 50).size(), 10u);  // no more than there are
}

TEST(BoundedLoadsTest, CapLeavesRoomForOneMore) {
  for (uint64_t load : {0, 1, 7, 99, 100, 101, 12345}) {
    for (size_t servers : {1, 3, 100}) {
      for (double eps : {0.0, 0.1, 0.25, 1.0}) {
        const uint64_t cap = BoundedLoadCap(load, servers, eps);
        // Were every server at the cap, the fleet would hold more than `load`.
        EXPECT_GT(cap * servers, load) << load << " " << servers << " " << eps;
        EXPECT_GE(static_cast<double>(cap), (1 + eps) * static_cast<double>(load + 1) / servers);
      }
    }
  }
}

TEST(BoundedLoadsTest, OwnerWhileUnderTheCap) {
  const HashRing ring(10, 20);
  const std::vector<uint64_t> loads(10, 0);
  for (uint64_t h : ModelHashes(500)) EXPECT_EQ(ring.LookupBounded(h, loads, 1), ring.Lookup(h));
}

TEST(BoundedLoadsTest, NeverExceedsTheCap) {
  // Every request to a handful of models: plain consistent hashing would put
  // them all on at most five servers.
  const size_t servers = 16;
  const HashRing ring(servers, 40);
  const std::vector<uint64_t> hot = ModelHashes(5);
  for (double eps : {0.0, 0.25, 1.0}) {
    std::vector<uint64_t> loads(servers, 0);
    uint64_t total = 0;
    for (size_t i = 0; i < 20000; ++i) {
      const uint64_t cap = BoundedLoadCap(total, servers, eps);
      const size_t s = ring.LookupBounded(hot[i % hot.size()], loads, cap);
      ASSERT_LT(loads[s], cap);
      ++loads[s];
      ++total;
      ASSERT_LE(*std::max_element(loads.begin(), loads.end()), cap) << "eps " << eps;
    }
    const double mean = static_cast<double>(total) / servers;
    EXPECT_LE(static_cast<double>(*std::max_element(loads.begin(), loads.end())),
              std::ceil((1 + eps) * (mean + 1)))
        << "eps " << eps;
  }
}

TEST(ZipfSamplerTest, ProbabilitiesFallWithRank) {
  const ZipfSampler zipf(1000, 1.0);
  double sum = 0;
  for (size_t r = 0; r < 1000; ++r) {
    sum += zipf.Probability(r);
    if (r > 0) EXPECT_LT(zipf.Probability(r), zipf.Probability(r - 1));
  }
  EXPECT_NEAR(sum, 1.0, 1e-9);
  EXPECT_NEAR(zipf.Probability(0) / zipf.Probability(9), 10.0, 1e-9);
  Rng rng(3);
  size_t top = 0;
  for (int i = 0; i < 100000; ++i) top += zipf.Sample(rng) == 0;
  EXPECT_NEAR(top / 100000.0, zipf.Probability(0), 0.01);
}

Config SmallConfig() {
  Config c;
  c.models = 300;
  c.servers = 8;
  c.memory_fraction = 0.3;
  c.size_median = 50'000'000;
  c.requests = 20000;
  c.rate = 200;
  c.vnodes = 30;
  c.hot_models = 10;
  c.replicas = 3;
  c.hot_refresh_seconds = 5;
  c.window_seconds = 2;
  return c;
}

TEST(SimulateTest, AccountsForEveryRequestWithinTheBudget) {
  const Config c = SmallConfig();
  const Workload w = MakeWorkload(c);
  ASSERT_EQ(w.names.size(), 300u);
  EXPECT_EQ(w.server_memory, static_cast<uint64_t>(static_cast<double>(w.total_bytes) * 0.3 / 8));
  for (Policy p : kAllPolicies) {
    SCOPED_TRACE(std::string(PolicyName(p)));
    const Result r = Simulate(c, w, p);
    const Counters& k = r.total;
    EXPECT_EQ(k.requests, c.requests);
    EXPECT_EQ(k.hits + k.waited, k.requests);
    EXPECT_LE(k.failed, k.waited);
    EXPECT_GT(k.hits, 0u);
    EXPECT_GT(k.loads, 0u);
    EXPECT_GT(k.evictions, 0u);  // the fleet holds 30% of the bytes
    EXPECT_EQ(std::accumulate(k.per_server.begin(), k.per_server.end(), uint64_t{0}), k.requests);
    EXPECT_LE(r.peak_server_bytes, w.server_memory);
    EXPECT_GT(r.peak_server_bytes, 0u);
    ASSERT_EQ(r.hours.size(), 24u);
    uint64_t hour_requests = 0;
    for (const Counters& h : r.hours) hour_requests += h.requests;
    EXPECT_EQ(hour_requests, k.requests);
    // Deterministic for a seed.
    const Result again = Simulate(c, w, p);
    EXPECT_EQ(again.total.hits, k.hits);
    EXPECT_EQ(again.total.evictions, k.evictions);
    EXPECT_EQ(again.total.per_server, k.per_server);
  }
}

TEST(SimulateTest, PoliciesShapeTheLoad) {
  const Config c = SmallConfig();
  const Workload w = MakeWorkload(c);
  const Result random = Simulate(c, w, Policy::kRandom);
  const Result chash = Simulate(c, w, Policy::kChash);
  const Result bounded = Simulate(c, w, Policy::kChashBounded);
  // Hashing keeps a model's requests on one server: more hits than spraying.
  EXPECT_GT(chash.total.HitRatio(), random.total.HitRatio());
  // Bounded loads evens out what the Zipf head piles on one server.
  EXPECT_LT(bounded.total.Imbalance(), chash.total.Imbalance());
  EXPECT_LE(bounded.WorstHourImbalance(), 1.0 + c.epsilon + 0.5);
}

}  // namespace
}  // namespace mm::fleet
