#include "isolation/worker_supervisor.h"

#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "isolation/memory_limit.h"

namespace mm {
namespace {

// Something to wait on without sleeping: a counter and its condition.
struct Events {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int> seen;
  void Add(int v) {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(v);
    cv.notify_all();
  }
  std::vector<int> WaitFor(size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return seen.size() >= n; }));
    return seen;
  }
};

std::unique_ptr<WorkerSupervisor> NewSupervisor() {
  auto s = WorkerSupervisor::Create();
  EXPECT_TRUE(s.ok()) << s.status().message();
  return s.ok() ? std::move(*s) : nullptr;
}

// A watch of `worker` whose callbacks do nothing yet.
WorkerSupervisor::Watch WatchOf(const WorkerProcess& worker) {
  WorkerSupervisor::Watch watch;
  watch.pidfd = worker.pidfd();
  watch.pid = worker.pid();
  watch.on_exit = [] {};
  return watch;
}

TEST(WorkerSupervisorTest, SeesAWorkerExitAtOnce) {
  auto supervisor = NewSupervisor();
  ASSERT_NE(supervisor, nullptr);
  auto worker = supervisor->Spawn({"/bin/sleep", "1000"});
  ASSERT_TRUE(worker.ok()) << worker.status().message();
  Events events;
  WorkerSupervisor::Watch watch = WatchOf(**worker);
  watch.on_exit = [&] { events.Add(1); };
  supervisor->Add(std::move(watch));
  (*worker)->Kill(SIGSEGV);
  EXPECT_EQ(events.WaitFor(1), std::vector<int>{1});
  auto exit = (*worker)->TryWait();  // the pidfd was readable: it has exited
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->signal, SIGSEGV);
}

TEST(WorkerSupervisorTest, WatchdogReportsResidentMemoryOverTheLimit) {
  auto supervisor = NewSupervisor();
  ASSERT_NE(supervisor, nullptr);
  auto worker = supervisor->Spawn({"/bin/sleep", "1000"});
  ASSERT_TRUE(worker.ok()) << worker.status().message();
  Events events;
  WorkerSupervisor::Watch watch = WatchOf(**worker);
  watch.rss_limit_bytes = 1;  // any process is over one byte
  watch.on_over_limit = [&](uint64_t rss) { events.Add(rss > 1 ? 1 : 0); };
  const auto id = supervisor->Add(std::move(watch));
  const auto seen = events.WaitFor(1);  // every 100 ms while over: maybe more than once
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen[0], 1);
  supervisor->Remove(id);
}

TEST(WorkerSupervisorTest, RunsEveryJobWhenDue) {
  auto supervisor = NewSupervisor();
  ASSERT_NE(supervisor, nullptr);
  Events events;
  supervisor->After(std::chrono::milliseconds(30), [&] { events.Add(2); });
  supervisor->After(std::chrono::milliseconds(0), [&] { events.Add(1); });
  auto seen = events.WaitFor(2);
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<int>{1, 2}));
}

// Issue 17, defect 5: a restart that hangs (its worker's handshake) held up
// every other model's restarts, which ran one at a time on one thread.
TEST(WorkerSupervisorTest, AJobThatBlocksHoldsUpNoOther) {
  auto supervisor = NewSupervisor();
  ASSERT_NE(supervisor, nullptr);
  Events events;
  std::mutex mu;
  std::condition_variable cv;
  bool released = false;
  supervisor->After(std::chrono::milliseconds(0), [&] {
    events.Add(1);
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return released; });  // until the later job has run
    events.Add(3);
  });
  supervisor->After(std::chrono::milliseconds(20), [&] {
    events.WaitFor(1);
    events.Add(2);
    std::lock_guard<std::mutex> lock(mu);
    released = true;
    cv.notify_all();
  });
  EXPECT_EQ(events.WaitFor(3), (std::vector<int>{1, 2, 3}));
}

TEST(WorkerSupervisorTest, ShutdownKillsEveryWorkerAndStartsNothingMore) {
  auto supervisor = NewSupervisor();
  ASSERT_NE(supervisor, nullptr);
  // Neither is watched: one may be in its start-up handshake.
  auto first = supervisor->Spawn({"/bin/sleep", "1000"});
  auto second = supervisor->Spawn({"/bin/sleep", "1000"});
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(supervisor->shutdown_reason(), "");
  Events events;
  supervisor->Shutdown("stopping for a test");
  supervisor->After(std::chrono::milliseconds(0), [&] { events.Add(1); });
  EXPECT_EQ((*first)->Wait().signal, SIGKILL);
  EXPECT_EQ((*second)->Wait().signal, SIGKILL);
  EXPECT_EQ(supervisor->shutdown_reason(), "stopping for a test");
  auto third = supervisor->Spawn({"/bin/sleep", "1000"});
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(third.status().message().find("stopping for a test"), std::string::npos);
  supervisor->Shutdown("again");  // idempotent: the first reason stays
  EXPECT_EQ(supervisor->shutdown_reason(), "stopping for a test");
  supervisor.reset();
  EXPECT_TRUE(events.seen.empty());
}

TEST(WorkerSupervisorTest, DropsPendingJobsAndRefusesSpawnsWhenStopping) {
  Events events;
  {
    auto supervisor = NewSupervisor();
    ASSERT_NE(supervisor, nullptr);
    supervisor->After(std::chrono::hours(1), [&] { events.Add(1); });
  }
  EXPECT_TRUE(events.seen.empty());
}

TEST(MemoryLimitTest, LimitsAboveABaselineSaturate) {
  EXPECT_EQ(LimitAbove(40u << 20, 64u << 20), 104u << 20);
  EXPECT_EQ(LimitAbove(40u << 20, UINT64_MAX), UINT64_MAX);
  EXPECT_EQ(LimitAbove(UINT64_MAX, 1), UINT64_MAX);
  EXPECT_EQ(LimitAbove(0, 0), 0u);
}

TEST(MemoryLimitTest, ResidentBytesOfAProcess) {
  EXPECT_GT(ResidentBytesOf(::getpid()), 1u << 20);
  EXPECT_EQ(ResidentBytesOf(0), 0u);  // no /proc/0
  const MemoryLimitKind kind = ChooseMemoryLimitKind();
  if (UnderSanitizer()) EXPECT_NE(kind, MemoryLimitKind::kAddressSpace);
  EXPECT_NE(MemoryLimitKindName(kind), "unknown");
}

}  // namespace
}  // namespace mm
