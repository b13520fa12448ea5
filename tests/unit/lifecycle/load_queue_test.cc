// LoadQueue: fair order across tenants, per-tenant limits, a thread for
// another tenant while one is held, and bounded shutdown. Held jobs wait on
// latches the test opens; nothing depends on timing.
#include "lifecycle/load_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gate.h"

namespace mm {
namespace {

// Records the order jobs ran in.
struct Order {
  std::mutex mu;
  std::vector<std::string> ran;
  void Add(const std::string& s) {
    std::lock_guard<std::mutex> lock(mu);
    ran.push_back(s);
  }
};

TEST(LoadQueueTest, TenantsTakeTurnsAndEachRunsInItsOwnOrder) {
  // One thread: the order is the queue's alone.
  LoadQueue q({.per_tenant = 1, .max_threads = 1});
  Gate hold;
  Order order;
  q.Submit("a", [&] {
    hold.Wait();
    order.Add("a1");
  });
  hold.AwaitWaiters(1);
  for (const char* job : {"a2", "a3", "a4"}) q.Submit("a", [&, job] { order.Add(job); });
  q.Submit("b", [&] { order.Add("b1"); });
  q.Submit("c", [&] { order.Add("c1"); });
  q.Submit("b", [&] { order.Add("b2"); });
  hold.Open();
  ASSERT_TRUE(q.WaitIdle());
  // a went first: b and c come before a's next, then round robin.
  EXPECT_EQ(order.ran, (std::vector<std::string>{"a1", "b1", "c1", "a2", "b2", "a3", "a4"}));
}

TEST(LoadQueueTest, AHeldTenantNeverHoldsAnotherOne) {
  LoadQueue q({.per_tenant = 1});
  Gate hold;
  std::atomic<int> a_started{0};
  q.Submit("a", [&] {
    ++a_started;
    hold.Wait();
  });
  q.Submit("a", [&] { ++a_started; });  // a's second waits for a's first
  hold.AwaitWaiters(1);
  // b's jobs run to completion while a's only place is held.
  for (int i = 0; i < 3; ++i) {
    std::promise<void> done;
    q.Submit("b", [&] { done.set_value(); });
    done.get_future().get();
  }
  EXPECT_EQ(a_started.load(), 1);
  // (b's last job answered from inside itself: it may still be finishing.)
  for (int i = 0; i < 5000 && q.running() > 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(q.running(), 1u);
  hold.Open();
  ASSERT_TRUE(q.WaitIdle());
  EXPECT_EQ(a_started.load(), 2);
}

TEST(LoadQueueTest, PerTenantLimitAllowsThatManyAtOnce) {
  LoadQueue q({.per_tenant = 2});
  Gate hold;
  std::atomic<int> started{0};
  for (int i = 0; i < 3; ++i) {
    q.Submit("a", [&] {
      ++started;
      hold.Wait();
    });
  }
  hold.AwaitWaiters(2);
  EXPECT_EQ(q.running(), 2u);
  EXPECT_EQ(started.load(), 2);
  hold.Open();
  ASSERT_TRUE(q.WaitIdle());
  EXPECT_EQ(started.load(), 3);
}

TEST(LoadQueueTest, ShutdownRunsQueuedJobsAndIsBoundedByItsDeadline) {
  LoadQueue q({.per_tenant = 1});
  Gate hold;
  std::atomic<int> ran{0};
  q.Submit("a", [&] { hold.Wait(); });
  hold.AwaitWaiters(1);
  q.Submit("a", [&] { ++ran; });  // queued behind the held one
  // The held job is still running at the deadline: false, and the queued
  // job ran on the caller's thread anyway.
  EXPECT_FALSE(q.Shutdown(std::chrono::steady_clock::now() + std::chrono::milliseconds(50)));
  EXPECT_EQ(ran.load(), 1);
  // After Shutdown began, a job runs inline.
  q.Submit("b", [&] { ++ran; });
  EXPECT_EQ(ran.load(), 2);
  hold.Open();
  EXPECT_TRUE(q.Shutdown());
  EXPECT_EQ(q.threads(), 0u);
}

TEST(LoadQueueTest, IdleThreadsLeaveAfterLingering) {
  LoadQueue q({.per_tenant = 1, .linger = std::chrono::milliseconds(1)});
  std::promise<void> done;
  q.Submit("a", [&] { done.set_value(); });
  done.get_future().get();
  while (q.threads() > 0) std::this_thread::yield();
  // A later job gets a new thread.
  std::promise<void> again;
  q.Submit("a", [&] { again.set_value(); });
  again.get_future().get();
}

}  // namespace
}  // namespace mm
