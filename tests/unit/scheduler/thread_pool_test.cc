// ThreadPool: every job runs once; jobs may submit jobs; Shutdown drains
// what was submitted and runs later submissions inline; the pool's size.
// Run under several pool sizes. Gates, not sleeps, hold jobs where needed.
#include "scheduler/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "gate.h"

namespace mm {
namespace {

class ThreadPoolTest : public ::testing::TestWithParam<size_t> {};

TEST_P(ThreadPoolTest, EveryJobRunsOnceBeforeShutdownReturns) {
  ThreadPool pool(GetParam());
  constexpr int kJobs = 1000;
  std::vector<std::atomic<int>> runs(kJobs);
  for (int i = 0; i < kJobs; ++i) pool.Submit([&runs, i] { ++runs[i]; });
  pool.Shutdown();  // runs every job already submitted
  for (int i = 0; i < kJobs; ++i) EXPECT_EQ(runs[i].load(), 1) << i;
}

TEST_P(ThreadPoolTest, JobsMaySubmitJobs) {
  ThreadPool pool(GetParam());
  std::atomic<int> leaves{0};
  for (int i = 0; i < 10; ++i) {
    pool.Submit([&] {
      for (int j = 0; j < 10; ++j) pool.Submit([&] { ++leaves; });
    });
  }
  pool.Shutdown();
  EXPECT_EQ(leaves.load(), 100);
}

TEST_P(ThreadPoolTest, JobsRunOnThePoolsThreads) {
  ThreadPool pool(GetParam());
  Gate gate;
  std::atomic<bool> on_caller{false};
  const auto caller = std::this_thread::get_id();
  pool.Submit([&] {
    on_caller = std::this_thread::get_id() == caller;
    gate.Wait();
  });
  gate.AwaitWaiters(1);  // it started while this thread waits here: not inline
  gate.Open();
  pool.Shutdown();
  EXPECT_FALSE(on_caller.load());
}

TEST_P(ThreadPoolTest, SizedThreadsRunAtOnce) {
  const size_t n = GetParam();
  ThreadPool pool(n);
  EXPECT_EQ(pool.size(), n);
  // n jobs that each wait at a gate: all n are running at once.
  Gate gate;
  for (size_t i = 0; i < n; ++i) pool.Submit([&] { gate.Wait(); });
  gate.AwaitWaiters(static_cast<int>(n));
  gate.Open();
  pool.Shutdown();
}

TEST_P(ThreadPoolTest, SubmitAfterShutdownRunsInline) {
  ThreadPool pool(GetParam());
  pool.Shutdown();
  bool ran = false;
  std::thread::id where;
  pool.Submit([&] {
    ran = true;
    where = std::this_thread::get_id();
  });
  EXPECT_TRUE(ran);  // at once, on this thread: no job is lost
  EXPECT_EQ(where, std::this_thread::get_id());
  pool.Shutdown();  // idempotent
}

TEST_P(ThreadPoolTest, DestructorDrainsLikeShutdown) {
  std::atomic<int> runs{0};
  {
    ThreadPool pool(GetParam());
    for (int i = 0; i < 100; ++i) pool.Submit([&] { ++runs; });
  }
  EXPECT_EQ(runs.load(), 100);
}

INSTANTIATE_TEST_SUITE_P(Sizes, ThreadPoolTest, ::testing::Values(1, 2, 4));

TEST(ThreadPoolSizeTest, ZeroThreadsMeansOne) {
  ThreadPool pool(0);
  EXPECT_EQ(pool.size(), 1u);
  std::atomic<int> runs{0};
  pool.Submit([&] { ++runs; });
  pool.Shutdown();
  EXPECT_EQ(runs.load(), 1);
}

}  // namespace
}  // namespace mm
