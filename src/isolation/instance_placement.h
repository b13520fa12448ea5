// Which instance of a model a worker process runs, by Triton's rules for
// instance groups: a group makes `count` instances (0 means 1), and a KIND_GPU
// group that lists GPUs makes `count` on each of them, in the order listed.
// The server starts one worker per instance (ProcessBackend counts them with
// InstanceCount, repository/model_config.h); the worker loads its one instance
// (WorkerInstanceGroup) and names it as Triton would (`<group name>_<index in the group>`).
//
// A KIND_GPU group that lists no GPU means every visible GPU in Triton; the
// server does not open CUDA to count them, so under process isolation its
// instances all run on GPU 0.
#pragma once

#include <cstdint>
#include <string>

#include "model_config.pb.h"
#include "repository/model_config.h"

namespace mm {

struct WorkerPlacement {
  std::string name;                     // Triton's instance name
  inference::ModelInstanceGroup group;  // one instance: the group's kind, its one GPU
};

// Instance `index` (across the groups, in order) of `config`.
inline WorkerPlacement PlaceWorkerInstance(const inference::ModelConfig& config,
                                           const std::string& model, uint64_t index) {
  uint64_t left = index;
  for (int g = 0; g < config.instance_group_size(); ++g) {
    const auto& group = config.instance_group(g);
    const auto n = static_cast<uint64_t>(GroupInstanceCount(group));
    if (left < n) {
      WorkerPlacement placement;
      placement.name = (group.name().empty() ? model + "_" + std::to_string(g) : group.name()) +
                       "_" + std::to_string(left);
      placement.group.set_name(group.name());
      placement.group.set_kind(group.kind());
      placement.group.set_count(1);
      if (group.kind() == inference::ModelInstanceGroup::KIND_GPU) {
        const uint64_t per_gpu = group.count() <= 0 ? 1 : static_cast<uint64_t>(group.count());
        placement.group.add_gpus(
            group.gpus_size() > 0 ? group.gpus(static_cast<int>(left / per_gpu)) : 0);
      }
      return placement;
    }
    left -= n;
  }
  WorkerPlacement placement;
  placement.name = model + "_0_" + std::to_string(index);
  placement.group.set_count(1);
  return placement;
}

}  // namespace mm
