#include "core/sharded_counters.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <thread>
#include <vector>

namespace mm {
namespace {

TEST(ShardedCountersTest, OneThreadReadsWhatItAdded) {
  ShardedCounters<3> c;
  EXPECT_EQ(c.Read(0), 0u);
  c.Add(0, 5);
  c.Add(0, 2);
  c.Add(2, 1);
  EXPECT_EQ(c.Read(0), 7u);
  EXPECT_EQ(c.Read(1), 0u);
  EXPECT_EQ(c.Read(2), 1u);
  EXPECT_EQ(c.FetchAddMine(2, 1), 1u);  // this thread's shard holds every add
  int shards = 0;
  c.VisitShards(0, [&](uint64_t) { ++shards; });
  EXPECT_EQ(shards, 1);  // only the shard a thread used is allocated
}

TEST(ShardedCountersTest, ThreadsAddIntoTheirOwnShardsAndTheSumIsExact) {
  ShardedCounters<2> c;
  constexpr int kThreads = 8, kEach = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&c] {
      for (int i = 0; i < kEach; ++i) {
        c.Add(0, 1);
        c.Add(1, 3);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.Read(0), uint64_t{kThreads} * kEach);
  EXPECT_EQ(c.Read(1), uint64_t{3} * kThreads * kEach);
  int shards = 0;
  c.VisitShards(0, [&](uint64_t v) {
    ++shards;
    EXPECT_EQ(v % kEach, 0u);  // whole threads' worth per shard
  });
  EXPECT_GE(shards, 2);
  EXPECT_LE(shards, kThreads);
}

TEST(ShardedCountersTest, AGaugeAddedOnOneThreadAndTakenOnAnotherSumsRight) {
  ShardedCounters<1> c;
  std::thread up([&c] {
    for (int i = 0; i < 100; ++i) c.Add(0, 1);
  });
  up.join();
  std::thread down([&c] {
    for (int i = 0; i < 60; ++i) c.Add(0, ~uint64_t{0});
  });
  down.join();
  EXPECT_EQ(static_cast<int64_t>(c.Read(0)), 40);
}

TEST(ShardedCountersTest, StoreMaxKeepsTheLatestOverAllThreads) {
  ShardedCounters<1> c;
  c.StoreMax(0, 10);
  c.StoreMax(0, 7);  // not lower
  std::thread([&c] { c.StoreMax(0, 30); }).join();
  std::thread([&c] { c.StoreMax(0, 20); }).join();
  EXPECT_EQ(c.ReadMax(0), 30u);
}

TEST(ShardedCountersTest, CompactFoldsEveryShardIntoOneAndKeepsTheValues) {
  ShardedCounters<3> c;
  constexpr int kThreads = 4;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&c, t] {
      c.Add(0, 10);
      c.Add(1, ~uint64_t{0});  // a gauge taken down here ...
      c.StoreMax(2, 100 + t);
    });
  }
  for (auto& t : threads) t.join();
  c.Add(1, kThreads);  // ... and put up here: it sums to 0 through wrapping
  const size_t before = c.shards();
  ASSERT_GE(before, 2u);
  const size_t freed = c.Compact([](size_t i, uint64_t kept, uint64_t other) {
    return i == 2 ? std::max(kept, other) : kept + other;
  });
  EXPECT_EQ(c.shards(), 1u);
  EXPECT_EQ(freed, (before - 1) * ShardedCounters<3>::kShardBytes);
  EXPECT_EQ(c.Read(0), 10u * kThreads);
  EXPECT_EQ(c.Read(1), 0u);
  EXPECT_EQ(c.ReadMax(2), 100u + kThreads - 1);
  // Nothing to fold the second time; adds go on, from any thread.
  EXPECT_EQ(c.Compact([](size_t, uint64_t a, uint64_t b) { return a + b; }), 0u);
  std::thread([&c] { c.Add(0, 1); }).join();
  c.Add(0, 1);
  EXPECT_EQ(c.Read(0), 10u * kThreads + 2);
}

TEST(ShardedCountersTest, ThreadShardIsStableAndInRange) {
  const size_t mine = ThreadShard();
  EXPECT_EQ(ThreadShard(), mine);
  std::set<size_t> seen;
  for (int t = 0; t < 40; ++t) {
    std::thread([&seen] {
      const size_t s = ThreadShard();
      EXPECT_LT(s, kMaxCounterShards);
      seen.insert(s);
    }).join();
  }
  EXPECT_EQ(seen.size(), kMaxCounterShards);  // numbered in turn, wrapping
}

}  // namespace
}  // namespace mm
