// libFuzzer target for a load's config override as a user tenant sends it
// (issue 17): arbitrary bytes as the JSON "config" parameter go through what
// InferenceService::LoadModel and ModelManager::Load do before anything is
// loaded: the admin-only check (AdminOnlyFieldsIn; a user tenant setting any
// is refused), then ParseConfigOverride (parse, ValidateModelConfig, the
// server's caps). Beyond "no crash, leak or UB": every refusal is
// INVALID_ARGUMENT (or PERMISSION_DENIED for admin-only fields) with a
// message, and a config that passes builds the structures a load sizes from
// it (queue, batcher, statistics) without allocating absurdly: run with
// -rss_limit_mb=4096. A sequence model's config goes through the sequence
// batcher's checks, and an ensemble's steps are planned (PlanEnsemble)
// against composing models that are the config itself under the steps'
// names: refusals are INVALID_ARGUMENT with a message, and a plan's indices
// stay within its tensors and steps.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "backends/ensemble/ensemble_plan.h"
#include "observability/model_stats.h"
#include "repository/model_config.h"
#include "scheduler/model_queue.h"
#include "scheduler/model_scheduler.h"
#include "scheduler/sequence_batcher.h"

namespace {

void Check(bool cond, const char* what) {
  if (!cond) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 256 << 10) return 0;  // overrides past 4 MiB are refused unread; keep runs fast
  const std::string_view json(reinterpret_cast<const char*>(data), size);

  // InferenceService::LoadModel, for a user tenant.
  auto admin_only = mm::AdminOnlyFieldsIn(json, "m");
  if (!admin_only.ok()) {
    Check(admin_only.status().code() == mm::StatusCode::kInvalidArgument,
          "a bad override is INVALID_ARGUMENT");
    Check(!admin_only.status().message().empty(), "refusals have messages");
    return 0;
  }
  if (!admin_only->empty()) {
    for (const auto& field : *admin_only) {
      Check(field.rfind("mmserve", 0) == 0, "only the mmserve block is admin-only");
    }
    return 0;  // refused: PERMISSION_DENIED naming these
  }

  // ModelManager::Load, with the server's default caps.
  const mm::ServerLimits limits;
  auto config = mm::ParseConfigOverride(json, "m", limits);
  if (!config.ok()) {
    Check(config.status().code() == mm::StatusCode::kInvalidArgument,
          "a refused override is INVALID_ARGUMENT");
    Check(!config.status().message().empty(), "refusals have messages");
    return 0;
  }
  Check(!config->has_mmserve(), "a user tenant's accepted override sets no mmserve block");
  Check(config->name() == "m", "the override is named after its model");
  Check(mm::ValidateModelConfig(*config).ok(), "what passes is valid");
  Check(mm::CheckServerLimits(*config, limits).ok(), "what passes is within the caps");
  Check(mm::InstanceCount(*config) <= limits.max_instances_per_model, "instances are capped");

  // What a load sizes from the config.
  const auto queue_config = mm::QueueConfig::FromModelConfig(*config);
  Check(queue_config.levels >= 1 && queue_config.levels <= mm::ConfigBounds::kMaxPriorityLevels,
        "priority levels are bounded");
  Check(queue_config.default_level >= 1 && queue_config.default_level <= queue_config.levels,
        "the default level is a level");
  mm::ModelQueue queue(queue_config, "m");
  for (int64_t priority : {int64_t{0}, int64_t{1}, static_cast<int64_t>(queue_config.levels)}) {
    mm::InferRequest request;
    request.parameters.emplace("priority", priority);
    auto admission = mm::Admit(queue_config, request, 0, "m");
    Check(admission.ok(), "a priority within the levels is admitted");
    mm::ModelQueue::Item item;
    item.request = std::make_unique<mm::InferRequest>();
    item.level = admission->level;
    item.deadline_ns = admission->deadline_ns;
    (void)queue.Push(item);
  }
  mm::InferRequest beyond;
  beyond.parameters.emplace("priority", static_cast<int64_t>(queue_config.levels) + 1);
  auto refused = mm::Admit(queue_config, beyond, 0, "m");
  Check(!refused.ok() && refused.status().code() == mm::StatusCode::kInvalidArgument,
        "a priority past the levels is INVALID_ARGUMENT");
  while (!queue.empty()) queue.Pop();

  const auto batching = mm::BatchingConfig::FromModelConfig(*config);
  Check(batching.preferred.size() <= mm::ConfigBounds::kMaxPreferredBatchSizes,
        "preferred batch sizes are bounded");
  mm::ModelStats stats("m", 1, "t", config->max_batch_size());
  stats.ExecutionFinished(config->max_batch_size(), 1, 1, 1);
  Check(stats.Read().batches.size() == 1, "one execution, one batch size");

  if (config->has_sequence_batching()) {
    auto sequence = mm::SequenceConfig::FromModelConfig(*config);
    if (!sequence.ok()) {
      Check(sequence.status().code() == mm::StatusCode::kInvalidArgument,
            "a refused sequence config is INVALID_ARGUMENT");
      Check(!sequence.status().message().empty(), "refusals have messages");
    } else {
      size_t state_bytes = 0;
      for (const auto& state : sequence->states) state_bytes += state.bytes;
      Check(state_bytes <= mm::SequenceConfig::kMaxSequenceStateBytes, "a sequence's state");
      Check(sequence->max_sequences >= 1 &&
                sequence->max_sequences * state_bytes <= mm::SequenceConfig::kMaxStateBytes,
            "the state of every sequence is bounded");
      for (const auto& control : sequence->controls) {
        Check(control.true_value.size() == control.false_value.size(),
              "a control's values have one size");
      }
    }
  }
  if (config->has_ensemble_scheduling()) {
    std::vector<mm::ComposingModel> models;
    for (const auto& step : config->ensemble_scheduling().step()) {
      mm::ComposingModel m{step.model_name(), step.model_version(), *config};
      m.config.set_name(step.model_name());
      models.push_back(std::move(m));
    }
    auto plan = mm::PlanEnsemble(*config, models);
    if (!plan.ok()) {
      Check(plan.status().code() == mm::StatusCode::kInvalidArgument,
            "a refused ensemble is INVALID_ARGUMENT");
      Check(!plan.status().message().empty(), "refusals have messages");
    } else {
      const int tensors = static_cast<int>(plan->tensors.size());
      Check(plan->consumers.size() == plan->tensors.size(), "consumers per tensor");
      for (const auto& step : plan->steps) {
        Check(step.waits_for >= 0 && step.waits_for <= static_cast<int>(step.inputs.size()),
              "a step waits for at most its inputs");
        for (const auto& b : step.inputs) Check(b.tensor >= 0 && b.tensor < tensors, "inputs");
        for (const auto& b : step.outputs) Check(b.tensor >= 0 && b.tensor < tensors, "outputs");
      }
      for (const auto& consumers : plan->consumers) {
        for (int s : consumers) {
          Check(s >= 0 && s < static_cast<int>(plan->steps.size()), "consumers are steps");
        }
      }
    }
  }
  return 0;
}
