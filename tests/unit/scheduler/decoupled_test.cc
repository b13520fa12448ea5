// The scheduler's decoupled path (scheduler/decoupled.cc): responses before
// the final go to the request's ResponseStream, `done` is the final, the
// instance is idle once ExecuteDecoupled returns, errors and defects complete
// the request exactly once.
#include <gtest/gtest.h>

#include <deque>
#include <mutex>

#include "scheduler/model_scheduler.h"
#include "tests/backends/repeat/repeat_backend.h"

namespace mm {
namespace {

// Keeps every sender it is given; the test answers them.
class HoldingInstance final : public ModelInstance {
 public:
  Status Execute(const InferRequest&, InferResponse&) override {
    return Internal("Execute must not be called for a decoupled model");
  }
  Status ExecuteDecoupled(std::span<const std::shared_ptr<ResponseSender>> senders) override {
    std::lock_guard<std::mutex> lock(mu);
    ++executions;
    if (!fail.ok()) return fail;
    for (const auto& s : senders) held.push_back(s);
    return OkStatus();
  }
  std::mutex mu;
  std::deque<std::shared_ptr<ResponseSender>> held;
  int executions = 0;
  Status fail;
};

// Records what reaches the stream and the final.
struct Recorder : ResponseStream {
  void Send(const InferRequest& request, StatusOr<std::unique_ptr<InferResponse>> r) override {
    std::lock_guard<std::mutex> lock(mu);
    log.push_back(request.id + (r.ok() ? ":ok" : ":error"));
  }
  InferCallback Done() {
    return [this](StatusOr<std::unique_ptr<InferResponse>> r) {
      std::lock_guard<std::mutex> lock(mu);
      ++done;
      final_status = r.status();
      if (r.ok()) {
        complete_only = (*r)->complete_only;
        final_id = (*r)->id;
      }
      log.push_back("final");
    };
  }
  std::mutex mu;
  std::vector<std::string> log;
  int done = 0;
  Status final_status;
  bool complete_only = false;
  std::string final_id;
};

struct Fixture {
  Fixture() {
    auto owned = std::make_unique<HoldingInstance>();
    instance = owned.get();
    std::vector<std::unique_ptr<ModelInstance>> v;
    v.push_back(std::move(owned));
    ModelSchedulerConfig config;
    config.model_name = "m";
    config.decoupled = true;
    config.inline_safe = true;  // ignored: a decoupled model never runs inline
    scheduler = *ModelScheduler::Create(std::move(v), &slots, {.inline_max_ns = 1 << 30}, config);
  }
  ~Fixture() { slots.Shutdown(); }
  std::unique_ptr<InferRequest> Request(const std::string& id, std::shared_ptr<Recorder> r) {
    auto req = std::make_unique<InferRequest>();
    req->model_name = "m";
    req->id = id;
    req->stream = std::move(r);
    return req;
  }
  // Waits (without timing) until the instance holds `n` senders.
  std::shared_ptr<ResponseSender> Take() {
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(instance->mu);
        if (!instance->held.empty()) {
          auto s = std::move(instance->held.front());
          instance->held.pop_front();
          return s;
        }
      }
      std::this_thread::yield();
    }
  }
  ExecutionSlots slots{ExecutionSlotsOptions{.slots = 2}};
  HoldingInstance* instance = nullptr;
  std::shared_ptr<ModelScheduler> scheduler;
};

std::unique_ptr<InferResponse> Response() { return std::make_unique<InferResponse>(); }

// Waits (without timing) until `rec` has `n` finals.
void WaitDone(Recorder& rec, int n) {
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(rec.mu);
      if (rec.done >= n) return;
    }
    std::this_thread::yield();
  }
}

TEST(DecoupledSchedulerTest, ResponsesThenFinalInOrderAndTheInstanceIsFreeMeanwhile) {
  Fixture f;
  EXPECT_TRUE(f.scheduler->decoupled());
  auto rec = std::make_shared<Recorder>();
  f.scheduler->Enqueue(f.Request("a", rec), rec->Done());
  auto a = f.Take();
  // One instance, and "a" is not complete: "b" still executes.
  f.scheduler->Enqueue(f.Request("b", rec), rec->Done());
  auto b = f.Take();
  EXPECT_EQ(f.scheduler->pending(), 2u);  // both in flight until their finals
  EXPECT_EQ(a->request().id, "a");
  ASSERT_TRUE(a->Send(Response(), false).ok());
  ASSERT_TRUE(a->Send(Status(InvalidArgument("one bad response")), false).ok());
  ASSERT_TRUE(a->Send(Response(), true).ok());
  EXPECT_EQ(a->Send(Response(), false).code(), StatusCode::kFailedPrecondition);
  {
    std::lock_guard<std::mutex> lock(rec->mu);
    EXPECT_EQ(rec->log, (std::vector<std::string>{"a:ok", "a:error", "final"}));
    EXPECT_EQ(rec->final_id, "a");
    EXPECT_FALSE(rec->complete_only);
  }
  ASSERT_TRUE(b->Send(std::unique_ptr<InferResponse>(), true).ok());  // the flag alone
  std::lock_guard<std::mutex> lock(rec->mu);
  EXPECT_EQ(rec->done, 2);
  EXPECT_TRUE(rec->complete_only);
  EXPECT_EQ(f.scheduler->pending(), 0u);
}

TEST(DecoupledSchedulerTest, ANonFinalResponseNeedsAResponse) {
  Fixture f;
  auto rec = std::make_shared<Recorder>();
  f.scheduler->Enqueue(f.Request("a", rec), rec->Done());
  auto a = f.Take();
  EXPECT_EQ(a->Send(std::unique_ptr<InferResponse>(), false).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(a->Send(Status(Cancelled("stopped")), true).ok());
  EXPECT_EQ(rec->final_status.code(), StatusCode::kCancelled);
}

TEST(DecoupledSchedulerTest, ASenderDroppedWithoutFinalCompletesInternal) {
  Fixture f;
  auto rec = std::make_shared<Recorder>();
  f.scheduler->Enqueue(f.Request("a", rec), rec->Done());
  f.Take().reset();
  EXPECT_EQ(rec->done, 1);
  EXPECT_EQ(rec->final_status.code(), StatusCode::kInternal);
  EXPECT_NE(rec->final_status.message().find("without sending its final"), std::string::npos);
  EXPECT_EQ(f.scheduler->pending(), 0u);
}

TEST(DecoupledSchedulerTest, AnExecuteErrorCompletesTheRequestWithIt) {
  Fixture f;
  f.instance->fail = Unavailable("backend down");
  auto rec = std::make_shared<Recorder>();
  f.scheduler->Enqueue(f.Request("a", rec), rec->Done());
  WaitDone(*rec, 1);
  EXPECT_EQ(rec->final_status.code(), StatusCode::kUnavailable);
}

TEST(DecoupledSchedulerTest, IdleWaitersWaitForTheFinal) {
  Fixture f;
  auto rec = std::make_shared<Recorder>();
  f.scheduler->Enqueue(f.Request("a", rec), rec->Done());
  auto a = f.Take();
  std::atomic<bool> idle{false};
  f.scheduler->NotifyWhenIdle([&] { idle = true; });
  EXPECT_FALSE(idle.load());
  ASSERT_TRUE(a->Send(Response(), true).ok());
  EXPECT_TRUE(idle.load());
}

TEST(DecoupledSchedulerTest, CancelledReflectsTheClient) {
  Fixture f;
  auto rec = std::make_shared<Recorder>();
  auto req = f.Request("a", rec);
  auto cancellation = std::make_shared<Cancellation>();
  req->cancellation = cancellation;
  f.scheduler->Enqueue(std::move(req), rec->Done());
  auto a = f.Take();
  EXPECT_FALSE(a->cancelled());
  cancellation->Cancel();
  EXPECT_TRUE(a->cancelled());
  ASSERT_TRUE(a->Send(Status(Cancelled("gone")), true).ok());
}

TEST(DecoupledSchedulerTest, ABackendWithoutDecoupledSupportRefuses) {
  class Plain final : public ModelInstance {
    Status Execute(const InferRequest&, InferResponse&) override { return OkStatus(); }
  };
  ExecutionSlots slots(ExecutionSlotsOptions{.slots = 1});
  std::vector<std::unique_ptr<ModelInstance>> v;
  v.push_back(std::make_unique<Plain>());
  ModelSchedulerConfig config;
  config.model_name = "m";
  config.decoupled = true;
  auto scheduler = *ModelScheduler::Create(std::move(v), &slots, {}, config);
  auto rec = std::make_shared<Recorder>();
  auto req = std::make_unique<InferRequest>();
  req->model_name = "m";
  req->stream = rec;
  scheduler->Enqueue(std::move(req), rec->Done());
  WaitDone(*rec, 1);
  slots.Shutdown();
  std::lock_guard<std::mutex> lock(rec->mu);
  EXPECT_EQ(rec->final_status.code(), StatusCode::kUnimplemented);
  EXPECT_NE(rec->final_status.message().find("decoupled"), std::string::npos);
}

TEST(DecoupledSchedulerTest, AQueueTimeoutAnswersAsToday) {
  // Slots without threads: the request waits in the queue until RunNext.
  ExecutionSlots slots(ExecutionSlotsOptions{.slots = 1, .with_threads = false});
  FakeClock clock;
  auto owned = std::make_unique<HoldingInstance>();
  HoldingInstance* instance = owned.get();
  std::vector<std::unique_ptr<ModelInstance>> v;
  v.push_back(std::move(owned));
  ModelSchedulerConfig config;
  config.model_name = "m";
  config.decoupled = true;
  config.queue.default_policy.default_timeout_ns = 1'000'000;
  auto scheduler = *ModelScheduler::Create(std::move(v), &slots, {.clock = &clock}, config);
  auto rec = std::make_shared<Recorder>();
  auto req = std::make_unique<InferRequest>();
  req->model_name = "m";
  req->stream = rec;
  scheduler->Enqueue(std::move(req), rec->Done());
  clock.Advance(2'000'000);
  while (slots.RunNext()) {
  }
  std::lock_guard<std::mutex> lock(rec->mu);
  ASSERT_EQ(rec->done, 1);
  EXPECT_EQ(rec->final_status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(instance->executions, 0);  // never executed
  EXPECT_EQ(rec->log, std::vector<std::string>{"final"});
}

TEST(DecoupledSchedulerTest, TheRepeatBackendAnswersFromItsOwnThread) {
  ExecutionSlots slots(ExecutionSlotsOptions{.slots = 1});
  std::vector<std::unique_ptr<ModelInstance>> v;
  v.push_back(MakeRepeatInstance());
  ModelSchedulerConfig config;
  config.model_name = "repeat";
  config.decoupled = true;
  auto scheduler = *ModelScheduler::Create(std::move(v), &slots, {}, config);
  auto rec = std::make_shared<Recorder>();
  auto req = std::make_unique<InferRequest>();
  req->model_name = "repeat";
  req->id = "r";
  req->stream = rec;
  static const int32_t kValues[] = {4, 5, 6};
  Tensor in;
  in.name = "IN";
  in.dtype = DataType::kInt32;
  in.shape = {3};
  in.data = std::as_bytes(std::span(kValues));
  req->inputs.push_back(in);
  scheduler->Enqueue(std::move(req), rec->Done());
  WaitDone(*rec, 1);
  std::lock_guard<std::mutex> lock(rec->mu);
  EXPECT_EQ(rec->log, (std::vector<std::string>{"r:ok", "r:ok", "r:ok", "final"}));
  EXPECT_TRUE(rec->complete_only);
  slots.Shutdown();
}

}  // namespace
}  // namespace mm
