// ExecutionSlots with ModelSchedulers and fake instances: weighted fair
// sharing of the slots across tenants and models under a flood, no model
// starved, priority kept inside a model, instance parallelism, inline claims
// only when nobody waits, and a shutdown that runs what was asked for.
//
// The fairness tests drive the slots by hand (no threads) on a FakeClock: an
// execution advances the clock by its model's cost, which is what the slots
// charge. No sleeps, no timing.
#include "scheduler/execution_slots.h"

#include <gtest/gtest.h>

#include <cmath>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/blocking_wait.h"
#include "scheduler/clock.h"
#include "scheduler/model_scheduler.h"

namespace mm {
namespace {

// Takes `cost_ns` of fake time per execution and records the ids it ran.
class CostInstance : public ModelInstance {
 public:
  CostInstance(FakeClock* clock, int64_t cost_ns, std::vector<std::string>* ran)
      : clock_(clock), cost_ns_(cost_ns), ran_(ran) {}
  Status Execute(const InferRequest& request, InferResponse&) override {
    clock_->Advance(cost_ns_);
    ran_->push_back(request.id);
    return OkStatus();
  }

 private:
  FakeClock* clock_;
  int64_t cost_ns_;
  std::vector<std::string>* ran_;
};

std::unique_ptr<InferRequest> Req(std::string model, std::string id, Parameters params = {}) {
  auto r = std::make_unique<InferRequest>();
  r->model_name = std::move(model);
  r->id = std::move(id);
  r->parameters = std::move(params);
  return r;
}

class FairSlotsTest : public ::testing::Test {
 protected:
  struct Model {
    std::shared_ptr<ModelScheduler> scheduler;
    std::vector<std::string> ran;  // ids, in execution order
    int64_t cost_ns = 0;
    int answered = 0;
  };

  Model& Add(const std::string& name, int64_t cost_us, const std::string& tenant = "",
             double weight = 1, inference::ModelConfig config = {}) {
    auto model = std::make_unique<Model>();
    model->cost_ns = cost_us * 1000;
    std::vector<std::unique_ptr<ModelInstance>> instances;
    instances.push_back(std::make_unique<CostInstance>(&clock_, model->cost_ns, &model->ran));
    ModelSchedulerOptions options;
    options.clock = &clock_;
    auto c = ModelSchedulerConfig::FromModelConfig(config, name);
    c.tenant = tenant;
    c.weight = weight;
    auto s = ModelScheduler::Create(std::move(instances), &slots_, options, std::move(c));
    EXPECT_TRUE(s.ok()) << s.status().message();
    model->scheduler = std::move(*s);
    Model& m = *model;
    models_.emplace(name, std::move(model));
    return m;
  }

  void Send(Model& m, const std::string& name, int n, Parameters params = {}) {
    for (int i = 0; i < n; ++i) {
      m.scheduler->Enqueue(Req(name, name + std::to_string(i), params),
                           [&m](StatusOr<std::unique_ptr<InferResponse>> r) {
                             EXPECT_TRUE(r.ok()) << r.status().message();
                             ++m.answered;
                           });
    }
  }

  // Runs `picks` slot picks; every one must run something.
  void Run(int picks) {
    for (int i = 0; i < picks; ++i) ASSERT_TRUE(slots_.RunNext()) << "pick " << i;
  }

  double BusyNs(const std::string& name) {
    const Model& m = *models_.at(name);
    return static_cast<double>(m.ran.size()) * static_cast<double>(m.cost_ns);
  }

  // Each model's share of the execution time is within 10% of `expected`.
  void ExpectShares(const std::map<std::string, double>& expected) {
    double total = 0;
    for (const auto& [name, share] : expected) total += BusyNs(name);
    for (const auto& [name, share] : expected) {
      const double got = BusyNs(name) / total;
      EXPECT_NEAR(got, share, 0.1 * share) << "model " << name;
    }
  }

  void TearDown() override {
    slots_.Shutdown();  // runs what is left
    for (auto& [name, m] : models_) {
      EXPECT_EQ(static_cast<size_t>(m->answered), m->ran.size()) << name;
      EXPECT_EQ(m->scheduler->pending(), 0u) << name;
    }
  }

  FakeClock clock_;
  ExecutionSlots slots_{ExecutionSlotsOptions{.slots = 1, .with_threads = false}};
  std::map<std::string, std::unique_ptr<Model>> models_;
};

TEST_F(FairSlotsTest, EqualWeightsShareTimeEquallyWhateverTheCostPerRequest) {
  Model& a = Add("a", 1000);
  Model& b = Add("b", 2000);
  Model& c = Add("c", 500);
  Send(a, "a", 1000);
  Send(b, "b", 1000);
  Send(c, "c", 1000);
  Run(1200);
  // Still flooded: every queue has work left.
  EXPECT_GT(a.scheduler->pending(), 0u);
  EXPECT_GT(b.scheduler->pending(), 0u);
  EXPECT_GT(c.scheduler->pending(), 0u);
  ExpectShares({{"a", 1.0 / 3}, {"b", 1.0 / 3}, {"c", 1.0 / 3}});
}

TEST_F(FairSlotsTest, ModelWeightsSetTheShares) {
  Model& a = Add("a", 1000, "", 1);
  Model& b = Add("b", 1000, "", 2);
  Model& c = Add("c", 3000, "", 3);
  Send(a, "a", 1000);
  Send(b, "b", 1000);
  Send(c, "c", 1000);
  Run(1000);
  EXPECT_GT(a.scheduler->pending(), 0u);
  EXPECT_GT(c.scheduler->pending(), 0u);
  ExpectShares({{"a", 1.0 / 6}, {"b", 2.0 / 6}, {"c", 3.0 / 6}});
}

TEST_F(FairSlotsTest, TenantsShareFirstThenTheirModels) {
  // Tenant x has one model, tenant y three; y weighs 3 times x.
  ASSERT_TRUE(slots_.SetTenantWeight("x", 1).ok());
  ASSERT_TRUE(slots_.SetTenantWeight("y", 3).ok());
  Model& x1 = Add("x1", 1000, "x");
  Model& y1 = Add("y1", 1000, "y");
  Model& y2 = Add("y2", 500, "y");
  Model& y3 = Add("y3", 1000, "y", 2);
  Send(x1, "x1", 1500);
  Send(y1, "y1", 1500);
  Send(y2, "y2", 1500);
  Send(y3, "y3", 1500);
  Run(2000);
  // x: 1/4; y: 3/4, split 1:1:2 among its models.
  ExpectShares({{"x1", 0.25}, {"y1", 0.75 / 4}, {"y2", 0.75 / 4}, {"y3", 0.75 / 2}});
}

TEST_F(FairSlotsTest, AQuietModelIsNotStarvedByAFloodedOne) {
  Model& flood = Add("flood", 1000);
  Model& quiet = Add("quiet", 1000);
  Send(flood, "flood", 500);
  Run(100);
  for (int round = 0; round < 10; ++round) {
    const size_t before = quiet.ran.size();
    Send(quiet, "quiet", 1);
    // Its one request runs within the next two picks, however long the flood.
    Run(2);
    EXPECT_EQ(quiet.ran.size(), before + 1) << "round " << round;
    Run(20);
  }
}

TEST_F(FairSlotsTest, PriorityLevelsHoldInsideAModel) {
  // Two levels, no batching (max_batch_size 0): one request per execution.
  inference::ModelConfig levels;
  levels.mutable_dynamic_batching()->set_priority_levels(2);
  levels.mutable_dynamic_batching()->set_default_priority_level(2);
  Model& m = Add("m", 100, "", 1, levels);
  Model& other = Add("other", 100);
  Send(m, "low", 3);
  Send(other, "other", 3);
  Send(m, "high", 2, {{"priority", int64_t{1}}});
  Run(8);
  ASSERT_EQ(m.ran.size(), 5u);
  EXPECT_EQ(m.ran[0], "high0");
  EXPECT_EQ(m.ran[1], "high1");
  EXPECT_EQ(m.ran[2], "low0");
  EXPECT_EQ(other.ran.size(), 3u);
}

// A slot user that counts its runs.
class CountingUser : public SlotUser {
 public:
  int64_t RunOnSlot() override {
    ++runs;
    return 1000;
  }
  int runs = 0;
};

TEST(ExecutionSlotsTest, InlineClaimsWaitForQueuedWork) {
  ExecutionSlots slots(ExecutionSlotsOptions{.slots = 2, .with_threads = false});
  auto flow = slots.Register("t", "m");
  ASSERT_TRUE(flow.ok());
  auto user = std::make_shared<CountingUser>();
  ASSERT_TRUE(slots.Request(*flow, user));
  EXPECT_EQ(slots.waiting(), 1u);
  EXPECT_FALSE(slots.TryAcquireInline());  // a flow waits: it goes first
  EXPECT_TRUE(slots.RunNext());
  EXPECT_EQ(user->runs, 1);
  EXPECT_TRUE(slots.TryAcquireInline());
  slots.ReleaseInline();
  slots.Unregister(*flow);
}

TEST(ExecutionSlotsTest, VersionsOfAModelShareOneFlow) {
  ExecutionSlots slots(ExecutionSlotsOptions{.slots = 1, .with_threads = false});
  auto v1 = slots.Register("t", "m");
  auto v2 = slots.Register("t", "m");
  auto other = slots.Register("t", "n");
  ASSERT_TRUE(v1.ok() && v2.ok() && other.ok());
  EXPECT_EQ(v1->id, v2->id);
  EXPECT_NE(v1->id, other->id);
  slots.Unregister(*v1);
  auto user = std::make_shared<CountingUser>();
  ASSERT_TRUE(slots.Request(*v2, user));  // still registered once
  EXPECT_TRUE(slots.RunNext());
  slots.Unregister(*v2);
  EXPECT_FALSE(slots.Request(*v2, user));  // gone: the caller runs it
  slots.Unregister(*other);
}

TEST(ExecutionSlotsTest, BadWeightsAreRefused) {
  ExecutionSlots slots(ExecutionSlotsOptions{.slots = 1, .with_threads = false});
  EXPECT_EQ(slots.SetTenantWeight("t", 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(slots.SetTenantWeight("t", -1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(slots.Register("t", "m", std::nan("")).status().code(), StatusCode::kInvalidArgument);
}

TEST(ExecutionSlotsTest, ShutdownRunsWhatWasAskedForThenRefuses) {
  ExecutionSlots slots(ExecutionSlotsOptions{.slots = 2});
  auto flow = slots.Register("t", "m");
  ASSERT_TRUE(flow.ok());
  auto user = std::make_shared<CountingUser>();
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(slots.Request(*flow, user));
  slots.Shutdown();
  EXPECT_EQ(user->runs, 50);
  EXPECT_FALSE(slots.Request(*flow, user));
  slots.Unregister(*flow);
}

// Blocks each execution until released; tracks how many run at once.
class GateInstance : public ModelInstance {
 public:
  struct Gate {
    std::mutex mu;
    std::condition_variable cv;
    int running = 0;
    int peak = 0;
    bool open = false;
  };
  explicit GateInstance(Gate* gate) : gate_(gate) {}
  Status Execute(const InferRequest&, InferResponse&) override {
    std::unique_lock<std::mutex> lock(gate_->mu);
    gate_->peak = std::max(gate_->peak, ++gate_->running);
    gate_->cv.notify_all();
    gate_->cv.wait(lock, [this] { return gate_->open; });
    --gate_->running;
    return OkStatus();
  }

 private:
  Gate* gate_;
};

TEST(ExecutionSlotsTest, InstancesRunInParallelUpToTheirCountAndTheSlots) {
  ExecutionSlots slots(ExecutionSlotsOptions{.slots = 4});
  GateInstance::Gate gate_a, gate_b;
  auto make = [&](GateInstance::Gate* gate, int count, const std::string& name) {
    std::vector<std::unique_ptr<ModelInstance>> instances;
    for (int i = 0; i < count; ++i) instances.push_back(std::make_unique<GateInstance>(gate));
    ModelSchedulerConfig c;
    c.model_name = name;
    return *ModelScheduler::Create(std::move(instances), &slots, {}, std::move(c));
  };
  auto a = make(&gate_a, 3, "a");
  auto b = make(&gate_b, 2, "b");
  std::mutex mu;
  std::condition_variable cv;
  int answered = 0;
  auto done = [&](StatusOr<std::unique_ptr<InferResponse>>) {
    std::lock_guard<std::mutex> lock(mu);
    ++answered;
    cv.notify_all();
  };
  for (int i = 0; i < 6; ++i) a->Enqueue(Req("a", std::to_string(i)), done);
  {
    // Model a: its three instances run at once.
    std::unique_lock<std::mutex> lock(gate_a.mu);
    gate_a.cv.wait(lock, [&] { return gate_a.running == 3; });
  }
  for (int i = 0; i < 4; ++i) b->Enqueue(Req("b", std::to_string(i)), done);
  {
    // Model b gets the fourth slot: one of its two instances runs.
    std::unique_lock<std::mutex> lock(gate_b.mu);
    gate_b.cv.wait(lock, [&] { return gate_b.running == 1; });
  }
  EXPECT_EQ(slots.busy(), 4u);
  for (auto* gate : {&gate_a, &gate_b}) {
    std::lock_guard<std::mutex> lock(gate->mu);
    gate->open = true;
    gate->cv.notify_all();
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return answered == 10; });
  lock.unlock();
  EXPECT_EQ(gate_a.peak, 3);
  EXPECT_LE(gate_b.peak, 2);
  slots.Shutdown();
}

}  // namespace
}  // namespace mm

namespace mm {
namespace {

// Waits, in a BlockingWait (as a model in a worker process does), until released.
class WaitingOnWorkerInstance : public ModelInstance {
 public:
  explicit WaitingOnWorkerInstance(GateInstance::Gate* gate) : gate_(gate) {}
  Status Execute(const InferRequest&, InferResponse&) override {
    BlockingWait waiting;
    std::unique_lock<std::mutex> lock(gate_->mu);
    ++gate_->running;
    gate_->cv.notify_all();
    gate_->cv.wait(lock, [this] { return gate_->open; });
    --gate_->running;
    return OkStatus();
  }

 private:
  GateInstance::Gate* gate_;
};

class InstantInstance : public ModelInstance {
 public:
  Status Execute(const InferRequest&, InferResponse&) override { return OkStatus(); }
};

// Issue 17: a stopped worker held its execution slot for as long as it was
// stopped; with one slot, no other model ran at all.
TEST(ExecutionSlotsTest, AnExecutionStalledOnAWorkerLendsItsSlot) {
  ExecutionSlots slots(ExecutionSlotsOptions{.slots = 1, .lend_after_ns = 20'000'000});
  GateInstance::Gate gate;
  auto make = [&](std::unique_ptr<ModelInstance> instance, const std::string& name) {
    std::vector<std::unique_ptr<ModelInstance>> instances;
    instances.push_back(std::move(instance));
    ModelSchedulerConfig c;
    c.model_name = name;
    return *ModelScheduler::Create(std::move(instances), &slots, {}, std::move(c));
  };
  auto stalled = make(std::make_unique<WaitingOnWorkerInstance>(&gate), "stalled");
  auto other = make(std::make_unique<InstantInstance>(), "other");
  std::mutex mu;
  std::condition_variable cv;
  int stalled_answered = 0, other_answered = 0;
  stalled->Enqueue(Req("stalled", "s"), [&](StatusOr<std::unique_ptr<InferResponse>>) {
    std::lock_guard<std::mutex> lock(mu);
    ++stalled_answered;
    cv.notify_all();
  });
  {
    std::unique_lock<std::mutex> lock(gate.mu);
    gate.cv.wait(lock, [&] { return gate.running == 1; });
  }
  for (int i = 0; i < 3; ++i) {
    other->Enqueue(Req("other", std::to_string(i)), [&](StatusOr<std::unique_ptr<InferResponse>>) {
      std::lock_guard<std::mutex> lock(mu);
      ++other_answered;
      cv.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return other_answered == 3; }))
        << "the other model starved behind the stalled one";
    EXPECT_EQ(stalled_answered, 0);
  }
  EXPECT_EQ(slots.lent(), 1u);
  {
    std::lock_guard<std::mutex> lock(gate.mu);
    gate.open = true;
    gate.cv.notify_all();
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return stalled_answered == 1; }));
  }
  // The lent thread ends with its execution; one slot still serves.
  for (int i = 0; i < 6000 && slots.lent() != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(slots.lent(), 0u);
  other->Enqueue(Req("other", "last"), [&](StatusOr<std::unique_ptr<InferResponse>>) {
    std::lock_guard<std::mutex> lock(mu);
    ++other_answered;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return other_answered == 4; }));
}

}  // namespace
}  // namespace mm
