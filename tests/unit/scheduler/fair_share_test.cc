#include "scheduler/fair_share.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace mm {
namespace {

// A simulated slot pool with no threads and no clock: each step asks for the
// next flow and charges it at once, as a dispatcher does when it starts a batch.
struct Tally {
  std::map<FlowId, int64_t> picks;
  std::map<FlowId, double> cost;
  std::vector<FlowId> order;
  int64_t total = 0;
  double total_cost = 0;

  double PickShare(FlowId f) const {
    auto it = picks.find(f);
    return it == picks.end() ? 0.0 : static_cast<double>(it->second) / total;
  }
  double CostShare(FlowId f) const {
    auto it = cost.find(f);
    return it == cost.end() ? 0.0 : it->second / total_cost;
  }
};

using CostFn = std::function<double(FlowId)>;
double UnitCost(FlowId) { return 1.0; }

Tally Drive(FairShare& fs, int64_t steps, const CostFn& cost = UnitCost) {
  Tally tally;
  for (int64_t i = 0; i < steps; ++i) {
    std::optional<FlowId> f = fs.Next();
    if (!f) {
      ADD_FAILURE() << "nothing backlogged at step " << i;
      break;
    }
    double c = cost(*f);
    Status s = fs.Charge(*f, c);
    if (!s.ok()) {
      ADD_FAILURE() << s.ToString();
      break;
    }
    ++tally.picks[*f];
    tally.cost[*f] += c;
    tally.order.push_back(*f);
    ++tally.total;
    tally.total_cost += c;
  }
  return tally;
}

FlowId Add(FairShare& fs, std::string_view tenant, std::string_view model, double weight = 1.0) {
  StatusOr<FlowId> f = fs.AddFlow(tenant, model, weight);
  EXPECT_TRUE(f.ok()) << f.status().ToString();
  return *f;
}

FlowId AddReady(FairShare& fs, std::string_view tenant, std::string_view model,
                double weight = 1.0) {
  FlowId f = Add(fs, tenant, model, weight);
  Status s = fs.MarkReady(f);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return f;
}

// |actual - expected| within 10% of expected.
void ExpectShare(double actual, double expected) { EXPECT_NEAR(actual, expected, 0.1 * expected); }

// The most picks of other flows before `f`'s first pick or between two of its
// picks; the whole run when it never comes.
int64_t LongestWait(const Tally& tally, FlowId f) {
  int64_t longest = 0, run = 0;
  for (FlowId g : tally.order) {
    if (g == f) {
      longest = std::max(longest, run);
      run = 0;
    } else {
      ++run;
    }
  }
  return std::max(longest, run);
}

// Invariant 3 of fair_share.h: while B waits for its next pick, a flooded peer
// J of the same level gets at most floor(d_B / d_J) + 1 picks, d being cost
// over weight; +1 more for rounding.
int64_t LevelBound(double d_b, const std::vector<double>& d_others) {
  int64_t k = 0;
  for (double d : d_others) k += static_cast<int64_t>(std::floor(d_b / d)) + 2;
  return k;
}

TEST(FairShareTest, NothingBackloggedGivesNothing) {
  FairShare fs;
  EXPECT_FALSE(fs.Next().has_value());
  FlowId a = Add(fs, "t", "a");
  EXPECT_FALSE(fs.Next().has_value());
  ASSERT_TRUE(fs.MarkReady(a).ok());
  ASSERT_TRUE(fs.MarkReady(a).ok());  // idempotent
  EXPECT_EQ(fs.backlogged_count(), 1u);
  EXPECT_EQ(fs.Next(), a);
  EXPECT_EQ(fs.Next(), a);  // Next changes nothing
  ASSERT_TRUE(fs.MarkIdle(a).ok());
  ASSERT_TRUE(fs.MarkIdle(a).ok());
  EXPECT_EQ(fs.backlogged_count(), 0u);
  EXPECT_FALSE(fs.Next().has_value());
}

TEST(FairShareTest, EqualWeightsShareEvenly) {
  FairShare fs;
  FlowId a = AddReady(fs, "t", "a");
  FlowId b = AddReady(fs, "t", "b");
  Tally t = Drive(fs, 10000);
  ExpectShare(t.PickShare(a), 0.5);
  ExpectShare(t.PickShare(b), 0.5);
}

TEST(FairShareTest, ModelWeightsThreeToOneShare75To25) {
  FairShare fs;
  FlowId a = AddReady(fs, "t", "a", 3);
  FlowId b = AddReady(fs, "t", "b", 1);
  Tally t = Drive(fs, 10000);
  ExpectShare(t.PickShare(a), 0.75);
  ExpectShare(t.PickShare(b), 0.25);
}

TEST(FairShareTest, TenantWeightsThreeToOneShare75To25) {
  FairShare fs;
  ASSERT_TRUE(fs.SetTenantWeight("x", 3).ok());
  FlowId a = AddReady(fs, "x", "m");
  FlowId b = AddReady(fs, "y", "m");  // y: weight 1 by default
  Tally t = Drive(fs, 10000);
  ExpectShare(t.PickShare(a), 0.75);
  ExpectShare(t.PickShare(b), 0.25);
}

TEST(FairShareTest, UnequalCostsGiveEqualCostShares) {
  FairShare fs;
  FlowId a = AddReady(fs, "t", "a");
  FlowId b = AddReady(fs, "t", "b");
  Tally t = Drive(fs, 11000, [&](FlowId f) { return f == a ? 10.0 : 1.0; });
  ExpectShare(t.CostShare(a), 0.5);
  ExpectShare(t.CostShare(b), 0.5);
  ExpectShare(t.PickShare(a), 1.0 / 11);  // so A runs a tenth as often
}

TEST(FairShareTest, TenantsShareFirstThenModels) {
  FairShare fs;
  FlowId x1 = AddReady(fs, "x", "m1");
  FlowId x2 = AddReady(fs, "x", "m2");
  FlowId x3 = AddReady(fs, "x", "m3");
  FlowId y = AddReady(fs, "y", "m1");
  Tally t = Drive(fs, 12000);
  ExpectShare(t.PickShare(x1) + t.PickShare(x2) + t.PickShare(x3), 0.5);
  ExpectShare(t.PickShare(y), 0.5);
  for (FlowId f : {x1, x2, x3}) ExpectShare(t.PickShare(f), 1.0 / 6);
}

TEST(FairShareTest, WeightChangeAppliesToLaterService) {
  FairShare fs;
  FlowId a = AddReady(fs, "t", "a");
  FlowId b = AddReady(fs, "t", "b");
  Drive(fs, 5000);
  ASSERT_TRUE(fs.SetFlowWeight(a, 3).ok());
  Tally t = Drive(fs, 8000);
  ExpectShare(t.PickShare(a), 0.75);
  ExpectShare(t.PickShare(b), 0.25);
}

// A flow back from a long pause neither bursts (cashing in its idle time) nor
// waits: from its first ready moment it gets exactly its fair share.
TEST(FairShareTest, FlowBackFromLongIdleGetsItsShareNotABurst) {
  FairShare fs;
  FlowId a = AddReady(fs, "t", "a");
  FlowId b = AddReady(fs, "t", "b");
  FlowId c = Add(fs, "t", "c");  // idle all along
  Drive(fs, 10000);
  ASSERT_TRUE(fs.MarkReady(c).ok());
  Tally t = Drive(fs, 3000);
  ExpectShare(t.PickShare(c), 1.0 / 3);
  ExpectShare(t.PickShare(a), 1.0 / 3);
  ExpectShare(t.PickShare(b), 1.0 / 3);
  // No prefix of the window gives C more than a third, plus one for the order.
  int64_t seen = 0, c_picks = 0;
  for (FlowId f : t.order) {
    ++seen;
    if (f == c) ++c_picks;
    ASSERT_LE(c_picks, seen / 3 + 1) << "burst after " << seen << " picks";
  }
  EXPECT_LE(LongestWait(t, c), 3);  // nor is it made to wait
}

TEST(FairShareTest, TenantBackFromLongIdleGetsItsShareNotABurst) {
  FairShare fs;
  FlowId x = AddReady(fs, "x", "m");
  FlowId y = AddReady(fs, "y", "m");
  FlowId z = Add(fs, "z", "m");
  Drive(fs, 10000);
  ASSERT_TRUE(fs.MarkReady(z).ok());
  Tally t = Drive(fs, 3000);
  for (FlowId f : {x, y, z}) ExpectShare(t.PickShare(f), 1.0 / 3);
  int64_t seen = 0, z_picks = 0;
  for (FlowId f : t.order) {
    ++seen;
    if (f == z) ++z_picks;
    ASSERT_LE(z_picks, seen / 3 + 1) << "burst after " << seen << " picks";
  }
}

// Service charged after the flow went idle (its last batch finished after its
// queue drained) still counts when it comes back.
TEST(FairShareTest, ChargeWhileIdleCounts) {
  FairShare fs;
  FlowId a = AddReady(fs, "t", "a");
  FlowId b = AddReady(fs, "t", "b");
  Drive(fs, 100);
  ASSERT_TRUE(fs.MarkIdle(a).ok());
  ASSERT_TRUE(fs.Charge(a, 100).ok());
  ASSERT_TRUE(fs.MarkReady(a).ok());
  Tally t = Drive(fs, 100);
  EXPECT_GE(t.picks[b], 99);

  // At the tenant level too, while a sibling keeps the tenant backlogged.
  FairShare two;
  FlowId x = AddReady(two, "x", "busy");
  FlowId x_idle = Add(two, "x", "idle");
  FlowId y = AddReady(two, "y", "m");
  Drive(two, 100);
  ASSERT_TRUE(two.Charge(x_idle, 100).ok());
  EXPECT_EQ(two.Next(), y);
  Tally t2 = Drive(two, 100);
  EXPECT_GE(t2.picks[y], 99);
  EXPECT_LE(t2.picks[x], 1);
}

// No model with ready work waits forever, even at weight 1 against 1000: it is
// picked again within the bound of fair_share.h invariant 3.
TEST(FairShareTest, LowWeightModelAmongFloodsWaitsBoundedly) {
  FairShare fs;
  FlowId heavy = AddReady(fs, "t", "heavy", 1000);
  FlowId heavy2 = AddReady(fs, "t", "heavy2", 500);
  FlowId light = AddReady(fs, "t", "light", 1);
  Tally t = Drive(fs, 100000, [&](FlowId f) { return f == light ? 2.0 : 1.0; });
  const int64_t k = LevelBound(2.0 / 1, {1.0 / 1000, 1.0 / 500});
  EXPECT_LE(LongestWait(t, light), k);
  EXPECT_LE(LongestWait(t, heavy), LevelBound(1.0 / 1000, {2.0 / 1, 1.0 / 500}));
  EXPECT_LE(LongestWait(t, heavy2), LevelBound(1.0 / 500, {2.0 / 1, 1.0 / 1000}));
  // Its share is its weight's: cost 2 per pick, weight 1 of 1501.
  ExpectShare(t.CostShare(light), 1.0 / 1501);
}

TEST(FairShareTest, LowWeightTenantAmongFloodsWaitsBoundedly) {
  FairShare fs;
  ASSERT_TRUE(fs.SetTenantWeight("big", 1000).ok());
  for (std::string m : {"a", "b", "c"}) AddReady(fs, "big", m);
  FlowId small = AddReady(fs, "small", "m");
  Tally t = Drive(fs, 100000);
  EXPECT_LE(LongestWait(t, small), LevelBound(1.0 / 1, {1.0 / 1000}));
  ExpectShare(t.PickShare(small), 1.0 / 1001);
}

// Both levels adversarial at once: a light model in a light tenant.
TEST(FairShareTest, LowWeightModelInLowWeightTenantWaitsBoundedly) {
  FairShare fs;
  ASSERT_TRUE(fs.SetTenantWeight("big", 100).ok());
  AddReady(fs, "big", "flood");
  AddReady(fs, "small", "heavy", 100);
  FlowId light = AddReady(fs, "small", "light", 1);
  Tally t = Drive(fs, 100000);
  // Within "small": heavy picks while light waits; each "small" pick waits for
  // at most `outer` picks of "big".
  const int64_t inner = LevelBound(1.0 / 1, {1.0 / 100});
  const int64_t outer = LevelBound(1.0 / 1, {1.0 / 100});
  EXPECT_LE(LongestWait(t, light), inner + (inner + 1) * outer);
  EXPECT_GE(t.picks[light], 5);
}

TEST(FairShareTest, RemovalWhileBacklogged) {
  FairShare fs;
  FlowId a = AddReady(fs, "t", "a");
  FlowId b = AddReady(fs, "t", "b");
  FlowId c = AddReady(fs, "u", "c");
  Drive(fs, 3000);
  ASSERT_TRUE(fs.RemoveFlow(b).ok());
  EXPECT_EQ(fs.flow_count(), 2u);
  EXPECT_EQ(fs.backlogged_count(), 2u);
  Tally t = Drive(fs, 3000);
  EXPECT_EQ(t.picks.count(b), 0u);
  ExpectShare(t.PickShare(a), 0.5);
  ExpectShare(t.PickShare(c), 0.5);
  EXPECT_EQ(fs.Charge(b, 1).code(), StatusCode::kNotFound);  // a batch finishing late
  EXPECT_EQ(fs.MarkReady(b).code(), StatusCode::kNotFound);
  EXPECT_EQ(fs.MarkIdle(b).code(), StatusCode::kNotFound);
  EXPECT_EQ(fs.SetFlowWeight(b, 2).code(), StatusCode::kNotFound);
  EXPECT_EQ(fs.RemoveFlow(b).code(), StatusCode::kNotFound);
  // The name is free again, under a new id.
  FlowId b2 = Add(fs, "t", "b");
  EXPECT_NE(b2, b);

  // The last backlogged flow of a tenant takes the tenant out of the running.
  ASSERT_TRUE(fs.RemoveFlow(c).ok());
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(fs.Next(), a);
    ASSERT_TRUE(fs.Charge(a, 1).ok());
  }
  ASSERT_TRUE(fs.RemoveFlow(a).ok());
  EXPECT_FALSE(fs.Next().has_value());
  EXPECT_TRUE(fs.RemoveTenant("u").ok());
  EXPECT_EQ(fs.RemoveTenant("t").code(), StatusCode::kFailedPrecondition);  // still has b2
}

TEST(FairShareTest, RejectsBadWeightsAndCosts) {
  FairShare fs;
  const double kNan = std::numeric_limits<double>::quiet_NaN();
  const double kInf = std::numeric_limits<double>::infinity();
  for (double w : {0.0, -1.0, kNan, kInf}) {
    EXPECT_EQ(fs.AddFlow("t", "m", w).status().code(), StatusCode::kInvalidArgument) << w;
    EXPECT_EQ(fs.SetTenantWeight("t", w).code(), StatusCode::kInvalidArgument) << w;
  }
  EXPECT_EQ(fs.flow_count(), 0u);
  EXPECT_EQ(fs.RemoveTenant("t").code(), StatusCode::kNotFound);  // nothing was created

  FlowId f = Add(fs, "t", "m");
  EXPECT_EQ(fs.AddFlow("t", "m").status().code(), StatusCode::kAlreadyExists);
  EXPECT_TRUE(fs.AddFlow("u", "m").ok());  // another tenant's namespace
  Status bad = fs.SetFlowWeight(f, -2);
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("-2"), std::string::npos) << bad.message();
  for (double c : {0.0, -1.0, kNan, kInf}) {
    EXPECT_EQ(fs.Charge(f, c).code(), StatusCode::kInvalidArgument) << c;
  }
  EXPECT_EQ(fs.SetFlowWeight(FlowId{999}, 1).code(), StatusCode::kNotFound);
  EXPECT_EQ(fs.MarkReady(FlowId{999}).code(), StatusCode::kNotFound);
  EXPECT_EQ(fs.RemoveTenant("t").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(fs.flow_count(), 2u);
}

// Rebasing virtual times changes no decision. Weights are powers of two and
// costs integers, so every virtual time is exact and the runs must match pick
// for pick.
TEST(FairShareTest, RebaseKeepsEveryDecision) {
  auto run = [](double rebase_above) {
    FairShare fs(FairShareOptions{rebase_above});
    EXPECT_TRUE(fs.SetTenantWeight("x", 2).ok());
    std::vector<FlowId> flows;
    for (int i = 0; i < 6; ++i) {
      flows.push_back(AddReady(fs, i < 4 ? "x" : "y", "m" + std::to_string(i), 1 << (i % 3)));
    }
    std::vector<FlowId> order;
    for (int step = 0; step < 20000; ++step) {
      // Flows drop out and come back on a fixed pattern, one long pause included.
      FlowId toggled = flows[step % 6];
      if (step % 7 == 0) EXPECT_TRUE(fs.MarkIdle(toggled).ok());
      if (step % 5 == 0 && (step < 5000 || step > 15000)) EXPECT_TRUE(fs.MarkReady(toggled).ok());
      std::optional<FlowId> f = fs.Next();
      if (!f) continue;
      order.push_back(*f);
      EXPECT_TRUE(fs.Charge(*f, 1 + static_cast<uint64_t>(*f) % 3).ok());
    }
    return order;
  };
  std::vector<FlowId> plain = run(0x1p32);
  std::vector<FlowId> rebased = run(16);
  EXPECT_GT(plain.size(), 10000u);
  EXPECT_EQ(plain, rebased);
}

// Random operations against a model of which flows are backlogged.
TEST(FairShareTest, RandomOperationsKeepTheInvariants) {
  FairShare fs;
  std::mt19937 rng(7);
  std::map<FlowId, bool> model;  // flow -> backlogged
  int next_name = 0;
  for (int step = 0; step < 20000; ++step) {
    int op = std::uniform_int_distribution<int>(0, 9)(rng);
    auto any = [&]() -> std::optional<FlowId> {
      if (model.empty()) return std::nullopt;
      auto it = model.begin();
      std::advance(it, std::uniform_int_distribution<size_t>(0, model.size() - 1)(rng));
      return it->first;
    };
    if (op == 0 || model.size() < 3) {
      std::string tenant = "t" + std::to_string(next_name % 5);
      FlowId f = Add(fs, tenant, "m" + std::to_string(next_name++),
                     std::uniform_int_distribution<int>(1, 100)(rng));
      model[f] = false;
    } else if (op == 1) {
      FlowId f = *any();
      ASSERT_TRUE(fs.RemoveFlow(f).ok());
      model.erase(f);
    } else if (op <= 4) {
      FlowId f = *any();
      ASSERT_TRUE(fs.MarkReady(f).ok());
      model[f] = true;
    } else if (op == 5) {
      FlowId f = *any();
      ASSERT_TRUE(fs.MarkIdle(f).ok());
      model[f] = false;
    } else {
      std::optional<FlowId> f = fs.Next();
      if (f) ASSERT_TRUE(fs.Charge(*f, std::uniform_int_distribution<int>(1, 50)(rng)).ok());
    }
    size_t backlogged = 0;
    for (const auto& [f, b] : model) backlogged += b;
    ASSERT_EQ(fs.backlogged_count(), backlogged);
    ASSERT_EQ(fs.flow_count(), model.size());
    std::optional<FlowId> next = fs.Next();
    ASSERT_EQ(next.has_value(), backlogged > 0);
    if (next) ASSERT_TRUE(model.at(*next));
  }
}

// 2,000 models over 50 tenants: each pick is O(log n) with no allocation (a
// million picks take about 0.2 s in Release); 200,000 here keep the sanitized
// run short.
TEST(FairShareTest, TwoThousandFlowsStayCheapAndFair) {
  constexpr int kFlows = 2000, kTenants = 50;
  FairShare fs;
  std::vector<FlowId> flows;
  for (int i = 0; i < kFlows; ++i) {
    flows.push_back(AddReady(fs, "t" + std::to_string(i % kTenants), "m" + std::to_string(i)));
  }
  const uint64_t first = static_cast<uint64_t>(flows[0]);  // ids are consecutive here
  std::vector<double> tenant_cost(kTenants, 0);
  std::vector<int64_t> picks(kFlows, 0);
  double total = 0;
  for (int i = 0; i < 200000; ++i) {
    FlowId f = *fs.Next();
    const uint64_t index = static_cast<uint64_t>(f) - first;
    const double cost = 1 + index % 7;
    ASSERT_TRUE(fs.Charge(f, cost).ok());
    tenant_cost[index % kTenants] += cost;
    total += cost;
    ++picks[index];
  }
  for (double c : tenant_cost) ExpectShare(c / total, 1.0 / kTenants);
  EXPECT_GT(*std::min_element(picks.begin(), picks.end()), 0);
}

}  // namespace
}  // namespace mm
