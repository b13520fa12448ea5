// ModelScheduler with its ModelQueue, a FakeClock and a Timer driven by hand:
// queue-full refusals, timeouts answered at the deadline and never executed,
// priority order, bad parameters refused before queueing. No sleeps.
#include <gtest/gtest.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "scheduler/clock.h"
#include "scheduler/model_scheduler.h"
#include "scheduler/timer.h"

namespace mm {
namespace {

// Records the ids it runs; blocks each execution until the test lets it go.
class GatedInstance : public ModelInstance {
 public:
  Status Execute(const InferRequest& request, InferResponse&) override {
    std::unique_lock<std::mutex> lock(mu_);
    ran_.push_back(request.id);
    ++running_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return released_ > 0; });
    --released_;
    --running_;
    return OkStatus();
  }
  void AwaitRunning(size_t executions) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return ran_.size() >= executions && running_ > 0; });
  }
  void Release(int n = 1) {
    std::lock_guard<std::mutex> lock(mu_);
    released_ += n;
    cv_.notify_all();
  }
  std::vector<std::string> ran() {
    std::lock_guard<std::mutex> lock(mu_);
    return ran_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> ran_;
  int running_ = 0;
  int released_ = 0;
};

struct Answers {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<std::string, Status>> got;  // id, status
  InferCallback For(std::string id) {
    return [this, id](StatusOr<std::unique_ptr<InferResponse>> r) {
      std::lock_guard<std::mutex> lock(mu);
      got.emplace_back(id, r.ok() ? OkStatus() : r.status());
      cv.notify_all();
    };
  }
  void Await(size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return got.size() >= n; });
  }
  Status StatusOf(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [i, s] : got) {
      if (i == id) return s;
    }
    return Internal("no answer for " + id);
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu);
    return got.size();
  }
};

std::unique_ptr<InferRequest> Req(std::string id, Parameters params = {}) {
  auto r = std::make_unique<InferRequest>();
  r->model_name = "m";
  r->id = std::move(id);
  r->parameters = std::move(params);
  return r;
}

class SchedulerQueueTest : public ::testing::Test {
 protected:
  void Make(const inference::ModelConfig& config) {
    std::vector<std::unique_ptr<ModelInstance>> instances;
    auto gated = std::make_unique<GatedInstance>();
    instance_ = gated.get();
    instances.push_back(std::move(gated));
    ModelSchedulerOptions options;
    options.clock = &clock_;
    options.timer = &timer_;
    scheduler_ = *ModelScheduler::Create(std::move(instances), &pool_, options,
                                         ModelSchedulerConfig::FromModelConfig(config, "m"));
  }
  void TearDown() override {
    instance_->Release(1000);
    pool_.Shutdown();
  }

  inference::ModelConfig Levels(uint64_t levels, uint64_t default_level) {
    inference::ModelConfig c;
    c.set_max_batch_size(4);
    auto* db = c.mutable_dynamic_batching();
    db->set_priority_levels(levels);
    db->set_default_priority_level(default_level);
    return c;
  }

  FakeClock clock_;
  Timer timer_{&clock_, /*with_thread=*/false};
  ExecutionSlots pool_{ExecutionSlotsOptions{.slots = 2}};
  GatedInstance* instance_ = nullptr;
  std::shared_ptr<ModelScheduler> scheduler_;
  Answers answers_;
};

TEST_F(SchedulerQueueTest, AFullQueueRefusesAtOnceAndLosesNothing) {
  auto c = Levels(1, 1);
  c.mutable_dynamic_batching()->mutable_default_queue_policy()->set_max_queue_size(2);
  Make(c);
  scheduler_->Enqueue(Req("running"), answers_.For("running"));
  instance_->AwaitRunning(1);
  scheduler_->Enqueue(Req("q1"), answers_.For("q1"));
  scheduler_->Enqueue(Req("q2"), answers_.For("q2"));
  scheduler_->Enqueue(Req("over"), answers_.For("over"));
  answers_.Await(1);
  Status over = answers_.StatusOf("over");
  EXPECT_EQ(over.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(over.message().find("queue full for model 'm' (2 waiting"), std::string::npos)
      << over.message();
  instance_->Release(3);
  answers_.Await(4);
  EXPECT_TRUE(answers_.StatusOf("q1").ok());
  EXPECT_TRUE(answers_.StatusOf("q2").ok());
  EXPECT_EQ(instance_->ran(), (std::vector<std::string>{"running", "q1", "q2"}));
}

TEST_F(SchedulerQueueTest, ATimedOutRequestIsAnsweredAtItsDeadlineAndNeverRuns) {
  auto c = Levels(1, 1);
  c.mutable_dynamic_batching()->mutable_default_queue_policy()->set_default_timeout_microseconds(
      1000);
  c.mutable_dynamic_batching()->mutable_default_queue_policy()->set_allow_timeout_override(true);
  Make(c);
  scheduler_->Enqueue(Req("running"), answers_.For("running"));
  instance_->AwaitRunning(1);
  scheduler_->Enqueue(Req("late"), answers_.For("late"));
  scheduler_->Enqueue(Req("short", {{"timeout", int64_t{100}}}), answers_.For("short"));
  scheduler_->Enqueue(Req("none-left", {{"timeout", int64_t{100000}}}), answers_.For("none-left"));
  EXPECT_EQ(timer_.RunDue(), 0u);
  clock_.AdvanceUs(100);
  EXPECT_EQ(timer_.RunDue(), 1u);  // "short" answered now, the instance still busy
  answers_.Await(1);
  Status s = answers_.StatusOf("short");
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(s.message().find("past its timeout of 0.100 ms; not executed"), std::string::npos)
      << s.message();
  clock_.AdvanceUs(900);
  timer_.RunDue();
  answers_.Await(3);  // "late" and "none-left" (its override could only shorten: 1 ms)
  EXPECT_EQ(answers_.StatusOf("late").code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(answers_.StatusOf("none-left").code(), StatusCode::kDeadlineExceeded);
  instance_->Release(1);
  answers_.Await(4);
  EXPECT_EQ(instance_->ran(), (std::vector<std::string>{"running"}));  // nothing expired ran
  // (The answer comes just before the instance is handed back.)
  while (scheduler_->pending() != 0) std::this_thread::yield();
}

// A client that goes away frees its queue place at once; its request is
// answered CANCELLED and never runs. One cancelled before it queued never
// waits; cancelling a running request changes nothing.
TEST_F(SchedulerQueueTest, ACancelledRequestLeavesTheQueueAndNeverRuns) {
  auto c = Levels(1, 1);
  c.mutable_dynamic_batching()->mutable_default_queue_policy()->set_max_queue_size(1);
  Make(c);
  auto running_cancel = std::make_shared<Cancellation>();
  auto running = Req("running");
  running->cancellation = running_cancel;
  scheduler_->Enqueue(std::move(running), answers_.For("running"));
  instance_->AwaitRunning(1);
  auto gone = std::make_shared<Cancellation>();
  auto request = Req("gone");
  request->cancellation = gone;
  scheduler_->Enqueue(std::move(request), answers_.For("gone"));
  scheduler_->Enqueue(Req("full"), answers_.For("full"));
  answers_.Await(1);
  EXPECT_EQ(answers_.StatusOf("full").code(), StatusCode::kResourceExhausted);
  gone->Cancel();  // answered on this thread
  ASSERT_EQ(answers_.count(), 2u);
  Status s = answers_.StatusOf("gone");
  EXPECT_EQ(s.code(), StatusCode::kCancelled);
  EXPECT_NE(s.message().find("the client went away while the request waited; not executed"),
            std::string::npos)
      << s.message();
  gone->Cancel();  // twice: nothing more
  ASSERT_EQ(answers_.count(), 2u);
  // Its place is free again.
  scheduler_->Enqueue(Req("next"), answers_.For("next"));
  ASSERT_EQ(answers_.count(), 2u);
  auto early = std::make_shared<Cancellation>();
  early->Cancel();
  auto late = Req("early");
  late->cancellation = early;
  scheduler_->Enqueue(std::move(late), answers_.For("early"));  // queue full: refused anyway
  running_cancel->Cancel();                                     // running: it still completes
  instance_->Release(2);
  answers_.Await(5);
  EXPECT_TRUE(answers_.StatusOf("running").ok());
  EXPECT_TRUE(answers_.StatusOf("next").ok());
  EXPECT_EQ(instance_->ran(), (std::vector<std::string>{"running", "next"}));
  while (scheduler_->pending() != 0) std::this_thread::yield();
  // Cancelled before it was queued: answered at once, never waits.
  scheduler_->Enqueue(Req("busy"), answers_.For("busy"));
  instance_->AwaitRunning(3);
  auto before = Req("before");
  before->cancellation = early;
  scheduler_->Enqueue(std::move(before), answers_.For("before"));
  answers_.Await(6);
  EXPECT_EQ(answers_.StatusOf("before").code(), StatusCode::kCancelled);
  EXPECT_EQ(scheduler_->pending(), 1u);  // only "busy"
}

TEST_F(SchedulerQueueTest, HigherPriorityRunsFirst) {
  Make(Levels(3, 2));
  scheduler_->Enqueue(Req("running"), answers_.For("running"));
  instance_->AwaitRunning(1);
  scheduler_->Enqueue(Req("low", {{"priority", int64_t{3}}}), answers_.For("low"));
  scheduler_->Enqueue(Req("default"), answers_.For("default"));
  scheduler_->Enqueue(Req("high", {{"priority", int64_t{1}}}), answers_.For("high"));
  scheduler_->Enqueue(Req("default2", {{"priority", int64_t{0}}}), answers_.For("default2"));
  instance_->Release(5);
  answers_.Await(5);
  EXPECT_EQ(instance_->ran(),
            (std::vector<std::string>{"running", "high", "default", "default2", "low"}));
}

TEST_F(SchedulerQueueTest, BadParametersAreRefusedBeforeQueueing) {
  Make(Levels(2, 1));
  scheduler_->Enqueue(Req("p", {{"priority", int64_t{3}}}), answers_.For("p"));
  scheduler_->Enqueue(Req("t", {{"timeout", int64_t{-1}}}), answers_.For("t"));
  scheduler_->Enqueue(Req("s", {{"priority", std::string("urgent")}}), answers_.For("s"));
  ASSERT_EQ(answers_.count(), 3u);  // answered on the calling thread
  for (auto id : {"p", "t", "s"}) {
    EXPECT_EQ(answers_.StatusOf(id).code(), StatusCode::kInvalidArgument) << id;
  }
  EXPECT_EQ(scheduler_->pending(), 0u);
  EXPECT_TRUE(instance_->ran().empty());
}

// Records each execution's batch (rows per input 0) and answers y = x + 1,
// row by row; optionally holds executions until released.
class BatchRecorder : public ModelInstance {
 public:
  Status Execute(const InferRequest& request, InferResponse& response) override {
    std::unique_lock<std::mutex> lock(mu_);
    batches_.push_back(request.inputs[0].shape[0]);
    cv_.notify_all();
    if (hold_) cv_.wait(lock, [&] { return released_ > 0; }), --released_;
    if (clock_ != nullptr) clock_->Advance(execution_ns_);
    const Tensor& x = request.inputs[0];
    auto out = std::make_shared<std::vector<float>>();
    for (float v : x.as<float>()) out->push_back(v + 1);
    Tensor y;
    y.name = "y";
    y.dtype = DataType::kFp32;
    y.shape = x.shape;
    y.data = std::as_bytes(std::span<const float>(*out));
    y.owner = out;
    response.outputs.push_back(std::move(y));
    return OkStatus();
  }
  void Hold() { hold_ = true; }
  // Each execution takes `ns` on `clock`.
  void Takes(FakeClock* clock, int64_t ns) {
    clock_ = clock;
    execution_ns_ = ns;
  }
  void Release(int n) {
    std::lock_guard<std::mutex> lock(mu_);
    released_ += n;
    cv_.notify_all();
  }
  void AwaitBatches(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return batches_.size() >= n; });
  }
  std::vector<int64_t> batches() {
    std::lock_guard<std::mutex> lock(mu_);
    return batches_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int64_t> batches_;
  bool hold_ = false;
  int released_ = 0;
  FakeClock* clock_ = nullptr;
  int64_t execution_ns_ = 0;
};

// A request of `rows` rows of [`width`] floats, value `v`.
std::unique_ptr<InferRequest> Rows(std::string id, int64_t rows, float v, int64_t width = 2) {
  auto r = Req(std::move(id));
  auto data = std::make_shared<std::vector<float>>(static_cast<size_t>(rows * width), v);
  Tensor x;
  x.name = "x";
  x.dtype = DataType::kFp32;
  x.shape = {rows, width};
  x.data = std::as_bytes(std::span<const float>(*data));
  x.owner = data;
  r->inputs.push_back(std::move(x));
  return r;
}

struct Outputs {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, std::vector<float>> y;
  std::map<std::string, Shape> shape;
  std::map<std::string, std::pair<int64_t, int64_t>> times;  // queue_ns, compute_ns
  InferCallback For(std::string id) {
    return [this, id](StatusOr<std::unique_ptr<InferResponse>> r) {
      std::lock_guard<std::mutex> lock(mu);
      ASSERT_TRUE(r.ok()) << r.status().message();
      auto v = (*r)->outputs.at(0).as<float>();
      y[id] = std::vector<float>(v.begin(), v.end());
      shape[id] = (*r)->outputs.at(0).shape;
      times[id] = {(*r)->queue_ns, (*r)->compute_ns};
      cv.notify_all();
    };
  }
  void Await(size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return y.size() >= n; });
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu);
    return y.size();
  }
};

class BatchingTest : public ::testing::Test {
 protected:
  void Make(std::vector<int32_t> preferred, uint64_t delay_us, int max_batch = 8) {
    inference::ModelConfig c;
    c.set_max_batch_size(max_batch);
    auto* db = c.mutable_dynamic_batching();
    for (int32_t p : preferred) db->add_preferred_batch_size(p);
    db->set_max_queue_delay_microseconds(delay_us);
    std::vector<std::unique_ptr<ModelInstance>> instances;
    auto recorder = std::make_unique<BatchRecorder>();
    model_ = recorder.get();
    instances.push_back(std::move(recorder));
    ModelSchedulerOptions options;
    options.clock = &clock_;
    options.timer = &timer_;
    scheduler_ = *ModelScheduler::Create(std::move(instances), &pool_, options,
                                         ModelSchedulerConfig::FromModelConfig(c, "m"));
  }
  void TearDown() override {
    model_->Release(1000);
    pool_.Shutdown();
  }
  FakeClock clock_;
  Timer timer_{&clock_, false};
  ExecutionSlots pool_{ExecutionSlotsOptions{.slots = 2}};
  BatchRecorder* model_ = nullptr;
  std::shared_ptr<ModelScheduler> scheduler_;
  Outputs out_;
};

TEST_F(BatchingTest, WaitsUpToTheDelayThenRunsWhatItHas) {
  Make({}, /*delay_us=*/500);
  scheduler_->Enqueue(Rows("a", 1, 1), out_.For("a"));
  scheduler_->Enqueue(Rows("b", 2, 2), out_.For("b"));
  EXPECT_EQ(timer_.RunDue(), 0u);
  EXPECT_TRUE(model_->batches().empty());  // waiting for company
  clock_.AdvanceUs(500);
  // (The pool thread that decided to wait may register its timer after this
  // thread's first look: look until it has run.)
  while (out_.count() < 2) {
    timer_.RunDue();
    std::this_thread::yield();
  }
  EXPECT_EQ(model_->batches(), (std::vector<int64_t>{3}));  // one execution, 3 rows
  EXPECT_EQ(out_.y["a"], (std::vector<float>{2, 2}));
  EXPECT_EQ(out_.y["b"], (std::vector<float>{3, 3, 3, 3}));
  EXPECT_EQ(out_.shape["b"], (Shape{2, 2}));
}

TEST_F(BatchingTest, ABatchsTimeIsSharedByRowsAndEachRequestKnowsItsWait) {
  Make({}, /*delay_us=*/500);
  model_->Takes(&clock_, 3001);
  scheduler_->Enqueue(Rows("a", 1, 1), out_.For("a"));
  clock_.AdvanceUs(100);
  scheduler_->Enqueue(Rows("b", 2, 2), out_.For("b"));
  clock_.AdvanceUs(400);
  while (out_.count() < 2) {
    timer_.RunDue();
    std::this_thread::yield();
  }
  ASSERT_EQ(model_->batches(), (std::vector<int64_t>{3}));
  // "a" waited the whole delay, "b" 100 us less; the batch's 3001 ns are
  // charged 1:2 by rows, the rounding to the last.
  EXPECT_EQ(out_.times["a"], (std::pair<int64_t, int64_t>{500'000, 1000}));
  EXPECT_EQ(out_.times["b"], (std::pair<int64_t, int64_t>{400'000, 2001}));
}

TEST_F(BatchingTest, AFullOrPreferredBatchGoesAtOnce) {
  Make({4}, /*delay_us=*/1'000'000, /*max_batch=*/6);
  scheduler_->Enqueue(Rows("a", 1, 1), out_.For("a"));
  scheduler_->Enqueue(Rows("b", 3, 2), out_.For("b"));  // 4 rows: the preferred size
  out_.Await(2);
  scheduler_->Enqueue(Rows("c", 2, 3), out_.For("c"));
  scheduler_->Enqueue(Rows("d", 4, 4), out_.For("d"));  // 6 rows: the maximum
  out_.Await(4);
  EXPECT_EQ(model_->batches(), (std::vector<int64_t>{4, 6}));
  EXPECT_EQ(out_.y["d"], std::vector<float>(8, 5));
}

TEST_F(BatchingTest, PrefersTheLargestPreferredSizeThatFitsExactly) {
  Make({2, 4}, /*delay_us=*/1'000'000);
  model_->Hold();
  scheduler_->Enqueue(Rows("first", 1, 0), out_.For("first"));  // runs alone after the delay
  clock_.AdvanceUs(1'000'000);
  while (model_->batches().empty()) {
    timer_.RunDue();
    std::this_thread::yield();
  }  // the instance is busy now; the rest queue
  for (int i = 0; i < 5; ++i) {
    scheduler_->Enqueue(Rows("r" + std::to_string(i), 1, static_cast<float>(i)),
                        out_.For("r" + std::to_string(i)));
  }
  model_->Release(3);
  // 5 waiting rows: a batch of 4 (preferred) at once, then the last one alone
  // once its delay has passed.
  while (out_.count() < 6) {
    clock_.AdvanceUs(1'000'000);
    timer_.RunDue();
    std::this_thread::yield();
  }
  EXPECT_EQ(model_->batches(), (std::vector<int64_t>{1, 4, 1}));
}

TEST_F(BatchingTest, DifferentShapesAreNotBatchedTogether) {
  Make({}, /*delay_us=*/100);
  scheduler_->Enqueue(Rows("narrow", 1, 1, 2), out_.For("narrow"));
  scheduler_->Enqueue(Rows("wide", 1, 1, 3), out_.For("wide"));
  scheduler_->Enqueue(Rows("narrow2", 1, 1, 2), out_.For("narrow2"));
  while (out_.count() < 3) {
    clock_.AdvanceUs(100);
    timer_.RunDue();
    std::this_thread::yield();
  }
  // In queue order: "narrow" alone (the next is wide), "wide" alone, "narrow2" alone.
  EXPECT_EQ(model_->batches(), (std::vector<int64_t>{1, 1, 1}));
  EXPECT_EQ(out_.y["wide"], std::vector<float>(3, 2));
}

TEST_F(BatchingTest, WithoutDelayRunsImmediatelyAndBatchesWhatQueuedMeanwhile) {
  Make({}, /*delay_us=*/0);
  model_->Hold();
  scheduler_->Enqueue(Rows("a", 1, 1), out_.For("a"));
  model_->AwaitBatches(1);
  for (auto id : {"b", "c", "d"}) scheduler_->Enqueue(Rows(id, 2, 1), out_.For(id));
  model_->Release(2);
  out_.Await(4);
  EXPECT_EQ(model_->batches(), (std::vector<int64_t>{1, 6}));
}

// Holds each execution until the test releases its request's id.
class IdGate : public ModelInstance {
 public:
  Status Execute(const InferRequest& request, InferResponse&) override {
    std::unique_lock<std::mutex> lock(mu_);
    started_.push_back(request.id);
    cv_.notify_all();
    cv_.wait(lock, [&] { return released_.count(request.id) > 0; });
    return OkStatus();
  }
  void AwaitStarted(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return started_.size() >= n; });
  }
  void Release(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    released_.insert(id);
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> started_;
  std::set<std::string> released_;
};

// With preserve_ordering, a response that is ready first still waits for
// the requests queued before it; without, it is answered at once.
TEST(PreserveOrderingTest, ResponsesFollowTheQueueOrderAcrossInstances) {
  for (bool preserve : {true, false}) {
    ExecutionSlots slots(ExecutionSlotsOptions{.slots = 2});
    inference::ModelConfig c;
    c.set_max_batch_size(1);  // one request per execution
    c.mutable_dynamic_batching()->set_preserve_ordering(preserve);
    std::vector<std::unique_ptr<ModelInstance>> instances;
    auto gate = std::make_unique<IdGate>();
    IdGate* g = gate.get();
    instances.push_back(std::move(gate));
    instances.push_back(std::make_unique<IdGate>());
    // Both instances share one gate: the second forwards to the first.
    class Forward : public ModelInstance {
     public:
      explicit Forward(IdGate* g) : g_(g) {}
      Status Execute(const InferRequest& r, InferResponse& out) override {
        return g_->Execute(r, out);
      }

     private:
      IdGate* g_;
    };
    instances[1] = std::make_unique<Forward>(g);
    auto scheduler = *ModelScheduler::Create(std::move(instances), &slots, {},
                                             ModelSchedulerConfig::FromModelConfig(c, "m"));
    Answers answers;
    std::vector<std::string> order;
    std::mutex mu;
    auto record = [&](std::string id) {
      return [&, id, inner = answers.For(id)](StatusOr<std::unique_ptr<InferResponse>> r) {
        {
          std::lock_guard<std::mutex> lock(mu);
          order.push_back(id);
        }
        inner(std::move(r));
      };
    };
    auto one = Req("first");
    one->inputs.push_back(Tensor{"x", DataType::kFp32, {1, 1}, {}, nullptr, {}});
    auto two = Req("second");
    two->inputs.push_back(Tensor{"x", DataType::kFp32, {1, 1}, {}, nullptr, {}});
    scheduler->Enqueue(std::move(one), record("first"));
    g->AwaitStarted(1);
    scheduler->Enqueue(std::move(two), record("second"));
    g->AwaitStarted(2);  // both run, one on each instance
    g->Release("second");
    if (!preserve) {
      answers.Await(1);
      EXPECT_EQ(answers.count(), 1u);
    } else {
      // "second" is done but held: nothing is answered before "first".
      while (scheduler->pending() > 1) std::this_thread::yield();
      EXPECT_EQ(answers.count(), 0u);
    }
    g->Release("first");
    answers.Await(2);
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(order, preserve ? (std::vector<std::string>{"first", "second"})
                              : (std::vector<std::string>{"second", "first"}))
        << "preserve_ordering " << preserve;
  }
}

TEST(TimerTest, RunsDueCallbacksInDeadlineOrder) {
  FakeClock clock;
  Timer timer(&clock, /*with_thread=*/false);
  std::vector<int> order;
  const int64_t t0 = clock.NowNs();
  timer.At(t0 + 300, [&] { order.push_back(3); });
  timer.At(t0 + 100, [&] { order.push_back(1); });
  timer.At(t0 + 100, [&] { order.push_back(2); });  // same deadline: in order given
  EXPECT_EQ(timer.RunDue(), 0u);
  clock.Advance(100);
  EXPECT_EQ(timer.RunDue(), 2u);
  clock.Advance(500);
  timer.At(t0, [&] { order.push_back(4); });  // already past: runs on the next call
  EXPECT_EQ(timer.RunDue(), 2u);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 4, 3}));  // by deadline
}

TEST(TimerTest, TheThreadRunsCallbacksOnTheSteadyClock) {
  Timer timer(SteadyClock::Get(), /*with_thread=*/true);
  std::mutex mu;
  std::condition_variable cv;
  bool ran = false;
  timer.At(SteadyClock::Get()->NowNs() + 1'000'000, [&] {
    std::lock_guard<std::mutex> lock(mu);
    ran = true;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return ran; });
  EXPECT_TRUE(ran);
}

}  // namespace
}  // namespace mm
