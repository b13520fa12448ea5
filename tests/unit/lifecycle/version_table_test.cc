// The version table's state machine and its READY snapshot, without loads.
#include "lifecycle/version_table.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

namespace mm {
namespace {

using S = ModelState;

TEST(VersionTableTest, TheWrittenDownTransitionsAreTheLegalOnes) {
  const S all[] = {S::kUnavailable, S::kLoading, S::kReady, S::kUnloading};
  const std::set<std::pair<S, S>> legal = {
      {S::kUnavailable, S::kLoading},     {S::kLoading, S::kReady},
      {S::kLoading, S::kUnavailable},     {S::kReady, S::kReady},
      {S::kReady, S::kUnloading},         {S::kUnloading, S::kUnavailable},
      {S::kReady, S::kUnavailable},       {S::kUnavailable, S::kReady},
      {S::kUnavailable, S::kUnloading},   {S::kUnloading, S::kLoading},
      {S::kUnavailable, S::kUnavailable},
  };
  for (S from : all) {
    for (S to : all) {
      EXPECT_EQ(IsLegalTransition(from, to), legal.count({from, to}) == 1)
          << ModelStateName(from) << " -> " << ModelStateName(to);
    }
  }
}

TEST(VersionTableTest, MoveToRefusesIllegalTransitionsAndTheWrongCopyHeld) {
  VersionSlot slot;
  EXPECT_EQ(slot.state(), S::kUnavailable);
  EXPECT_FALSE(slot.MoveTo(S::kReady, "m"));  // READY needs a copy
  EXPECT_FALSE(slot.MoveTo(S::kUnloading, "m"));
  EXPECT_EQ(slot.state(), S::kUnavailable);
  EXPECT_TRUE(slot.MoveTo(S::kLoading, "m"));
  EXPECT_FALSE(slot.MoveTo(S::kLoading, "m"));
  EXPECT_FALSE(slot.MoveTo(S::kUnloading, "m"));
  slot.servable = std::make_shared<ServableModel>();
  EXPECT_TRUE(slot.MoveTo(S::kReady, "m"));
  EXPECT_FALSE(slot.MoveTo(S::kLoading, "m"));  // a READY copy is reloaded beside, not over
  EXPECT_TRUE(slot.MoveTo(S::kReady, "m"));     // swap
  EXPECT_TRUE(slot.MoveTo(S::kUnloading, "m"));
  EXPECT_FALSE(slot.MoveTo(S::kReady, "m"));
  EXPECT_FALSE(slot.MoveTo(S::kLoading, "m"));  // the draining copy is still in the slot
  slot.servable.reset();
  EXPECT_TRUE(slot.MoveTo(S::kLoading, "m"));  // a load while the old copy drains
  EXPECT_EQ(slot.state(), S::kLoading);
}

TEST(VersionTableTest, GetReadsWhatPublishPutInTheSnapshot) {
  VersionTable table;
  const ModelKey a{"m", "/a"}, b{"m", "/b"};
  const std::string key_a = "/a", key_b = "/b";
  auto copy = std::make_shared<ServableModel>();
  copy->name = "m";
  copy->version = 3;
  {
    MutexLock lock(table.mu());
    table.Entry(a, "not loaded");
    VersionSlot& slot = table.Entry(a).versions[3];
    slot.MoveTo(S::kLoading, "m");
  }
  EXPECT_EQ(table.Get(NameScope::All(), "m", "", false).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(table.Get(NameScope::All(), "m", "3", false).status().message(),
            "model 'm' version 3 is LOADING");
  EXPECT_EQ(table.Get(NameScope::All(), "zz", "", false).status().code(), StatusCode::kNotFound);
  {
    MutexLock lock(table.mu());
    VersionSlot& slot = table.Entry(a).versions[3];
    slot.servable = copy;
    slot.MoveTo(S::kReady, "m");
    // Not visible before Publish.
  }
  EXPECT_FALSE(table.Get(NameScope::All(), "m", "", false).ok());
  {
    MutexLock lock(table.mu());
    table.Publish();
  }
  auto got = table.Get(NameScope::All(), "m", "", /*count_use=*/true);
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(got->get(), copy.get());
  EXPECT_EQ(copy->uses.load(), 1u);
  EXPECT_TRUE(table.Get(NameScope::All(), "m", "3", false).ok());
  EXPECT_EQ(table.Get(NameScope::All(), "m", "4", false).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(copy->uses.load(), 1u);

  // A second repository's m: ambiguous in a scope holding both, apart in each.
  auto other = std::make_shared<ServableModel>();
  {
    MutexLock lock(table.mu());
    VersionSlot& slot = table.Entry(b).versions[1];
    slot.servable = other;
    slot.MoveTo(S::kReady, "m");
    table.Publish();
  }
  EXPECT_EQ(table.Get(NameScope::All(), "m", "", false).status().code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(table.Get(NameScope::One(key_a), "m", "", false)->get(), copy.get());
  EXPECT_EQ(table.Get(NameScope::One(key_b), "m", "", false)->get(), other.get());
  EXPECT_EQ(table.Ready().size(), 2u);
}

TEST(VersionTableTest, PublishOfOneNameChangesOnlyThatName) {
  VersionTable table;
  std::vector<std::shared_ptr<ServableModel>> copies;
  {
    MutexLock lock(table.mu());
    for (int i = 0; i < 3000; ++i) {  // several models in every shard
      const ModelKey key{"m" + std::to_string(i), "/r"};
      VersionSlot& slot = table.Entry(key).versions[1];
      copies.push_back(std::make_shared<ServableModel>());
      slot.servable = copies.back();
      slot.MoveTo(S::kReady, key.name);
    }
    table.Publish();
  }
  EXPECT_EQ(table.Ready().size(), 3000u);
  auto replacement = std::make_shared<ServableModel>();
  {
    MutexLock lock(table.mu());
    // m7's copy replaced, m8's unloaded: published one name at a time.
    table.Entry({"m7", "/r"}).versions[1].servable = replacement;
    VersionSlot& m8 = table.Entry({"m8", "/r"}).versions[1];
    m8.MoveTo(S::kUnloading, "m8");
    m8.servable.reset();
    m8.MoveTo(S::kUnavailable, "m8");
    table.Publish("m7");
    // m9 changes too, but is not republished: the snapshot keeps its old copy.
    table.Entry({"m9", "/r"}).versions[1].servable = replacement;
  }
  EXPECT_EQ(table.Get(NameScope::All(), "m7", "", false)->get(), replacement.get());
  EXPECT_EQ(table.Get(NameScope::All(), "m8", "", false)->get(), copies[8].get());
  EXPECT_EQ(table.Get(NameScope::All(), "m9", "", false)->get(), copies[9].get());
  {
    MutexLock lock(table.mu());
    table.Publish("m8");
    table.Publish("m9");
    // A name the table does not hold: nothing to publish, nothing breaks.
    table.Publish("absent");
  }
  EXPECT_EQ(table.Get(NameScope::All(), "m8", "", false).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(table.Get(NameScope::All(), "m9", "", false)->get(), replacement.get());
  for (int i = 10; i < 3000; i += 97) {
    EXPECT_EQ(table.Get(NameScope::All(), "m" + std::to_string(i), "", false)->get(),
              copies[i].get());
  }
  EXPECT_EQ(table.Ready().size(), 2999u);
  // A model forgotten leaves the snapshot with it.
  {
    MutexLock lock(table.mu());
    auto it = table.models().find(ModelKey{"m8", "/r"});
    it->second.on_disk = false;
    table.MaybeForget(it);
  }
  EXPECT_EQ(table.Get(NameScope::All(), "m8", "", false).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace mm
