// The rooms' flag registration functions and the validation beside their
// Options (<room>/<room>_flags.h): parsing, bounds written once, and the
// checks across flags.
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "core/bounds.h"
#include "isolation/isolation_flags.h"
#include "lifecycle/lifecycle_flags.h"
#include "scheduler/execution_slots.h"
#include "scheduler/scheduler_flags.h"

namespace mm {
namespace {

// Parses `args` (without the program name) with `app`.
void Parse(CLI::App& app, std::vector<std::string> args) {
  std::vector<const char*> argv = {"mmserve"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  app.parse(static_cast<int>(argv.size()), argv.data());
}

TEST(BoundsTest, NamesTheFlagAndTheRange) {
  constexpr Bounds<int64_t> kBounds{1, 10};
  EXPECT_TRUE(CheckBounds("--x", int64_t{1}, kBounds).ok());
  EXPECT_TRUE(CheckBounds("--x", int64_t{10}, kBounds).ok());
  const Status s = CheckBounds("--x", int64_t{11}, kBounds);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "--x 11: expected 1 to 10");
}

TEST(TenantWeightTest, ParsesTenantEqualsWeight) {
  auto parsed = ParseTenantWeight("team-a=2.5");
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(parsed->first, "team-a");
  EXPECT_EQ(parsed->second, 2.5);
  // The last '=' splits: a tenant id may hold one.
  parsed = ParseTenantWeight("a=b=3");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->first, "a=b");
  EXPECT_EQ(parsed->second, 3);
}

TEST(TenantWeightTest, RejectsWhatIsNotTenantEqualsWeight) {
  for (const char* bad : {"team-a", "=2", "team-a=", "team-a=two", "team-a=2x", ""}) {
    const auto parsed = ParseTenantWeight(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().message(),
              "--tenant-weight '" + std::string(bad) + "': expected TENANT=WEIGHT, e.g. team-a=2");
  }
}

TEST(TenantWeightTest, AppliesToTheSlotsAndNamesTheFlagForAnUnusableWeight) {
  ExecutionSlots slots({.slots = 1, .with_threads = false});
  EXPECT_TRUE(ApplyTenantWeights({"a=2", "b=0.5"}, slots).ok());
  const Status s = ApplyTenantWeights({"a=0"}, slots);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message().rfind("--tenant-weight: ", 0), 0u) << s.message();
}

TEST(SchedulerFlagsTest, ChecksTheBoundsWrittenBesideTheOptions) {
  CLI::App app;
  SchedulerFlags flags;
  AddSchedulerFlags(app, flags);
  Parse(app, {"--execution-slots", "3", "--tenant-weight", "a=2", "--tenant-weight", "b=1"});
  EXPECT_EQ(flags.slots.slots, 3u);
  EXPECT_EQ(flags.tenant_weights, (std::vector<std::string>{"a=2", "b=1"}));
  CLI::App again;
  SchedulerFlags more;
  AddSchedulerFlags(again, more);
  EXPECT_THROW(Parse(again, {"--execution-slots", std::to_string(kExecutionSlotsBounds.max + 1)}),
               CLI::ValidationError);
}

// --load-on-demand: unset, alone (true), or with a value.
std::optional<bool> LoadOnDemand(std::vector<std::string> args) {
  CLI::App app;
  LifecycleFlags flags;
  AddLifecycleFlags(app, flags);
  args.insert(args.begin(), {"--model-repository", "/tmp"});
  Parse(app, args);
  return flags.load_on_demand;
}

TEST(LifecycleFlagsTest, LoadOnDemandAloneMeansTrue) {
  EXPECT_EQ(LoadOnDemand({}), std::nullopt);
  EXPECT_EQ(LoadOnDemand({"--load-on-demand"}), true);
  EXPECT_EQ(LoadOnDemand({"--load-on-demand", "--model-control-mode", "explicit"}), true);
  EXPECT_EQ(LoadOnDemand({"--model-control-mode", "explicit", "--load-on-demand"}), true);
  EXPECT_EQ(LoadOnDemand({"--load-on-demand", "true"}), true);
  EXPECT_EQ(LoadOnDemand({"--load-on-demand", "false"}), false);
  EXPECT_EQ(LoadOnDemand({"--load-on-demand=false"}), false);
  EXPECT_THROW(LoadOnDemand({"--load-on-demand", "maybe"}), CLI::ConversionError);
}

TEST(LifecycleFlagsTest, OnDemandDefaultsToTrueInExplicitModeOnly) {
  LifecycleFlags flags;
  ModelManager::Options options;
  flags.control_mode = "explicit";
  ASSERT_TRUE(ApplyLifecycleFlags(flags, options).ok());
  EXPECT_TRUE(options.load_on_demand);
  flags.control_mode = "none";
  ASSERT_TRUE(ApplyLifecycleFlags(flags, options).ok());
  EXPECT_FALSE(options.load_on_demand);
}

TEST(LifecycleFlagsTest, DriftMinRowsFollowsASmallWindowUnlessGiven) {
  LifecycleFlags flags;
  flags.drift_window_rows = 100;  // keeps 9 * 10 + 1 rows as it slides
  ModelManager::Options options;
  ASSERT_TRUE(ApplyLifecycleFlags(flags, options).ok());
  EXPECT_EQ(options.drift_options.min_rows, 91u);
  flags.drift_min_rows = 50;
  ASSERT_TRUE(ApplyLifecycleFlags(flags, options).ok());
  EXPECT_EQ(options.drift_options.min_rows, 50u);
  flags.drift_min_rows = 1000;
  const Status s = ApplyLifecycleFlags(flags, options);
  EXPECT_EQ(s.message(),
            "--drift-min-rows 1000 is more than a window of --drift-window-rows 100 keeps as it "
            "slides (91); lower it or widen the window");
  flags = LifecycleFlags();
  ASSERT_TRUE(ApplyLifecycleFlags(flags, options).ok());
  EXPECT_EQ(options.drift_options.min_rows, kDefaultDriftMinRows);
}

TEST(LifecycleFlagsTest, ABadBudgetNamesTheFlag) {
  LifecycleFlags flags;
  flags.memory_budget = "lots";
  ModelManager::Options options;
  const Status s = ApplyLifecycleFlags(flags, options);
  EXPECT_EQ(s.message().rfind("--model-memory-budget: ", 0), 0u) << s.message();
}

TEST(LifecycleFlagsTest, RepositoriesOpenOrNameTheFlag) {
  auto opened = OpenRepositories({"/tmp"});
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  EXPECT_EQ(opened->size(), 1u);
  auto missing = OpenRepositories({"/tmp", "/no/such/folder"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message().rfind("--model-repository: ", 0), 0u)
      << missing.status().message();
  auto scheme = OpenRepositories({"s3://bucket/models"});
  ASSERT_FALSE(scheme.ok());
  EXPECT_NE(scheme.status().message().find("s3://"), std::string::npos);
}

TEST(IsolationFlagsTest, CrossFlagChecksKeepTheFlagsWords) {
  IsolationFlags flags;
  ProcessBackend::Options options = ProcessBackendOptions(flags, 5);
  EXPECT_EQ(options.worker_command, (std::vector<std::string>{"/proc/self/exe", "--worker"}));
  EXPECT_EQ(options.serve_nice, 5);
  EXPECT_TRUE(ValidateProcessBackendOptions(options).ok());
  flags.worker_max_restart_backoff_ms = flags.worker_restart_backoff_ms - 1;
  EXPECT_EQ(ValidateProcessBackendOptions(ProcessBackendOptions(flags, 5)).message(),
            "--worker-max-restart-backoff-ms must be at least --worker-restart-backoff-ms");
  flags = IsolationFlags();
  flags.worker_mailbox_bytes = 100;
  EXPECT_EQ(ValidateProcessBackendOptions(ProcessBackendOptions(flags, 5)).message(),
            "--worker-mailbox-bytes 100: expected 256 to 16777216");
  // ProcessBackend::Create runs the same check.
  EXPECT_EQ(ProcessBackend::Create(ProcessBackendOptions(flags, 5)).status().message(),
            "--worker-mailbox-bytes 100: expected 256 to 16777216");
}

}  // namespace
}  // namespace mm
