// ModelScheduler with its ModelQueue, a FakeClock and a Timer driven by hand:
// queue-full refusals, timeouts answered at the deadline and never executed,
// priority order, bad parameters refused before queueing. No sleeps.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
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
    scheduler_ = ModelScheduler::Create(std::move(instances), &pool_, options,
                                        QueueConfig::FromModelConfig(config), "m");
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
  ThreadPool pool_{2};
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
