#include "scheduler/model_queue.h"

#include <gtest/gtest.h>

#include "scheduler/clock.h"

namespace mm {
namespace {

inference::ModelConfig ConfigWithLevels(uint64_t levels, uint64_t default_level) {
  inference::ModelConfig c;
  c.set_name("m");
  c.set_max_batch_size(8);
  auto* db = c.mutable_dynamic_batching();
  db->set_priority_levels(levels);
  db->set_default_priority_level(default_level);
  return c;
}

std::unique_ptr<InferRequest> Request(std::string id, Parameters params = {}) {
  auto r = std::make_unique<InferRequest>();
  r->model_name = "m";
  r->id = std::move(id);
  r->parameters = std::move(params);
  return r;
}

ModelQueue::Item ItemFor(std::unique_ptr<InferRequest> r, const Admission& a, int64_t now) {
  ModelQueue::Item item;
  item.request = std::move(r);
  item.enqueued_ns = now;
  item.level = a.level;
  item.deadline_ns = a.deadline_ns;
  return item;
}

TEST(QueueConfigTest, FromModelConfig) {
  inference::ModelConfig plain;
  auto q = QueueConfig::FromModelConfig(plain);
  EXPECT_EQ(q.levels, 1u);
  EXPECT_EQ(q.default_level, 1u);
  EXPECT_TRUE(q.level_policies.empty());
  EXPECT_EQ(q.PolicyOf(1).max_queue_size, 0u);

  auto c = ConfigWithLevels(3, 2);
  auto* def = c.mutable_dynamic_batching()->mutable_default_queue_policy();
  def->set_max_queue_size(10);
  def->set_default_timeout_microseconds(500);
  inference::ModelQueuePolicy high;
  high.set_timeout_action(inference::ModelQueuePolicy::DELAY);
  high.set_default_timeout_microseconds(100);
  high.set_allow_timeout_override(true);
  (*c.mutable_dynamic_batching()->mutable_priority_queue_policy())[1] = high;
  q = QueueConfig::FromModelConfig(c);
  EXPECT_EQ(q.levels, 3u);
  EXPECT_EQ(q.default_level, 2u);
  EXPECT_TRUE(q.PolicyOf(1).delay_on_timeout);
  EXPECT_EQ(q.PolicyOf(1).default_timeout_ns, 100'000);
  EXPECT_EQ(q.PolicyOf(1).max_queue_size, 0u);  // a level's policy replaces the default whole
  EXPECT_EQ(q.PolicyOf(2).max_queue_size, 10u);
  EXPECT_EQ(q.PolicyOf(3).default_timeout_ns, 500'000);
  EXPECT_EQ(q.level_policies.size(), 1u);  // only the level with its own policy
}

// Issue 17: a config's level count sizes nothing. Even unvalidated numbers
// (validation bounds them at 1000) give a consistent, sparse config.
TEST(QueueConfigTest, HugeLevelCountsAreSparseAndNeverTruncated) {
  auto q = QueueConfig::FromModelConfig(ConfigWithLevels(5'000'000, 4'999'999));
  EXPECT_EQ(q.levels, 5'000'000u);
  EXPECT_EQ(q.default_level, 4'999'999u);
  EXPECT_TRUE(q.level_policies.empty());
  // 4294967298 used to truncate to 2 levels with default level 4000000000:
  // an index far past the end. Now the levels are clamped, not wrapped, and
  // the default level is always within them.
  q = QueueConfig::FromModelConfig(ConfigWithLevels(4'294'967'298ULL, 4'000'000'000ULL));
  EXPECT_EQ(q.levels, UINT32_MAX - 1);
  EXPECT_EQ(q.default_level, 4'000'000'000u);
  q = QueueConfig::FromModelConfig(ConfigWithLevels(3, 4'000'000'000ULL));
  EXPECT_EQ(q.default_level, 1u);
  q = QueueConfig::FromModelConfig(ConfigWithLevels(0, 0));
  EXPECT_EQ(q.levels, 1u);
  EXPECT_EQ(q.default_level, 1u);
}

TEST(ModelQueueTest, ManyLevelsServeInOrderWithoutPerLevelState) {
  auto c = ConfigWithLevels(4'294'967'298ULL, 4'000'000'000ULL);
  const QueueConfig q = QueueConfig::FromModelConfig(c);
  ModelQueue queue(q, "m");
  int64_t now = 0;
  for (auto [id, prio] : std::vector<std::pair<std::string, int64_t>>{
           {"default", 0}, {"last", 4'294'967'294LL}, {"first", 1}, {"mid", 70'000}}) {
    auto r = Request(id, {{"priority", prio}});
    auto a = Admit(q, *r, now, "m");
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    auto item = ItemFor(std::move(r), *a, now);
    ASSERT_TRUE(queue.Push(item).ok());
  }
  std::vector<std::string> order;
  while (!queue.empty()) order.push_back(queue.Pop().request->id);
  EXPECT_EQ(order, (std::vector<std::string>{"first", "mid", "default", "last"}));
  // A priority past the levels is a clear INVALID_ARGUMENT naming the range.
  auto bad = Admit(q, *Request("r", {{"priority", int64_t{4'294'967'295LL}}}), now, "m");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("priority 4294967295 is out of range"), std::string::npos)
      << bad.status().message();
  // An item whose level is out of range (not from Admit) queues at the default.
  auto stray = ItemFor(Request("stray"), {0, 0}, now);
  ASSERT_TRUE(queue.Push(stray).ok());
  EXPECT_EQ(queue.Front()->level, 4'000'000'000u);
}

TEST(AdmitTest, PriorityAndTimeoutParameters) {
  auto c = ConfigWithLevels(3, 2);
  auto* def = c.mutable_dynamic_batching()->mutable_default_queue_policy();
  def->set_default_timeout_microseconds(1000);
  def->set_allow_timeout_override(true);
  const QueueConfig q = QueueConfig::FromModelConfig(c);
  const int64_t now = 5'000'000;

  auto a = Admit(q, *Request("r"), now, "m");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->level, 2u);
  EXPECT_EQ(a->deadline_ns, now + 1'000'000);
  a = Admit(q, *Request("r", {{"priority", int64_t{1}}}), now, "m");
  EXPECT_EQ(a->level, 1u);
  a = Admit(q, *Request("r", {{"priority", int64_t{0}}}), now, "m");
  EXPECT_EQ(a->level, 2u);  // 0: the default
  // A shorter timeout is honoured; a longer one is not (never lengthens).
  a = Admit(q, *Request("r", {{"timeout", int64_t{200}}}), now, "m");
  EXPECT_EQ(a->deadline_ns, now + 200'000);
  a = Admit(q, *Request("r", {{"timeout", int64_t{5000}}}), now, "m");
  EXPECT_EQ(a->deadline_ns, now + 1'000'000);

  for (auto bad : std::vector<Parameters>{{{"priority", int64_t{4}}},
                                          {{"priority", int64_t{-1}}},
                                          {{"priority", std::string("high")}},
                                          {{"priority", 1.5}},
                                          {{"timeout", int64_t{-5}}},
                                          {{"timeout", int64_t{3'600'000'001}}},
                                          {{"timeout", std::string("soon")}},
                                          {{"timeout", true}}}) {
    auto r = Admit(q, *Request("r", bad), now, "m");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("model 'm'"), std::string::npos) << r.status().message();
  }
  auto r = Admit(q, *Request("r", {{"priority", int64_t{4}}}), now, "m");
  EXPECT_NE(r.status().message().find("1 (highest) to 3"), std::string::npos);
  // An integral double (JSON 2.0) is an integer.
  a = Admit(q, *Request("r", {{"priority", 1.0}}), now, "m");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->level, 1u);
}

TEST(AdmitTest, TimeoutWithoutOverrideIsIgnoredButStillChecked) {
  auto c = ConfigWithLevels(1, 1);
  c.mutable_dynamic_batching()->mutable_default_queue_policy()->set_default_timeout_microseconds(
      1000);
  const QueueConfig q = QueueConfig::FromModelConfig(c);
  auto a = Admit(q, *Request("r", {{"timeout", int64_t{10}}}), 0, "m");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->deadline_ns, 1'000'000);
  EXPECT_FALSE(Admit(q, *Request("r", {{"timeout", int64_t{-1}}}), 0, "m").ok());
  // No timeout at all: no deadline.
  inference::ModelConfig plain;
  a = Admit(QueueConfig::FromModelConfig(plain), *Request("r"), 0, "m");
  EXPECT_EQ(a->deadline_ns, 0);
}

TEST(ModelQueueTest, HigherPriorityFirstThenFirstComeFirstServed) {
  FakeClock clock;
  const QueueConfig q = QueueConfig::FromModelConfig(ConfigWithLevels(3, 2));
  ModelQueue queue(q, "m");
  for (auto [id, prio] : std::vector<std::pair<std::string, int64_t>>{
           {"a2", 2}, {"b3", 3}, {"c1", 1}, {"d2", 2}, {"e1", 1}}) {
    auto r = Request(id, {{"priority", prio}});
    auto a = Admit(q, *r, clock.NowNs(), "m");
    ASSERT_TRUE(a.ok());
    auto item = ItemFor(std::move(r), *a, clock.NowNs());
    ASSERT_TRUE(queue.Push(item).ok());
  }
  EXPECT_EQ(queue.size(), 5u);
  std::vector<std::string> order;
  while (!queue.empty()) order.push_back(queue.Pop().request->id);
  EXPECT_EQ(order, (std::vector<std::string>{"c1", "e1", "a2", "d2", "b3"}));
  EXPECT_EQ(queue.Front(), nullptr);
}

TEST(ModelQueueTest, FullLevelRejectsWithoutTakingTheRequest) {
  auto c = ConfigWithLevels(2, 2);
  c.mutable_dynamic_batching()->mutable_default_queue_policy()->set_max_queue_size(2);
  const QueueConfig q = QueueConfig::FromModelConfig(c);
  ModelQueue queue(q, "m");
  for (int i = 0; i < 2; ++i) {
    auto item = ItemFor(Request("ok"), {2, 0}, 0);
    ASSERT_TRUE(queue.Push(item).ok());
  }
  auto item = ItemFor(Request("third"), {2, 0}, 0);
  auto pushed = queue.Push(item);
  ASSERT_FALSE(pushed.ok());
  EXPECT_EQ(pushed.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(pushed.status().message().find("queue full for model 'm' (2 waiting"),
            std::string::npos)
      << pushed.status().message();
  ASSERT_NE(item.request, nullptr);  // still the caller's, to answer
  EXPECT_EQ(item.request->id, "third");
  // Another level has its own room; popping frees a place.
  auto high = ItemFor(Request("high"), {1, 0}, 0);
  EXPECT_TRUE(queue.Push(high).ok());
  queue.Pop();
  queue.Pop();
  EXPECT_TRUE(queue.Push(item).ok());
}

TEST(ModelQueueTest, RejectedTimeoutsExpireAndDelayedOnesGoLast) {
  FakeClock clock;
  auto c = ConfigWithLevels(2, 1);
  inference::ModelQueuePolicy reject;
  reject.set_default_timeout_microseconds(100);
  inference::ModelQueuePolicy delay;
  delay.set_default_timeout_microseconds(50);
  delay.set_timeout_action(inference::ModelQueuePolicy::DELAY);
  (*c.mutable_dynamic_batching()->mutable_priority_queue_policy())[2] = reject;
  (*c.mutable_dynamic_batching()->mutable_priority_queue_policy())[1] = delay;
  const QueueConfig q = QueueConfig::FromModelConfig(c);
  ModelQueue queue(q, "m");
  auto push = [&](std::string id, int64_t prio) {
    auto r = Request(std::move(id), {{"priority", prio}});
    auto a = Admit(q, *r, clock.NowNs(), "m");
    auto item = ItemFor(std::move(r), *a, clock.NowNs());
    return *queue.Push(item);
  };
  push("low-a", 2);
  push("high-a", 1);
  clock.AdvanceUs(30);
  push("low-b", 2);
  push("high-b", 1);
  EXPECT_EQ(queue.NextDeadline(), clock.NowNs() - 30'000 + 50'000);
  EXPECT_TRUE(queue.TakeExpired(clock.NowNs()).empty());

  clock.AdvanceUs(30);  // high-a (50 µs, DELAY) is past its deadline
  EXPECT_TRUE(queue.TakeExpired(clock.NowNs()).empty());
  clock.AdvanceUs(50);  // high-b past (DELAY); low-a (100 µs, REJECT) past
  auto expired = queue.TakeExpired(clock.NowNs());
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].request->id, "low-a");
  EXPECT_EQ(queue.size(), 3u);
  // Delayed high-priority requests now wait behind the low one.
  std::vector<std::string> order;
  while (!queue.empty()) order.push_back(queue.Pop().request->id);
  EXPECT_EQ(order, (std::vector<std::string>{"low-b", "high-a", "high-b"}));
  EXPECT_EQ(queue.NextDeadline(), 0);
}

TEST(ModelQueueTest, CancelFindsItemsAtAnyLevelAndInTheDelayedLane) {
  FakeClock clock;
  auto c = ConfigWithLevels(1000, 500);
  inference::ModelQueuePolicy delay;
  delay.set_default_timeout_microseconds(10);
  delay.set_timeout_action(inference::ModelQueuePolicy::DELAY);
  (*c.mutable_dynamic_batching()->mutable_priority_queue_policy())[7] = delay;
  const QueueConfig q = QueueConfig::FromModelConfig(c);
  ModelQueue queue(q, "m");
  std::vector<uint64_t> tickets;
  for (int64_t prio : {1000, 7, 1, 500}) {
    auto r = Request(std::to_string(prio), {{"priority", prio}});
    auto a = Admit(q, *r, clock.NowNs(), "m");
    auto item = ItemFor(std::move(r), *a, clock.NowNs());
    tickets.push_back(*queue.Push(item));
  }
  clock.AdvanceUs(20);
  EXPECT_TRUE(queue.TakeExpired(clock.NowNs()).empty());  // level 7 moved behind every level
  EXPECT_EQ(queue.InOrder(10).back()->request->id, "7");
  auto delayed = queue.Cancel(tickets[1]);
  ASSERT_TRUE(delayed.has_value());
  EXPECT_EQ(delayed->request->id, "7");
  auto lowest = queue.Cancel(tickets[0]);
  ASSERT_TRUE(lowest.has_value());
  EXPECT_EQ(lowest->request->id, "1000");
  EXPECT_EQ(queue.size(), 2u);
  EXPECT_EQ(queue.Pop().request->id, "1");
  EXPECT_EQ(queue.Pop().request->id, "500");
  EXPECT_TRUE(queue.empty());
}

TEST(ModelQueueTest, CancelAndPopLeaveNoStaleDeadlines) {
  FakeClock clock;
  auto c = ConfigWithLevels(1, 1);
  c.mutable_dynamic_batching()->mutable_default_queue_policy()->set_default_timeout_microseconds(
      10);
  const QueueConfig q = QueueConfig::FromModelConfig(c);
  ModelQueue queue(q, "m");
  auto a = Admit(q, *Request("x"), clock.NowNs(), "m");
  auto i1 = ItemFor(Request("one"), *a, clock.NowNs());
  auto i2 = ItemFor(Request("two"), *a, clock.NowNs());
  auto i3 = ItemFor(Request("three"), *a, clock.NowNs());
  const uint64_t t1 = *queue.Push(i1);
  const uint64_t t2 = *queue.Push(i2);
  *queue.Push(i3);
  auto cancelled = queue.Cancel(t2);
  ASSERT_TRUE(cancelled.has_value());
  EXPECT_EQ(cancelled->request->id, "two");
  EXPECT_FALSE(queue.Cancel(t2).has_value());  // only once
  EXPECT_EQ(queue.Pop().ticket, t1);
  clock.AdvanceUs(20);
  auto expired = queue.TakeExpired(clock.NowNs());
  ASSERT_EQ(expired.size(), 1u);  // only "three" still waited
  EXPECT_EQ(expired[0].request->id, "three");
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.NextDeadline(), 0);
}

}  // namespace
}  // namespace mm
