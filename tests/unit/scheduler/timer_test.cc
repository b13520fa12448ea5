// Timer on a FakeClock, driven by RunDue(): deadlines, order, callbacks that
// schedule more, and destruction dropping what has not run. The threaded
// mode is checked with deadlines already past (no sleep decides anything).
#include "scheduler/timer.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

namespace mm {
namespace {

TEST(TimerTest, NothingRunsBeforeItsDeadline) {
  FakeClock clock;
  Timer timer(&clock, /*with_thread=*/false);
  int ran = 0;
  timer.At(clock.NowNs() + 1000, [&] { ++ran; });
  EXPECT_EQ(timer.RunDue(), 0u);
  clock.Advance(999);
  EXPECT_EQ(timer.RunDue(), 0u);
  EXPECT_EQ(ran, 0);
  clock.Advance(1);  // exactly at the deadline
  EXPECT_EQ(timer.RunDue(), 1u);
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(timer.RunDue(), 0u);  // once
}

TEST(TimerTest, PastDeadlineRunsOnTheNextRunDue) {
  FakeClock clock;
  Timer timer(&clock, false);
  int ran = 0;
  timer.At(clock.NowNs() - 5, [&] { ++ran; });
  EXPECT_EQ(timer.RunDue(), 1u);
  EXPECT_EQ(ran, 1);
}

TEST(TimerTest, RunsInDeadlineOrderThenSubmissionOrder) {
  FakeClock clock;
  Timer timer(&clock, false);
  const int64_t t0 = clock.NowNs();
  std::vector<std::string> order;
  timer.At(t0 + 30, [&] { order.push_back("c"); });
  timer.At(t0 + 10, [&] { order.push_back("a1"); });
  timer.At(t0 + 20, [&] { order.push_back("b"); });
  timer.At(t0 + 10, [&] { order.push_back("a2"); });
  clock.Advance(20);
  EXPECT_EQ(timer.RunDue(), 3u);
  EXPECT_EQ(order, (std::vector<std::string>{"a1", "a2", "b"}));
  clock.Advance(10);
  EXPECT_EQ(timer.RunDue(), 1u);
  EXPECT_EQ(order.back(), "c");
}

TEST(TimerTest, ACallbackMayScheduleAnother) {
  FakeClock clock;
  Timer timer(&clock, false);
  int second = 0;
  timer.At(clock.NowNs(), [&] {
    // Runs without the timer's lock: At() from here must not deadlock.
    timer.At(clock.NowNs() + 100, [&] { ++second; });
  });
  EXPECT_EQ(timer.RunDue(), 1u);
  EXPECT_EQ(second, 0);  // not due yet
  clock.Advance(100);
  EXPECT_EQ(timer.RunDue(), 1u);
  EXPECT_EQ(second, 1);
}

TEST(TimerTest, DestructionDropsWhatHasNotRun) {
  FakeClock clock;
  auto alive = std::make_shared<int>(0);
  std::weak_ptr<int> watch = alive;
  {
    Timer timer(&clock, false);
    timer.At(clock.NowNs() + 1'000'000, [alive] { ++*alive; });
    alive.reset();
    EXPECT_FALSE(watch.expired());  // the timer holds the callback
  }
  EXPECT_TRUE(watch.expired());  // dropped, never run
}

TEST(TimerTest, ItsThreadRunsDueCallbacks) {
  // A deadline already past: the thread runs it when it wakes, with no
  // RunDue() from the test.
  std::mutex mu;  // (declared before the timer: they outlive its thread)
  std::condition_variable cv;
  std::vector<int> ran;
  Timer timer(SteadyClock::Get(), /*with_thread=*/true);
  for (int i = 0; i < 3; ++i) {
    timer.At(SteadyClock::Get()->NowNs() - 1, [&, i] {
      std::lock_guard<std::mutex> lock(mu);
      ran.push_back(i);
      cv.notify_all();
    });
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return ran.size() == 3; });
  EXPECT_EQ(ran, (std::vector<int>{0, 1, 2}));
}

TEST(TimerTest, ClockIsTheOneGiven) {
  FakeClock clock;
  Timer timer(&clock, false);
  EXPECT_EQ(timer.clock(), &clock);
}

}  // namespace
}  // namespace mm
