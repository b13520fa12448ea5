#include "isolation/instance_placement.h"

#include <gtest/gtest.h>

namespace mm {
namespace {

using Group = inference::ModelInstanceGroup;

inference::ModelConfig TwoGroups() {
  inference::ModelConfig config;
  auto* cpu = config.add_instance_group();
  cpu->set_kind(Group::KIND_CPU);
  cpu->set_count(2);
  auto* gpu = config.add_instance_group();
  gpu->set_name("fast");
  gpu->set_kind(Group::KIND_GPU);
  gpu->set_count(2);
  gpu->add_gpus(1);
  gpu->add_gpus(3);
  return config;
}

TEST(InstancePlacementTest, AGpuGroupMakesItsCountOnEachListedGpu) {
  const inference::ModelConfig config = TwoGroups();
  EXPECT_EQ(InstanceCount(config), 2 + 4);
  EXPECT_EQ(InstanceCount(inference::ModelConfig()), 1);
}

TEST(InstancePlacementTest, EachWorkerKeepsItsGroupsKindAndItsOneGpu) {
  const inference::ModelConfig config = TwoGroups();
  WorkerPlacement first = PlaceWorkerInstance(config, "m", 1);
  EXPECT_EQ(first.name, "m_0_1");
  EXPECT_EQ(first.group.kind(), Group::KIND_CPU);
  EXPECT_EQ(first.group.count(), 1);
  EXPECT_EQ(first.group.gpus_size(), 0);
  const int want_gpu[] = {1, 1, 3, 3};
  for (int i = 0; i < 4; ++i) {
    WorkerPlacement p = PlaceWorkerInstance(config, "m", 2 + i);
    EXPECT_EQ(p.name, "fast_" + std::to_string(i));
    EXPECT_EQ(p.group.kind(), Group::KIND_GPU);
    EXPECT_EQ(p.group.count(), 1);
    ASSERT_EQ(p.group.gpus_size(), 1);
    EXPECT_EQ(p.group.gpus(0), want_gpu[i]);
  }
}

TEST(InstancePlacementTest, AGpuGroupListingNoGpuRunsOnGpuZero) {
  inference::ModelConfig config;
  auto* gpu = config.add_instance_group();
  gpu->set_kind(Group::KIND_GPU);
  gpu->set_count(3);
  EXPECT_EQ(InstanceCount(config), 3);
  WorkerPlacement p = PlaceWorkerInstance(config, "m", 2);
  EXPECT_EQ(p.name, "m_0_2");
  ASSERT_EQ(p.group.gpus_size(), 1);
  EXPECT_EQ(p.group.gpus(0), 0);
}

}  // namespace
}  // namespace mm
