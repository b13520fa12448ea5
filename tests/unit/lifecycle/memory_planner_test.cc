// The memory planner without threads or a clock: candidates in, an eviction
// plan or RESOURCE_EXHAUSTED (with today's exact messages) out.
#include "lifecycle/memory_planner.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mm {
namespace {

MemoryCandidate Copy(const std::string& name, uint64_t bytes, int64_t last_used, uint64_t uses = 0,
                     ModelOwner owner = {}) {
  MemoryCandidate c;
  c.model = {name, "/repo"};
  c.version = 1;
  c.bytes = bytes;
  c.owner = std::move(owner);
  c.last_used_ns = last_used;
  c.uses = uses;
  return c;
}

MemoryState State(uint64_t budget, std::vector<MemoryCandidate> loaded,
                  EvictionPolicy policy = EvictionPolicy::kLru) {
  MemoryState s;
  s.budget = budget;
  s.policy = policy;
  for (const auto& c : loaded) s.used += c.bytes;
  s.loaded = std::move(loaded);
  return s;
}

MemoryRequest Load(const std::string& name, uint64_t bytes, ModelOwner owner = {}) {
  return {{name, "/repo"}, "model '" + name + "' version 1", bytes, std::move(owner)};
}

// The names the plan evicts, in order.
std::vector<std::string> Evicted(const MemoryState& state, const StatusOr<EvictionPlan>& plan) {
  std::vector<std::string> out;
  if (!plan.ok()) return {"error: " + plan.status().message()};
  for (const auto& e : plan->evictions) out.push_back(state.loaded[e.candidate].model.name);
  return out;
}

ModelOwner Tenant(const std::string& id, uint64_t max_models = 0, uint64_t memory = 0) {
  return {id, max_models, memory};
}

TEST(MemoryPlannerTest, NoBudgetAndNoQuotaNeedsNoPlan) {
  EXPECT_FALSE(NeedsPlan(0, {}));
  EXPECT_FALSE(NeedsPlan(0, Tenant("a")));
  EXPECT_TRUE(NeedsPlan(1, {}));
  EXPECT_TRUE(NeedsPlan(0, Tenant("a", 1)));
  EXPECT_TRUE(NeedsPlan(0, Tenant("a", 0, 1)));
  EXPECT_FALSE(NeedsPlan(0, {"", 1, 1}));  // nobody's quotas are none
}

TEST(MemoryPlannerTest, ALoadThatFitsEvictsNothing) {
  const auto state = State(1000, {Copy("a", 100, 1), Copy("b", 100, 2)});
  auto plan = PlanEvictions(state, Load("c", 800));
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  EXPECT_TRUE(plan->evictions.empty());
}

TEST(MemoryPlannerTest, LruEvictsLeastRecentlyUsedFirstAndOnlyWhatIsNeeded) {
  const auto state =
      State(1000, {Copy("new", 300, 30), Copy("old", 300, 10), Copy("mid", 300, 20)});
  EXPECT_EQ(Evicted(state, PlanEvictions(state, Load("x", 200))),
            (std::vector<std::string>{"old"}));
  EXPECT_EQ(Evicted(state, PlanEvictions(state, Load("x", 500))),
            (std::vector<std::string>{"old", "mid"}));
  auto plan = PlanEvictions(state, Load("x", 200));
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->evictions[0].reason, "evicted to fit the memory budget (least recently used)");
}

TEST(MemoryPlannerTest, LfuEvictsFewestUsesPerByteFirstTiesByRecency) {
  // popular: 10 uses / 100 B; big: 10 uses / 1000 B (fewer per byte); cold_*: 0 uses.
  auto state = State(2000,
                     {Copy("popular", 100, 1, 10), Copy("big", 1000, 2, 10),
                      Copy("cold_new", 100, 9, 0), Copy("cold_old", 100, 3, 0)},
                     EvictionPolicy::kLfu);
  EXPECT_EQ(Evicted(state, PlanEvictions(state, Load("x", 1000))),
            (std::vector<std::string>{"cold_old", "cold_new", "big"}));
  auto plan = PlanEvictions(state, Load("x", 800));
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->evictions[0].reason, "evicted to fit the memory budget (least used per byte)");
  // The same copies under LRU: least recently used first, uses ignored.
  state.policy = EvictionPolicy::kLru;
  EXPECT_EQ(Evicted(state, PlanEvictions(state, Load("x", 1000))),
            (std::vector<std::string>{"popular", "big"}));
}

TEST(MemoryPlannerTest, PinnedBusyAndTheLoadingModelAreNeverChosen) {
  auto pinned = Copy("pinned", 400, 1);
  pinned.pinned = true;
  auto busy = Copy("busy", 300, 2);
  busy.busy = true;
  auto self = Copy("self", 200, 3);  // an older version of the model loading
  const auto state = State(1000, {pinned, busy, self, Copy("idle", 100, 4)});
  auto plan = PlanEvictions(state, Load("self", 100));
  EXPECT_EQ(Evicted(state, plan), (std::vector<std::string>{"idle"}));
  // Needing more than the idle copy frees: refused, naming where the budget went.
  plan = PlanEvictions(state, Load("self", 300));
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(plan.status().message(),
            "cannot load model 'self' version 1: it needs 300 B but the memory budget of "
            "1000 B has 0 B free: 400 B pinned, 500 B in use by requests or loading, and no "
            "idle model left to evict");
}

TEST(MemoryPlannerTest, ALoadBiggerThanTheBudgetIsRefusedWithTheExactMessage) {
  auto pinned = Copy("p", 3'000'000, 1);
  pinned.pinned = true;
  const auto state = State(3'000'000, {pinned});
  auto plan = PlanEvictions(state, Load("huge", 10'000'000));
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(plan.status().message(),
            "cannot load model 'huge' version 1: it needs 9.54 MiB but the memory budget of "
            "2.86 MiB has 0 B free: 2.86 MiB pinned, 0 B in use by requests or loading, and no "
            "idle model left to evict");
}

TEST(MemoryPlannerTest, ReservationsCountAsUsedAndFreeIsWhatIsLeft) {
  auto state = State(1000, {});
  state.used = 600;  // loads under way and draining copies
  auto plan = PlanEvictions(state, Load("x", 500));
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("has 400 B free"), std::string::npos)
      << plan.status().message();
  EXPECT_TRUE(PlanEvictions(state, Load("x", 400)).ok());
}

TEST(MemoryPlannerTest, NothingIsPlannedUnlessTheWholeLoadFits) {
  auto busy = Copy("busy", 500, 1);
  busy.busy = true;
  const auto state = State(1000, {Copy("idle", 400, 2), busy});
  auto plan = PlanEvictions(state, Load("x", 600));  // idle's 400 + 100 free is not enough
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), StatusCode::kResourceExhausted);
}

TEST(MemoryPlannerTest, AnotherTenantsMemoryShareIsNeverEvicted) {
  const auto a = Tenant("a"), b = Tenant("b", 0, 500);
  const auto state = State(1000, {Copy("b1", 400, 1, 0, b), Copy("a1", 300, 2, 0, a)});
  // a's load takes from its own model, never b's share, though b1 is older.
  EXPECT_EQ(Evicted(state, PlanEvictions(state, Load("a2", 500, a))),
            (std::vector<std::string>{"a1"}));
  // More than a's own can free: refused, naming the shielded bytes.
  auto plan = PlanEvictions(state, Load("a2", 700, a));
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().message(),
            "cannot load model 'a2' version 1: it needs 700 B but the memory budget of 1000 B "
            "has 300 B free: 0 B pinned, 0 B in use by requests or loading, 400 B idle in other "
            "tenants' memory shares, and no idle model left to evict");
  // Nobody's load cannot take a share either.
  EXPECT_EQ(Evicted(state, PlanEvictions(state, Load("n", 600))), (std::vector<std::string>{"a1"}));
}

TEST(MemoryPlannerTest, WithoutAShareATenantTakesFromItsOwnFirstThenFromOthersWithoutOne) {
  const auto a = Tenant("a"), c = Tenant("c");
  // c1 is the least recently used, but a's own a1 goes first.
  const auto state = State(1000, {Copy("c1", 300, 1, 0, c), Copy("a1", 300, 5, 0, a)});
  EXPECT_EQ(Evicted(state, PlanEvictions(state, Load("a2", 600, a))),
            (std::vector<std::string>{"a1"}));
  // (A plan lists its evictions in policy order, whichever step chose them.)
  EXPECT_EQ(Evicted(state, PlanEvictions(state, Load("a2", 800, a))),
            (std::vector<std::string>{"c1", "a1"}));
}

TEST(MemoryPlannerTest, WithAShareATenantTakesFromThoseWithoutOneBeforeItsOwn) {
  const auto b = Tenant("b", 0, 2000), c = Tenant("c");
  // b1 (b's own) is the least recently used, but c1 goes first.
  const auto state = State(1000, {Copy("b1", 300, 1, 0, b), Copy("c1", 300, 5, 0, c)});
  EXPECT_EQ(Evicted(state, PlanEvictions(state, Load("b2", 600, b))),
            (std::vector<std::string>{"c1"}));
  EXPECT_EQ(Evicted(state, PlanEvictions(state, Load("b2", 800, b))),
            (std::vector<std::string>{"b1", "c1"}));
}

TEST(MemoryPlannerTest, MaxLoadedModelsEvictsTheTenantsOwnIdleModels) {
  const auto a = Tenant("a", 2), c = Tenant("c");
  // No budget: only the quota plans. c's models do not count for a.
  auto state = State(
      0, {Copy("a_old", 100, 1, 0, a), Copy("c1", 100, 0, 0, c), Copy("a_new", 100, 9, 0, a)});
  auto plan = PlanEvictions(state, Load("a3", 100, a));
  EXPECT_EQ(Evicted(state, plan), (std::vector<std::string>{"a_old"}));
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->evictions[0].reason,
            "evicted to fit the quota max_loaded_models (2) of tenant 'a'");
  // Another version of a model already loaded is not one more model.
  EXPECT_TRUE(PlanEvictions(state, Load("a_new", 100, a))->evictions.empty());
  // A load under way counts as a model.
  state.reservations.push_back({"a", {"a_loading", "/repo"}, 50});
  EXPECT_EQ(Evicted(state, PlanEvictions(state, Load("a3", 100, a))),
            (std::vector<std::string>{"a_old", "a_new"}));
}

TEST(MemoryPlannerTest, MaxLoadedModelsWithNothingIdleIsRefused) {
  const auto a = Tenant("a", 1);
  auto busy = Copy("a1", 100, 1, 0, a);
  busy.busy = true;
  const auto state = State(0, {busy});
  auto plan = PlanEvictions(state, Load("a2", 100, a));
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(plan.status().message(),
            "cannot load model 'a2' version 1: tenant 'a' has 1 models loaded or loading, its "
            "quota max_loaded_models is 1, and none of them is idle to evict");
}

TEST(MemoryPlannerTest, MemoryShareQuotaEvictsOwnModelsOrSaysWhatIsLeft) {
  const auto b = Tenant("b", 0, 1500);
  auto pinned = Copy("b_pinned", 600, 1, 0, b);
  pinned.pinned = true;
  auto state = State(0, {pinned, Copy("b_idle", 500, 2, 0, b), Copy("other", 5000, 0)});
  auto plan = PlanEvictions(state, Load("b2", 800, b));
  EXPECT_EQ(Evicted(state, plan), (std::vector<std::string>{"b_idle"}));
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->evictions[0].reason,
            "evicted to fit the quota memory_bytes (1.46 KiB) of tenant 'b'");
  plan = PlanEvictions(state, Load("b2", 1000, b));
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().message(),
            "cannot load model 'b2' version 1: it needs 1000 B; tenant 'b' holds 1.07 KiB of its "
            "quota memory_bytes (1.46 KiB), and evicting its idle models would leave 900 B");
  // Its reservations count against the share.
  state.reservations.push_back({"b", {"b_loading", "/repo"}, 400});
  EXPECT_FALSE(PlanEvictions(state, Load("b2", 800, b)).ok());
}

TEST(MemoryPlannerTest, QuotaEvictionsCountTowardsTheBudget) {
  const auto a = Tenant("a", 1);
  const auto state = State(1000, {Copy("a1", 600, 1, 0, a), Copy("n", 300, 2)});
  // The quota evicts a1, which also makes room under the budget: n stays.
  EXPECT_EQ(Evicted(state, PlanEvictions(state, Load("a2", 500, a))),
            (std::vector<std::string>{"a1"}));
}

TEST(MemoryPlannerTest, EqualInputsGiveEqualPlans) {
  const auto state = State(500,
                           {Copy("a", 100, 1), Copy("b", 100, 1), Copy("c", 100, 1),
                            Copy("d", 100, 1), Copy("e", 100, 1)},
                           EvictionPolicy::kLfu);
  const auto first = Evicted(state, PlanEvictions(state, Load("x", 300)));
  EXPECT_EQ(first.size(), 3u);
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(Evicted(state, PlanEvictions(state, Load("x", 300))), first);
}

// The names in EvictionOrder's order.
std::vector<std::string> Order(const MemoryState& state) {
  std::vector<std::string> out;
  for (size_t i : EvictionOrder(state)) out.push_back(state.loaded[i].model.name);
  return out;
}

TEST(MemoryPlannerTest, EvictionOrderListsIdleCopiesInPolicyOrder) {
  MemoryState lru = State(0, {Copy("new", 10, 30), Copy("old", 10, 10), Copy("mid", 10, 20)});
  EXPECT_EQ(Order(lru), (std::vector<std::string>{"old", "mid", "new"}));
  // LFU: fewest uses per byte first (a 100-byte model with 10 uses before a
  // 10-byte one with 5), ties by recency.
  MemoryState lfu = State(0,
                          {Copy("dense", 10, 10, 5), Copy("big", 100, 20, 10),
                           Copy("tie-new", 50, 40, 0), Copy("tie-old", 50, 30, 0)},
                          EvictionPolicy::kLfu);
  EXPECT_EQ(Order(lfu), (std::vector<std::string>{"tie-old", "tie-new", "big", "dense"}));
}

TEST(MemoryPlannerTest, EvictionOrderLeavesOutWhatTheBudgetNeverTakes) {
  MemoryCandidate pinned = Copy("pinned", 10, 1);
  pinned.pinned = true;
  MemoryCandidate busy = Copy("busy", 10, 2);
  busy.busy = true;
  MemoryState state = State(100, {pinned, busy, Copy("shared-share", 10, 3, 0, Tenant("a", 0, 50)),
                                  Copy("tenant", 10, 4, 0, Tenant("b")), Copy("nobody", 10, 5)});
  // Nobody's copies first (a load of nobody's takes its own kind first),
  // then those of tenants without a memory share; pinned, busy and shared
  // copies never.
  EXPECT_EQ(Order(state), (std::vector<std::string>{"nobody", "tenant"}));
  // It is what a plan for a load of nobody's takes first: the first copy
  // when one is enough, though the tenant's is older.
  state.used = 100;
  EXPECT_EQ(Evicted(state, PlanEvictions(state, Load("x", 10))),
            (std::vector<std::string>{"nobody"}));
}

}  // namespace
}  // namespace mm
