#include "scheduler/model_scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "fake_instance.h"

namespace mm {
namespace {

// Counts executions (and how many run at once), fails the request whose id
// is "fail", answers one empty output "out".
std::unique_ptr<ModelInstance> Instance(fakes::FakeCounters* counters) {
  return std::make_unique<fakes::FakeInstance>(fakes::FakeInstance::Options{
      .counters = counters, .fail_id = "fail", .handler = fakes::EmptyOutput("out")});
}

struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  int done = 0, ok = 0, failed = 0;
  std::vector<std::string> ids;
  InferCallback Callback() {
    return [this](StatusOr<std::unique_ptr<InferResponse>> r) {
      std::lock_guard<std::mutex> lock(mu);
      ++done;
      if (r.ok()) {
        ++ok;
        ids.push_back((*r)->id);
      } else {
        ++failed;
      }
      cv.notify_all();
    };
  }
  void Wait(int n) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done >= n; });
  }
};

std::unique_ptr<InferRequest> Req(std::string id) {
  auto r = std::make_unique<InferRequest>();
  r->model_name = "m";
  r->model_version = "1";
  r->id = std::move(id);
  return r;
}

TEST(ModelSchedulerTest, EveryRequestCompletesExactlyOnce) {
  for (size_t threads : {1, 2, 4}) {
    for (int instances : {1, 3}) {
      ExecutionSlots pool(ExecutionSlotsOptions{.slots = threads});
      fakes::FakeCounters counters;
      std::vector<std::unique_ptr<ModelInstance>> inst;
      for (int i = 0; i < instances; ++i) {
        inst.push_back(Instance(&counters));
      }
      auto sched = *ModelScheduler::Create(std::move(inst), &pool);
      Collector c;
      constexpr int kRequests = 500;
      for (int i = 0; i < kRequests; ++i) {
        sched->Enqueue(Req(i % 50 == 0 ? "fail" : std::to_string(i)), c.Callback());
      }
      c.Wait(kRequests);
      EXPECT_EQ(c.done, kRequests);
      EXPECT_EQ(c.failed, kRequests / 50);
      EXPECT_LE(counters.peak.load(), instances);  // never more executions than instances
      pool.Shutdown();
      EXPECT_EQ(c.done, kRequests);  // no callback ran twice
      EXPECT_EQ(sched->pending(), 0u);
    }
  }
}

TEST(ModelSchedulerTest, OneInstanceRunsInArrivalOrder) {
  ExecutionSlots pool(ExecutionSlotsOptions{.slots = 3});
  fakes::FakeCounters counters;
  std::vector<std::unique_ptr<ModelInstance>> inst;
  inst.push_back(Instance(&counters));
  auto sched = *ModelScheduler::Create(std::move(inst), &pool);
  Collector c;
  for (int i = 0; i < 100; ++i) sched->Enqueue(Req(std::to_string(i)), c.Callback());
  c.Wait(100);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(c.ids[i], std::to_string(i));
}

TEST(ModelSchedulerTest, ResponseCarriesRequestIdentity) {
  ExecutionSlots pool(ExecutionSlotsOptions{.slots = 1});
  fakes::FakeCounters counters;
  std::vector<std::unique_ptr<ModelInstance>> inst;
  inst.push_back(Instance(&counters));
  auto sched = *ModelScheduler::Create(std::move(inst), &pool);
  std::unique_ptr<InferResponse> got;
  std::mutex mu;
  std::condition_variable cv;
  sched->Enqueue(Req("abc"), [&](StatusOr<std::unique_ptr<InferResponse>> r) {
    std::lock_guard<std::mutex> lock(mu);
    got = std::move(*r);
    cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return got != nullptr; });
  EXPECT_EQ(got->model_name, "m");
  EXPECT_EQ(got->model_version, "1");
  EXPECT_EQ(got->id, "abc");
}

}  // namespace
}  // namespace mm

namespace mm {
namespace {

struct ThreadRecorder {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::thread::id> threads;
  InferCallback Callback() {
    return [this](StatusOr<std::unique_ptr<InferResponse>> r) {
      std::lock_guard<std::mutex> lock(mu);
      threads.push_back(std::this_thread::get_id());
      cv.notify_all();
    };
  }
  void Wait(size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return threads.size() >= n; });
  }
};

// A client that sends its next request the moment it has an answer must find
// the model idle: an answer is delivered only after its instance is (the
// lifecycle's eviction and the model quotas look at what is executing).
TEST(ModelSchedulerTest, AnAnswerIsDeliveredOnlyOnceItsInstanceIsIdle) {
  ExecutionSlots pool(ExecutionSlotsOptions{.slots = 2});
  fakes::FakeCounters counters;
  std::vector<std::unique_ptr<ModelInstance>> inst;
  inst.push_back(Instance(&counters));
  ModelSchedulerOptions options;
  options.inline_max_ns = int64_t{1} << 40;
  ModelSchedulerConfig config;
  config.inline_safe = true;
  auto sched = *ModelScheduler::Create(std::move(inst), &pool, options, config);
  std::mutex mu;
  std::condition_variable cv;
  std::vector<size_t> executing_when_answered;
  auto callback = [&](StatusOr<std::unique_ptr<InferResponse>> r) {
    ASSERT_TRUE(r.ok());
    const size_t executing = sched->queued_and_executing().second;
    std::lock_guard<std::mutex> lock(mu);
    executing_when_answered.push_back(executing);
    cv.notify_all();
  };
  // The first runs on a slot thread (cost unknown), the second inline.
  for (size_t i = 1; i <= 2; ++i) {
    sched->Enqueue(Req("r"), callback);
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return executing_when_answered.size() >= i; });
  }
  EXPECT_EQ(executing_when_answered, (std::vector<size_t>{0, 0}));
}

TEST(ModelSchedulerTest, FastModelRunsInlineOnceItsCostIsKnown) {
  ExecutionSlots pool(ExecutionSlotsOptions{.slots = 2});
  fakes::FakeCounters counters;
  std::vector<std::unique_ptr<ModelInstance>> inst;
  inst.push_back(Instance(&counters));
  ModelSchedulerOptions options;
  options.inline_max_ns = int64_t{1} << 40;  // any cost counts as fast
  ModelSchedulerConfig config;
  config.inline_safe = true;
  auto sched = *ModelScheduler::Create(std::move(inst), &pool, options, config);
  ThreadRecorder rec;
  sched->Enqueue(Req("first"), rec.Callback());  // cost unknown: goes to a pool thread
  rec.Wait(1);
  EXPECT_NE(rec.threads[0], std::this_thread::get_id());
  EXPECT_GT(sched->average_execution_ns(), 0);
  while (sched->pending() != 0) std::this_thread::yield();  // instance back to idle
  sched->Enqueue(Req("second"), rec.Callback());            // answered before Enqueue returns
  ASSERT_EQ(rec.threads.size(), 2u);
  EXPECT_EQ(rec.threads[1], std::this_thread::get_id());
  EXPECT_EQ(sched->pending(), 0u);
}

TEST(ModelSchedulerTest, LargeRequestsOfAFastModelStillUseThePool) {
  ExecutionSlots pool(ExecutionSlotsOptions{.slots = 2});
  fakes::FakeCounters counters;
  std::vector<std::unique_ptr<ModelInstance>> inst;
  inst.push_back(Instance(&counters));
  ModelSchedulerOptions options;
  options.inline_max_ns = int64_t{1} << 40;
  options.inline_max_input_bytes = 16;
  ModelSchedulerConfig config;
  config.inline_safe = true;
  auto sched = *ModelScheduler::Create(std::move(inst), &pool, options, config);
  ThreadRecorder rec;
  sched->Enqueue(Req("first"), rec.Callback());
  rec.Wait(1);
  while (sched->pending() != 0) std::this_thread::yield();
  std::vector<std::byte> big(17);
  auto request = Req("big");
  request->inputs.push_back(Tensor{"x", DataType::kUint8, {17}, big, nullptr, {}});
  sched->Enqueue(std::move(request), rec.Callback());
  rec.Wait(2);
  EXPECT_NE(rec.threads[1], std::this_thread::get_id());
  while (sched->pending() != 0) std::this_thread::yield();
  auto small = Req("small");
  small->inputs.push_back(Tensor{"x", DataType::kUint8, {16}, {big.data(), 16}, nullptr, {}});
  sched->Enqueue(std::move(small), rec.Callback());
  ASSERT_EQ(rec.threads.size(), 3u);
  EXPECT_EQ(rec.threads[2], std::this_thread::get_id());
}

// A model whose execution time is not bounded by its request (a worker
// process, a graph with loops) never runs on the caller's thread, however
// fast it has been so far.
TEST(ModelSchedulerTest, AModelNotInlineSafeAlwaysUsesThePool) {
  ExecutionSlots pool(ExecutionSlotsOptions{.slots = 2});
  fakes::FakeCounters counters;
  std::vector<std::unique_ptr<ModelInstance>> inst;
  inst.push_back(Instance(&counters));
  ModelSchedulerOptions options;
  options.inline_max_ns = int64_t{1} << 40;
  auto sched = *ModelScheduler::Create(std::move(inst), &pool, options);  // inline_safe unset
  ThreadRecorder rec;
  for (size_t i = 1; i <= 5; ++i) {
    sched->Enqueue(Req("r"), rec.Callback());
    rec.Wait(i);
    EXPECT_NE(rec.threads[i - 1], std::this_thread::get_id()) << i;
    while (sched->pending() != 0) std::this_thread::yield();
  }
}

TEST(ModelSchedulerTest, InlineDisabledAlwaysUsesThePool) {
  ExecutionSlots pool(ExecutionSlotsOptions{.slots = 2});
  fakes::FakeCounters counters;
  std::vector<std::unique_ptr<ModelInstance>> inst;
  inst.push_back(Instance(&counters));
  auto sched = *ModelScheduler::Create(std::move(inst), &pool, ModelSchedulerOptions{});
  ThreadRecorder rec;
  for (int i = 0; i < 5; ++i) {
    sched->Enqueue(Req(std::to_string(i)), rec.Callback());
    rec.Wait(i + 1);
    EXPECT_NE(rec.threads[i], std::this_thread::get_id());
  }
}

TEST(ExecutionSlotsTest, InlineClaimsAreBoundedBySize) {
  ExecutionSlots slots(ExecutionSlotsOptions{.slots = 2});
  EXPECT_TRUE(slots.TryAcquireInline());
  EXPECT_TRUE(slots.TryAcquireInline());
  EXPECT_FALSE(slots.TryAcquireInline());
  slots.ReleaseInline();
  EXPECT_TRUE(slots.TryAcquireInline());
  slots.ReleaseInline();
  slots.ReleaseInline();
  EXPECT_EQ(slots.busy(), 0u);
}

}  // namespace
}  // namespace mm
