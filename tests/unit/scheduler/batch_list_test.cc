// ModelScheduler with ModelSchedulerConfig::batch_as_list: a dynamic batch
// reaches the instance as the list of its requests (ExecuteList), unmerged,
// each request answered with its own response or error; the same batch
// formation, statistics and time sharing as a merged batch. A FakeClock and
// a Timer driven by hand; a preferred size forms the batches, no sleeps.
#include <gtest/gtest.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "fake_instance.h"
#include "scheduler/clock.h"
#include "scheduler/model_scheduler.h"
#include "scheduler/timer.h"

namespace mm {
namespace {

using fakes::FakeInstance;

// A request of `rows` rows of two floats, value `v`.
std::unique_ptr<InferRequest> Rows(std::string id, int64_t rows, float v) {
  auto r = std::make_unique<InferRequest>();
  r->model_name = "m";
  r->id = std::move(id);
  auto data = std::make_shared<std::vector<float>>(static_cast<size_t>(rows * 2), v);
  Tensor x;
  x.name = "x";
  x.dtype = DataType::kFp32;
  x.shape = {rows, 2};
  x.data = std::as_bytes(std::span<const float>(*data));
  x.owner = data;
  r->inputs.push_back(std::move(x));
  return r;
}

struct Results {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, StatusOr<std::unique_ptr<InferResponse>>> got;
  InferCallback For(std::string id) {
    return [this, id](StatusOr<std::unique_ptr<InferResponse>> r) {
      std::lock_guard<std::mutex> lock(mu);
      got.emplace(id, std::move(r));
      cv.notify_all();
    };
  }
  void Await(size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return got.size() >= n; });
  }
};

class BatchListTest : public ::testing::Test {
 protected:
  // A model of max_batch_size 8, preferred size `preferred`, a delay long
  // enough never to pass, answering y = x + 1.
  void Make(bool as_list, int32_t preferred, FakeInstance::Options options = {}) {
    inference::ModelConfig c;
    c.set_max_batch_size(8);
    c.mutable_dynamic_batching()->add_preferred_batch_size(preferred);
    c.mutable_dynamic_batching()->set_max_queue_delay_microseconds(60'000'000);
    options.record = true;
    options.handler = fakes::AddToInput("y", 1);
    auto fake = std::make_unique<FakeInstance>(std::move(options));
    model_ = fake.get();
    std::vector<std::unique_ptr<ModelInstance>> instances;
    instances.push_back(std::move(fake));
    ModelSchedulerOptions scheduler_options;
    scheduler_options.clock = &clock_;
    scheduler_options.timer = &timer_;
    auto config = ModelSchedulerConfig::FromModelConfig(c, "m");
    config.batch_as_list = as_list;
    stats_ = std::make_shared<ModelStats>("m", 1, "t", 8);
    config.stats = stats_;
    scheduler_ = *ModelScheduler::Create(std::move(instances), &pool_, scheduler_options, config);
  }
  void TearDown() override { pool_.Shutdown(); }
  FakeClock clock_;
  Timer timer_{&clock_, false};
  ExecutionSlots pool_{ExecutionSlotsOptions{.slots = 2}};
  FakeInstance* model_ = nullptr;
  std::shared_ptr<ModelStats> stats_;
  std::shared_ptr<ModelScheduler> scheduler_;
  Results out_;
};

TEST_F(BatchListTest, ABatchArrivesAsItsRequestsUnmergedEachAnsweredAlone) {
  Make(/*as_list=*/true, /*preferred=*/4);
  scheduler_->Enqueue(Rows("a", 1, 1), out_.For("a"));
  scheduler_->Enqueue(Rows("b", 2, 2), out_.For("b"));
  scheduler_->Enqueue(Rows("c", 1, 3), out_.For("c"));  // 4 rows: the preferred size
  out_.Await(3);
  // One list of the three requests, in queue order; each seen with its own rows.
  EXPECT_EQ(model_->lists(), (std::vector<std::vector<std::string>>{{"a", "b", "c"}}));
  auto seen = model_->requests();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[1].inputs[0].shape, (Shape{2, 2}));
  for (auto& [id, r] : out_.got) ASSERT_TRUE(r.ok()) << id << ": " << r.status().message();
  auto y = out_.got.at("b").value()->outputs.at(0).as<float>();
  EXPECT_EQ(std::vector<float>(y.begin(), y.end()), (std::vector<float>{3, 3, 3, 3}));
  EXPECT_EQ(out_.got.at("b").value()->id, "b");
  // One execution of 4 rows, as a merged batch would count.
  EXPECT_EQ(scheduler_->executions(), 1u);
  EXPECT_EQ(scheduler_->executed_requests(), 3u);
  auto snapshot = stats_->Read();
  EXPECT_EQ(snapshot.execution_count, 1u);
  EXPECT_EQ(snapshot.inference_count, 4u);
  ASSERT_EQ(snapshot.batches.size(), 1u);
  EXPECT_EQ(snapshot.batches[0].batch_size, 4);
}

TEST_F(BatchListTest, WithoutTheFlagTheBatchIsMergedAsBefore) {
  Make(/*as_list=*/false, /*preferred=*/3);
  scheduler_->Enqueue(Rows("a", 1, 1), out_.For("a"));
  scheduler_->Enqueue(Rows("b", 2, 2), out_.For("b"));
  out_.Await(2);
  EXPECT_TRUE(model_->lists().empty());
  auto seen = model_->requests();
  ASSERT_EQ(seen.size(), 1u);  // one merged request of 3 rows
  EXPECT_EQ(seen[0].inputs[0].shape, (Shape{3, 2}));
  ASSERT_TRUE(out_.got.at("b").ok());
}

TEST_F(BatchListTest, ARequestsOwnErrorFailsOnlyThatRequest) {
  FakeInstance::Options options;
  options.fail_id = "b";
  Make(/*as_list=*/true, /*preferred=*/3, std::move(options));
  for (auto id : {"a", "b", "c"}) scheduler_->Enqueue(Rows(id, 1, 1), out_.For(id));
  out_.Await(3);
  EXPECT_EQ(model_->lists().size(), 1u);
  EXPECT_TRUE(out_.got.at("a").ok());
  EXPECT_TRUE(out_.got.at("c").ok());
  ASSERT_FALSE(out_.got.at("b").ok());
  EXPECT_EQ(out_.got.at("b").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(out_.got.at("b").status().message(), "asked to fail");
}

TEST_F(BatchListTest, AFailedListFailsEveryRequest) {
  FakeInstance::Options options;
  options.list_fails = Unavailable("the worker stopped");
  Make(/*as_list=*/true, /*preferred=*/2, std::move(options));
  for (auto id : {"a", "b"}) scheduler_->Enqueue(Rows(id, 1, 1), out_.For(id));
  out_.Await(2);
  for (auto id : {"a", "b"}) {
    ASSERT_FALSE(out_.got.at(id).ok());
    EXPECT_EQ(out_.got.at(id).status().message(), "the worker stopped");
  }
}

TEST_F(BatchListTest, ABatchsTimeIsSharedByRows) {
  FakeInstance::Options options;
  Make(/*as_list=*/true, /*preferred=*/3, std::move(options));
  scheduler_->Enqueue(Rows("a", 1, 1), out_.For("a"));
  clock_.AdvanceUs(100);
  scheduler_->Enqueue(Rows("b", 2, 2), out_.For("b"));
  out_.Await(2);
  const auto& a = *out_.got.at("a").value();
  const auto& b = *out_.got.at("b").value();
  // The clock does not move during the execution: both charged nothing, but
  // each knows its own wait.
  EXPECT_EQ(a.queue_ns, 100'000);
  EXPECT_EQ(b.queue_ns, 0);
  EXPECT_EQ(a.compute_ns + b.compute_ns,
            a.timing.input_ns + a.timing.infer_ns + a.timing.output_ns);
  EXPECT_EQ(a.timing.batch_size, 3);
}

TEST_F(BatchListTest, ASingleRequestRunsExecute) {
  Make(/*as_list=*/true, /*preferred=*/1);
  scheduler_->Enqueue(Rows("a", 1, 1), out_.For("a"));
  out_.Await(1);
  EXPECT_TRUE(model_->lists().empty());
  EXPECT_EQ(model_->requests().size(), 1u);
  EXPECT_TRUE(out_.got.at("a").ok());
}

}  // namespace
}  // namespace mm
