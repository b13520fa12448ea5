// The fleet simulator of issue 24: where to place many models over many
// servers, judged by replaying one request trace under each placement policy.
//
// Each simulated server makes room for a load with the lifecycle's own planner
// (PlanEvictions, src/lifecycle/memory_planner.h, the mm_memory_planner library), and
// keeps the use counts the way MemoryAccount and ModelManager do, so that what
// the simulation evicts is what a fleet of mmserve servers would evict:
//  - a request for a resident model is a hit: its copy's uses + 1 and its
//    last use now (VersionTable::Get with count_use);
//  - any other request counts one use on the model's entry (past_uses,
//    ModelManager's on-demand path) and waits for the model's load; the first
//    one queues the load;
//  - a load starts when one of the server's load threads is free: it ages
//    the uses (MemoryAccount::AgeUsesLocked: every known models / 64 loads,
//    halving every count once they add up to 128 per known model; a model is
//    known from its first request on that server), asks PlanEvictions with
//    every resident copy as an idle candidate, applies the plan (an evicted
//    copy's uses join its entry's past_uses) and reserves the model's bytes;
//    a plan refused (RESOURCE_EXHAUSTED) fails the load and its waiters;
//  - a load takes base + bytes x seconds per GB; then the copy is resident
//    (its uses 0, its last use now) and the requests that waited are served.
// Serving takes no time: a model is busy only while it loads, and a loading
// model is a reservation, not a candidate, as in the lifecycle.
//
// The trace: models' sizes log-normal, popularity Zipf over two rank orders
// (two independent permutations of the models) whose mix follows the
// simulated day, weight(t) = shift x (1 - cos(2 pi t / day)) / 2 for the
// second, so that the hot set moves away and back over one day; Poisson
// arrivals at a fixed rate. Every policy replays the same trace (its own
// random stream for routing). Deterministic for a seed; the generators and
// distributions are this file's, not <random>'s, whose distributions differ
// between standard libraries.
//
// Not thread-safe; one simulation per thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lifecycle/memory_planner.h"

namespace mm::fleet {

// xoshiro256** seeded through splitmix64.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t Next();
  double Uniform();                 // [0, 1)
  double Exponential(double mean);  // > 0
  double Normal();                  // standard, Box-Muller
  size_t Below(size_t n);           // [0, n), n > 0

 private:
  uint64_t s_[4];
};

// A 64-bit hash of a name (FNV-1a, then splitmix64's finalizer for the
// avalanche FNV lacks): the ring positions of servers and models.
uint64_t HashName(std::string_view name);

// A consistent-hash ring with virtual nodes: each server owns `vnodes`
// points; a key belongs to the first point at or after its hash, wrapping.
class HashRing {
 public:
  HashRing(size_t servers, size_t vnodes);

  size_t servers() const { return servers_; }  // ever added, removed included
  size_t live_servers() const { return live_; }
  size_t points() const { return points_.size(); }

  // The server owning `hash`. The ring must hold a server.
  size_t Lookup(uint64_t hash) const;
  // The first `count` distinct servers clockwise from `hash` (all live ones
  // when there are fewer), the owner first.
  std::vector<size_t> Successors(uint64_t hash, size_t count) const;
  // Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam
  // 2018): the first server clockwise from `hash` whose load is below `cap`;
  // the owner when every live server is at the cap. `loads` by server.
  size_t LookupBounded(uint64_t hash, const std::vector<uint64_t>& loads, uint64_t cap) const;
  // Takes a server's points off the ring: only its keys move.
  void RemoveServer(size_t server);

 private:
  size_t FirstPoint(uint64_t hash) const;

  struct Point {
    uint64_t hash;
    uint32_t server;
  };
  std::vector<Point> points_;  // by hash
  size_t servers_;
  size_t live_;
};

// The bounded-loads cap for placing one more request when `load` are placed
// over `servers`: ceil((1 + epsilon) x (load + 1) / servers). Some server is
// always below it, so placing never has to exceed it.
uint64_t BoundedLoadCap(uint64_t load, size_t servers, double epsilon);

// Ranks 0..n-1 with P(rank) proportional to 1 / (rank + 1)^s.
class ZipfSampler {
 public:
  ZipfSampler(size_t n, double s);
  size_t Sample(Rng& rng) const;
  double Probability(size_t rank) const;

 private:
  std::vector<double> cdf_;
};

enum class Policy { kRandom, kChash, kChashBounded, kChashReplicated };
inline constexpr Policy kAllPolicies[] = {Policy::kRandom, Policy::kChash, Policy::kChashBounded,
                                          Policy::kChashReplicated};
std::string_view PolicyName(Policy policy);  // random, chash, chash-bounded, chash-replicated
std::optional<Policy> ParsePolicy(std::string_view name);

struct Config {
  size_t models = 10000;
  size_t servers = 100;
  // Each server's memory budget; 0: memory_fraction of all the models'
  // bytes, shared evenly.
  uint64_t server_memory = 0;
  double memory_fraction = 0.4;
  uint64_t size_median = 200'000'000;  // bytes; log-normal sizes
  double size_sigma = 1.0;
  uint64_t size_min = 1'000'000;  // sizes are clamped to at least this
  double zipf_s = 1.0;
  double diurnal_shift = 1.0;  // the second rank order's weight at midday, 0..1
  double rate = 2000;          // requests per second, the whole fleet
  uint64_t requests = 10'000'000;
  double day_seconds = 0;  // the diurnal period; 0: the whole trace (requests / rate)
  double load_base_seconds = 0.05;
  double load_seconds_per_gb = 1.0;  // per 10^9 bytes
  size_t load_threads = 4;           // loads one server runs at once
  EvictionPolicy eviction = EvictionPolicy::kLfu;
  size_t vnodes = 100;  // ring points per server
  // chash-bounded: the cap's slack, and the window a server's load is counted over.
  double epsilon = 0.25;
  double window_seconds = 10;
  // chash-replicated: the `hot_models` models with the most requests
  // (an exponentially decayed count, halved every hot_refresh_seconds)
  // are served round-robin by `replicas` servers, the owner and the next
  // distinct ones clockwise.
  size_t hot_models = 100;
  size_t replicas = 4;
  double hot_refresh_seconds = 60;
  uint64_t seed = 1;
};

// The models of a trace.
struct Workload {
  std::vector<std::string> names;       // "model-00042": index order is name order
  std::vector<uint64_t> bytes;          // each model's footprint
  std::vector<uint64_t> hashes;         // HashName(name)
  std::vector<uint32_t> rank_order[2];  // popularity rank -> model, one per population
  uint64_t total_bytes = 0;
  uint64_t server_memory = 0;  // the budget each server gets
};
Workload MakeWorkload(const Config& config);

// What requests met, over the run or one simulated hour.
struct Counters {
  uint64_t requests = 0;
  uint64_t hits = 0;    // served by a resident copy on arrival
  uint64_t waited = 0;  // waited for a load (queued or loading)
  uint64_t failed = 0;  // of those, failed: the load could not fit
  uint64_t loads = 0;   // loads started
  uint64_t load_bytes = 0;
  uint64_t evictions = 0;
  double wait_seconds = 0;  // summed over the requests that waited and were served
  double max_wait_seconds = 0;
  std::vector<uint64_t> per_server;  // requests routed to each server

  double HitRatio() const;
  double WaitedFraction() const;
  double FailedFraction() const;
  double MeanWaitSeconds() const;
  double Imbalance() const;  // max / mean of per_server; 1: even
};

struct Result {
  Policy policy = Policy::kRandom;
  double seconds = 0;       // simulated
  double hour_seconds = 0;  // one simulated hour (the day / 24)
  Counters total;
  std::vector<Counters> hours;  // by simulated hour (an hour's loads at their start)
  // The most any server held at once, copies and reservations: never over
  // its budget, since every load goes through the planner.
  uint64_t peak_server_bytes = 0;
  double WorstHourImbalance() const;
  double MeanHourImbalance() const;
};

Result Simulate(const Config& config, const Workload& workload, Policy policy);

}  // namespace mm::fleet
