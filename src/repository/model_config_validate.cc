// Checking a model configuration (ConfigBounds and the server's
// ServerLimits) and choosing its versions. The door is
// repository/model_config.h.
#include <algorithm>
#include <charconv>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "core/data_type.h"
#include "repository/model_config.h"
#include "repository/model_config_internal.h"

namespace mm {
namespace {

using model_config_internal::Quote;

bool HasControlChar(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

Status ValidateModelName(const std::string& name) {
  if (name.empty()) {
    return InvalidArgument("model name is empty; expected the model's directory name");
  }
  const char* problem = nullptr;
  if (name.find('/') != std::string::npos) {
    problem = "contains '/'";
  } else if (name.find('\\') != std::string::npos) {
    problem = "contains '\\'";
  } else if (name.find("..") != std::string::npos) {
    problem = "contains '..'";
  } else if (HasControlChar(name)) {
    problem = "contains a control character";
  }
  if (problem != nullptr) {
    return InvalidArgument("model name " + Quote(name) + " " + problem +
                           "; expected a single directory name without '/', '\\', '..' or "
                           "control characters");
  }
  return OkStatus();
}

using B = ConfigBounds;

// "what is N; expected at most BOUND": a number over its bound.
Status OverBound(const std::string& what, auto value, auto bound, std::string_view why = {}) {
  return InvalidArgument(what + " is " + std::to_string(value) + "; expected at most " +
                         std::to_string(bound) +
                         (why.empty() ? "" : " (" + std::string(why) + ")"));
}

// Entries of a repeated or map field: at most `bound`.
Status CheckCount(const std::string& what, int size, int bound) {
  if (size <= bound) return OkStatus();
  return InvalidArgument(what + " has " + std::to_string(size) + " entries; expected at most " +
                         std::to_string(bound));
}

Status ValidateRank(int rank, const std::string& what, const char* field) {
  if (rank <= B::kMaxRank) return OkStatus();
  return InvalidArgument(what + " " + field + " has " + std::to_string(rank) +
                         " dims; expected at most " + std::to_string(B::kMaxRank));
}

// Dims of a configured tensor: -1 (variable) or positive, at most kMaxDim.
Status ValidateDims(const google::protobuf::RepeatedField<int64_t>& dims, const std::string& what,
                    const char* field) {
  MM_RETURN_IF_ERROR(ValidateRank(dims.size(), what, field));
  for (int i = 0; i < dims.size(); ++i) {
    if (dims[i] == -1 || (dims[i] > 0 && dims[i] <= B::kMaxDim)) continue;
    return InvalidArgument(
        what + " " + field + "[" + std::to_string(i) + "] is " + std::to_string(dims[i]) +
        "; expected -1 (variable size) or a positive size up to " + std::to_string(B::kMaxDim));
  }
  return OkStatus();
}

Status ValidateDataType(int data_type, const std::string& what) {
  if (data_type != inference::TYPE_INVALID && inference::DataType_IsValid(data_type)) {
    return OkStatus();
  }
  std::string got = inference::DataType_IsValid(data_type) ? inference::DataType_Name(data_type)
                                                           : std::to_string(data_type);
  return InvalidArgument(what + " has data_type " + got +
                         "; expected a valid type such as TYPE_FP32");
}

// Shared checks of ModelInput and ModelOutput.
template <typename Tensor>
Status ValidateTensors(const google::protobuf::RepeatedPtrField<Tensor>& tensors,
                       const char* kind) {
  MM_RETURN_IF_ERROR(CheckCount(kind, tensors.size(), B::kMaxTensors));
  std::set<std::string> seen;
  for (int i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    if (t.name().empty()) {
      return InvalidArgument(std::string(kind) + " #" + std::to_string(i) + " has no name; every " +
                             kind + " needs a non-empty name");
    }
    std::string what = std::string(kind) + " " + Quote(t.name());
    if (HasControlChar(t.name())) {
      return InvalidArgument(what + " has a control character in its name");
    }
    if (!seen.insert(t.name()).second) {
      return InvalidArgument(what + " appears more than once; " + kind + " names must be unique");
    }
    MM_RETURN_IF_ERROR(ValidateDataType(t.data_type(), what));
    MM_RETURN_IF_ERROR(ValidateDims(t.dims(), what, "dims"));
    if (t.has_reshape())
      MM_RETURN_IF_ERROR(ValidateDims(t.reshape().shape(), what, "reshape.shape"));
  }
  return OkStatus();
}

Status ValidateVersionPolicy(const inference::ModelVersionPolicy& policy) {
  if (policy.has_latest() && policy.latest().num_versions() == 0) {
    return InvalidArgument("version_policy.latest.num_versions is 0; expected at least 1");
  }
  if (policy.has_latest() && policy.latest().num_versions() > B::kMaxVersions) {
    return OverBound("version_policy.latest.num_versions", policy.latest().num_versions(),
                     B::kMaxVersions, "versions served at once");
  }
  if (policy.has_specific()) {
    const auto& versions = policy.specific().versions();
    MM_RETURN_IF_ERROR(
        CheckCount("version_policy.specific.versions", versions.size(), B::kMaxVersions));
    if (versions.empty()) {
      return InvalidArgument(
          "version_policy.specific lists no versions; expected at least one positive version");
    }
    for (int i = 0; i < versions.size(); ++i) {
      if (versions[i] <= 0) {
        return InvalidArgument("version_policy.specific.versions[" + std::to_string(i) + "] is " +
                               std::to_string(versions[i]) +
                               "; expected a positive version number");
      }
    }
  }
  return OkStatus();
}

Status ValidateQueuePolicy(const inference::ModelQueuePolicy& policy, const std::string& what) {
  if (!inference::ModelQueuePolicy::TimeoutAction_IsValid(policy.timeout_action())) {
    return InvalidArgument(what + ".timeout_action is " + std::to_string(policy.timeout_action()) +
                           "; expected REJECT or DELAY");
  }
  if (policy.default_timeout_microseconds() > B::kMaxQueueTimeoutUs) {
    return OverBound(what + ".default_timeout_microseconds", policy.default_timeout_microseconds(),
                     B::kMaxQueueTimeoutUs, "one hour");
  }
  if (policy.max_queue_size() > B::kMaxQueueSize) {
    return OverBound(what + ".max_queue_size", policy.max_queue_size(), B::kMaxQueueSize,
                     "0 means unbounded");
  }
  return OkStatus();
}

Status ValidateDynamicBatching(const inference::ModelConfig& config) {
  const auto& db = config.dynamic_batching();
  const int32_t max_batch = config.max_batch_size();
  if (max_batch <= 0) {
    return InvalidArgument(
        "dynamic_batching is set but max_batch_size is 0; dynamic batching needs a model "
        "that batches (max_batch_size > 0)");
  }
  MM_RETURN_IF_ERROR(CheckCount("dynamic_batching.preferred_batch_size",
                                db.preferred_batch_size_size(), B::kMaxPreferredBatchSizes));
  for (int i = 0; i < db.preferred_batch_size_size(); ++i) {
    int32_t size = db.preferred_batch_size(i);
    if (size <= 0 || size > max_batch) {
      return InvalidArgument("dynamic_batching.preferred_batch_size[" + std::to_string(i) +
                             "] is " + std::to_string(size) + "; expected 1 to max_batch_size (" +
                             std::to_string(max_batch) + ")");
    }
  }
  if (db.max_queue_delay_microseconds() > B::kMaxQueueDelayUs) {
    return OverBound("dynamic_batching.max_queue_delay_microseconds",
                     db.max_queue_delay_microseconds(), B::kMaxQueueDelayUs, "one minute");
  }
  const uint64_t levels = db.priority_levels();
  if (levels > B::kMaxPriorityLevels) {
    return OverBound("dynamic_batching.priority_levels", levels, B::kMaxPriorityLevels);
  }
  if (levels == 0) {
    if (db.default_priority_level() != 0) {
      return InvalidArgument("dynamic_batching.default_priority_level is " +
                             std::to_string(db.default_priority_level()) +
                             " but priority_levels is 0; set priority_levels first");
    }
    if (!db.priority_queue_policy().empty()) {
      return InvalidArgument(
          "dynamic_batching.priority_queue_policy is set but priority_levels is 0; set "
          "priority_levels first");
    }
  } else if (db.default_priority_level() < 1 || db.default_priority_level() > levels) {
    return InvalidArgument("dynamic_batching.default_priority_level is " +
                           std::to_string(db.default_priority_level()) + "; expected 1 to " +
                           "priority_levels (" + std::to_string(levels) + ")");
  }
  if (db.has_default_queue_policy()) {
    MM_RETURN_IF_ERROR(
        ValidateQueuePolicy(db.default_queue_policy(), "dynamic_batching.default_queue_policy"));
  }
  for (const auto& [level, policy] : db.priority_queue_policy()) {
    std::string what = "dynamic_batching.priority_queue_policy[" + std::to_string(level) + "]";
    if (level < 1 || level > levels) {
      return InvalidArgument(what + " names priority level " + std::to_string(level) +
                             "; expected 1 to priority_levels (" + std::to_string(levels) + ")");
    }
    MM_RETURN_IF_ERROR(ValidateQueuePolicy(policy, what));
  }
  return OkStatus();
}

Status ValidateInstanceGroups(const inference::ModelConfig& config) {
  MM_RETURN_IF_ERROR(
      CheckCount("instance_group", config.instance_group_size(), B::kMaxInstanceGroups));
  int64_t total = 0;
  for (int i = 0; i < config.instance_group_size(); ++i) {
    const auto& group = config.instance_group(i);
    std::string what = "instance_group[" + std::to_string(i) + "]";
    if (group.count() < 0) {
      return InvalidArgument(what + ".count is " + std::to_string(group.count()) +
                             "; expected 0 or more (0 means 1)");
    }
    if (group.count() > B::kMaxInstances) {
      return OverBound(what + ".count", group.count(), B::kMaxInstances);
    }
    total += std::max(group.count(), 1);  // at most 64 groups of 1024: no overflow
    if (total > B::kMaxInstances) {
      return InvalidArgument("instance_group asks for " + std::to_string(total) +
                             " instances or more in total; expected at most " +
                             std::to_string(B::kMaxInstances));
    }
    MM_RETURN_IF_ERROR(CheckCount(what + ".gpus", group.gpus_size(), B::kMaxGpusPerGroup));
    const auto& limiter = group.rate_limiter();
    MM_RETURN_IF_ERROR(CheckCount(what + ".rate_limiter.resources", limiter.resources_size(),
                                  B::kMaxRateLimiterResources));
    for (int r = 0; r < limiter.resources_size(); ++r) {
      if (limiter.resources(r).count() > B::kMaxRateLimiterCount) {
        return OverBound(what + ".rate_limiter.resources[" + std::to_string(r) + "].count",
                         limiter.resources(r).count(), B::kMaxRateLimiterCount);
      }
    }
    if (limiter.priority() > B::kMaxRateLimiterCount) {
      return OverBound(what + ".rate_limiter.priority", limiter.priority(),
                       B::kMaxRateLimiterCount);
    }
    if (!inference::ModelInstanceGroup::Kind_IsValid(group.kind())) {
      return InvalidArgument(what + ".kind is " + std::to_string(group.kind()) +
                             "; expected KIND_AUTO, KIND_CPU, KIND_GPU or KIND_MODEL");
    }
    for (int g : group.gpus()) {
      if (g < 0 || g > B::kMaxGpuIndex) {
        return InvalidArgument(what + ".gpus lists " + std::to_string(g) +
                               "; expected GPU indices from 0 to " +
                               std::to_string(B::kMaxGpuIndex));
      }
    }
  }
  return OkStatus();
}

// Bytes of one warmup input's data at least: elements x element size (a
// BYTES element at least its 4-byte length prefix), saturating past `cap`.
uint64_t WarmupInputBytes(const inference::ModelWarmup::Input& input, uint64_t rows, uint64_t cap) {
  const auto type = static_cast<DataType>(input.data_type());
  uint64_t bytes = type == DataType::kBytes ? 4 : std::max<uint64_t>(DataTypeSize(type), 1);
  bytes *= rows;
  for (int64_t d : input.dims()) {  // each in [0, kMaxDim]
    if (d == 0) return 0;
    if (bytes > cap / static_cast<uint64_t>(d)) return cap + 1;
    bytes *= static_cast<uint64_t>(d);
  }
  return bytes;
}

Status ValidateWarmup(const inference::ModelConfig& config) {
  MM_RETURN_IF_ERROR(CheckCount("model_warmup", config.model_warmup_size(), B::kMaxWarmupSamples));
  uint64_t runs = 0;
  for (int i = 0; i < config.model_warmup_size(); ++i) {
    const auto& warmup = config.model_warmup(i);
    std::string what = "model_warmup[" + std::to_string(i) + "]";
    if (warmup.count() > B::kMaxWarmupRuns) {
      return OverBound(what + ".count", warmup.count(), B::kMaxWarmupRuns,
                       "warmup runs per instance, on a loader thread");
    }
    runs += std::max<uint64_t>(warmup.count(), 1);
    if (runs > B::kMaxWarmupRuns) {
      return InvalidArgument("model_warmup runs " + std::to_string(runs) +
                             " times or more per instance (each sample's count, 0 counting 1); "
                             "expected at most " +
                             std::to_string(B::kMaxWarmupRuns) + " in total");
    }
    uint32_t limit = config.max_batch_size() > 0 ? config.max_batch_size() : 1;
    if (warmup.batch_size() < 1 || warmup.batch_size() > limit) {
      return InvalidArgument(
          what + ".batch_size is " + std::to_string(warmup.batch_size()) + "; expected 1 to " +
          std::to_string(limit) +
          (config.max_batch_size() > 0 ? " (max_batch_size)" : " (the model does not batch)"));
    }
    MM_RETURN_IF_ERROR(CheckCount(what + ".inputs", warmup.inputs_size(), B::kMaxTensors));
    const uint64_t rows = config.max_batch_size() > 0 ? warmup.batch_size() : 1;
    uint64_t sample_bytes = 0;
    for (const auto& [name, input] : warmup.inputs()) {
      std::string in = what + ".inputs[" + Quote(name) + "]";
      if (name.empty()) return InvalidArgument(what + " has an input with an empty name");
      MM_RETURN_IF_ERROR(ValidateDataType(input.data_type(), in));
      MM_RETURN_IF_ERROR(ValidateRank(input.dims_size(), in, "dims"));
      for (int d = 0; d < input.dims_size(); ++d) {
        if (input.dims(d) < 0 || input.dims(d) > B::kMaxDim) {
          return InvalidArgument(in + " dims[" + std::to_string(d) + "] is " +
                                 std::to_string(input.dims(d)) +
                                 "; expected a concrete size from 0 to " +
                                 std::to_string(B::kMaxDim) + " for warmup data");
        }
      }
      if (input.input_data_type_case() == inference::ModelWarmup::Input::INPUT_DATA_TYPE_NOT_SET) {
        return InvalidArgument(in + " says no data; expected zero_data, random_data or " +
                               "input_data_file");
      }
      sample_bytes += WarmupInputBytes(input, rows, B::kMaxWarmupSampleBytes);
      if (sample_bytes > B::kMaxWarmupSampleBytes) {
        return InvalidArgument(what + " needs more than " +
                               std::to_string(B::kMaxWarmupSampleBytes) +
                               " bytes of input data (batch_size x dims x element size, "
                               "summed over its inputs); expected at most " +
                               std::to_string(B::kMaxWarmupSampleBytes) + " (64 MiB)");
      }
    }
  }
  return OkStatus();
}

// A map field's entries: at most kMaxMapEntries.
Status ValidateMaps(const inference::ModelConfig& config) {
  MM_RETURN_IF_ERROR(CheckCount("parameters", config.parameters_size(), B::kMaxMapEntries));
  MM_RETURN_IF_ERROR(CheckCount("metric_tags", config.metric_tags_size(), B::kMaxMapEntries));
  MM_RETURN_IF_ERROR(
      CheckCount("cc_model_filenames", config.cc_model_filenames_size(), B::kMaxMapEntries));
  return OkStatus();
}

// The parameters that set a runtime's thread counts (Triton's names, read by
// the onnxruntime backend): a decimal integer in [0, kMaxThreadsPerInstance].
constexpr std::string_view kThreadParameters[] = {"intra_op_thread_count", "inter_op_thread_count"};

// The value of thread parameter `key`: `unset` when absent.
StatusOr<int64_t> ThreadParameter(const inference::ModelConfig& config, std::string_view key,
                                  int64_t unset) {
  auto it = config.parameters().find(std::string(key));
  if (it == config.parameters().end()) return unset;
  const std::string& text = it->second.string_value();
  int64_t value = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0 ||
      value > B::kMaxThreadsPerInstance) {
    return InvalidArgument("parameters[" + Quote(key) + "] is " + Quote(text) +
                           "; expected an integer from 0 (one per core) to " +
                           std::to_string(B::kMaxThreadsPerInstance));
  }
  return value;
}

Status ValidateMmserve(const inference::MmserveOptions& mm) {
  if (!inference::MmserveOptions::Isolation_IsValid(mm.isolation())) {
    return InvalidArgument(
        "mmserve.isolation is " + std::to_string(mm.isolation()) +
        "; expected IN_PROCESS or PROCESS (or none: the server's --default-isolation)");
  }
  if (const double w = mm.weight(); !(w >= 0 && w <= B::kMaxWeight)) {
    return InvalidArgument("mmserve.weight is " + std::to_string(w) +
                           "; expected a number from 0 (the default, 1) to 1000000");
  }
  if (mm.memory_footprint_bytes() > B::kMaxMemoryBytes) {
    return OverBound("mmserve.memory_footprint_bytes", mm.memory_footprint_bytes(),
                     B::kMaxMemoryBytes, "256 TiB");
  }
  if (mm.memory_limit_bytes() > B::kMaxMemoryBytes) {
    return OverBound("mmserve.memory_limit_bytes", mm.memory_limit_bytes(), B::kMaxMemoryBytes,
                     "256 TiB");
  }
  if (mm.execution_timeout_ms() > B::kMaxExecutionTimeoutMs) {
    return OverBound("mmserve.execution_timeout_ms", mm.execution_timeout_ms(),
                     B::kMaxExecutionTimeoutMs, "one hour");
  }
  return OkStatus();
}

// sequence_batching's numbers; what the sequence batcher supports is its
// own check (scheduler/sequence_batcher.h).
Status ValidateSequenceBatching(const inference::ModelConfig& config) {
  const auto& sb = config.sequence_batching();
  if (sb.max_sequence_idle_microseconds() > B::kMaxQueueTimeoutUs) {
    return OverBound("sequence_batching.max_sequence_idle_microseconds",
                     sb.max_sequence_idle_microseconds(), B::kMaxQueueTimeoutUs);
  }
  MM_RETURN_IF_ERROR(
      CheckCount("sequence_batching.control_input", sb.control_input_size(), B::kMaxTensors));
  MM_RETURN_IF_ERROR(CheckCount("sequence_batching.state", sb.state_size(), B::kMaxTensors));
  const uint64_t delay = sb.has_oldest() ? sb.oldest().max_queue_delay_microseconds()
                                         : sb.direct().max_queue_delay_microseconds();
  if (delay > B::kMaxQueueDelayUs) {
    return OverBound("sequence_batching's max_queue_delay_microseconds", delay,
                     B::kMaxQueueDelayUs);
  }
  if (sb.has_oldest() && sb.oldest().max_candidate_sequences() > int32_t{1'000'000}) {
    return OverBound("sequence_batching.oldest.max_candidate_sequences",
                     sb.oldest().max_candidate_sequences(), 1'000'000);
  }
  for (const auto& st : sb.state()) {
    MM_RETURN_IF_ERROR(ValidateDims(st.dims(), "state " + Quote(st.input_name()), "dims"));
  }
  return OkStatus();
}

// ensemble_scheduling's sizes and names; its steps are checked against their
// models when the ensemble loads (backends/ensemble/ensemble_plan.h).
Status ValidateEnsembling(const inference::ModelConfig& config) {
  if (config.platform() != "ensemble" && config.backend() != "ensemble") {
    return InvalidArgument("ensemble_scheduling is set, but the platform is " +
                           Quote(config.platform()) + "; expected platform \"ensemble\"");
  }
  const auto& ensembling = config.ensemble_scheduling();
  MM_RETURN_IF_ERROR(
      CheckCount("ensemble_scheduling.step", ensembling.step_size(), B::kMaxEnsembleSteps));
  if (ensembling.max_inflight_requests() > B::kMaxEnsembleInflight) {
    return OverBound("ensemble_scheduling.max_inflight_requests",
                     ensembling.max_inflight_requests(), B::kMaxEnsembleInflight);
  }
  for (int i = 0; i < ensembling.step_size(); ++i) {
    const auto& step = ensembling.step(i);
    const std::string what = "ensemble_scheduling.step[" + std::to_string(i) + "]";
    if (step.model_name().empty()) return InvalidArgument(what + " names no model_name");
    MM_RETURN_IF_ERROR(ValidateModelName(step.model_name()).WithContext(what));
    MM_RETURN_IF_ERROR(CheckCount(what + ".input_map", step.input_map_size(), B::kMaxTensors));
    MM_RETURN_IF_ERROR(CheckCount(what + ".output_map", step.output_map_size(), B::kMaxTensors));
    for (const auto* map : {&step.input_map(), &step.output_map()}) {
      for (const auto& [from, to] : *map) {
        if (from.empty() || to.empty() || HasControlChar(from) || HasControlChar(to)) {
          return InvalidArgument(what + " maps " + Quote(from) + " to " + Quote(to) +
                                 "; expected non-empty tensor names without control characters");
        }
      }
    }
  }
  return OkStatus();
}

}  // namespace

Status ValidateModelConfig(const inference::ModelConfig& config) {
  MM_RETURN_IF_ERROR(ValidateModelName(config.name()));
  if (config.max_batch_size() < 0) {
    return InvalidArgument("max_batch_size is " + std::to_string(config.max_batch_size()) +
                           "; expected 0 (no batching) or a positive batch size");
  }
  if (config.max_batch_size() > B::kMaxBatchSize) {
    return OverBound("max_batch_size", config.max_batch_size(), B::kMaxBatchSize);
  }
  MM_RETURN_IF_ERROR(ValidateTensors(config.input(), "input"));
  MM_RETURN_IF_ERROR(ValidateTensors(config.output(), "output"));
  for (const auto& input : config.input()) {
    if (!inference::ModelInput::Format_IsValid(input.format())) {
      return InvalidArgument("input " + Quote(input.name()) + " has format " +
                             std::to_string(input.format()) +
                             "; expected FORMAT_NONE, FORMAT_NHWC or FORMAT_NCHW");
    }
  }
  MM_RETURN_IF_ERROR(ValidateVersionPolicy(config.version_policy()));
  MM_RETURN_IF_ERROR(ValidateInstanceGroups(config));
  if (config.has_dynamic_batching()) MM_RETURN_IF_ERROR(ValidateDynamicBatching(config));
  if (config.has_ensemble_scheduling()) MM_RETURN_IF_ERROR(ValidateEnsembling(config));
  if (config.has_sequence_batching()) MM_RETURN_IF_ERROR(ValidateSequenceBatching(config));
  MM_RETURN_IF_ERROR(ValidateWarmup(config));
  MM_RETURN_IF_ERROR(ValidateMaps(config));
  for (std::string_view key : kThreadParameters) {
    MM_RETURN_IF_ERROR(ThreadParameter(config, key, 0).status());
  }
  return ValidateMmserve(config.mmserve());
}

int64_t GroupInstanceCount(const inference::ModelInstanceGroup& group) {
  const int64_t count = std::max<int64_t>(group.count(), 1);
  const bool per_gpu =
      group.kind() == inference::ModelInstanceGroup::KIND_GPU && group.gpus_size() > 0;
  return per_gpu ? count * group.gpus_size() : count;
}

int64_t InstanceCount(const inference::ModelConfig& config) {
  int64_t total = 0;
  for (const auto& group : config.instance_group()) total += GroupInstanceCount(group);
  return std::max<int64_t>(total, 1);
}

Status CheckServerLimits(const inference::ModelConfig& config, const ServerLimits& limits) {
  const int64_t instances = InstanceCount(config);
  if (limits.max_instances_per_model > 0 && instances > limits.max_instances_per_model) {
    return InvalidArgument("instance_group asks for " + std::to_string(instances) +
                           " instances; this server allows at most " +
                           std::to_string(limits.max_instances_per_model) +
                           " per model (--max-instances-per-model)");
  }
  if (limits.max_threads_per_model <= 0) return OkStatus();
  const int64_t cores =
      limits.cores > 0
          ? limits.cores
          : std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()));
  int64_t per_instance = 0;
  std::string terms;
  for (std::string_view key : kThreadParameters) {
    MM_ASSIGN_OR_RETURN(int64_t n, ThreadParameter(config, key, 1));
    if (!terms.empty()) terms += " + ";
    terms += std::string(key) + " " + std::to_string(n);
    if (!config.parameters().contains(std::string(key))) {
      terms += " (unset)";
    } else if (n == 0) {
      n = cores;
      terms += " (one per core: " + std::to_string(cores) + ")";
    }
    per_instance += n;
  }
  const int64_t threads = instances * per_instance;  // at most 1024 x 2 x (1024 or cores)
  if (threads > limits.max_threads_per_model) {
    return InvalidArgument(
        std::to_string(instances) + " instance(s) x (" + terms + ") = " + std::to_string(threads) +
        " threads; this server allows at most " + std::to_string(limits.max_threads_per_model) +
        " per model (--max-threads-per-model)");
  }
  return OkStatus();
}

std::vector<int64_t> SelectVersions(const inference::ModelVersionPolicy& policy,
                                    std::vector<int64_t> available) {
  std::erase_if(available, [](int64_t v) { return v <= 0; });
  std::sort(available.begin(), available.end());
  available.erase(std::unique(available.begin(), available.end()), available.end());
  switch (policy.policy_choice_case()) {
    case inference::ModelVersionPolicy::kAll:
      return available;
    case inference::ModelVersionPolicy::kSpecific: {
      std::vector<int64_t> selected;
      for (int64_t v : available) {
        const auto& wanted = policy.specific().versions();
        if (std::find(wanted.begin(), wanted.end(), v) != wanted.end()) selected.push_back(v);
      }
      return selected;
    }
    case inference::ModelVersionPolicy::kLatest:
    case inference::ModelVersionPolicy::POLICY_CHOICE_NOT_SET:
      break;
  }
  size_t n = policy.has_latest() ? std::max<uint32_t>(policy.latest().num_versions(), 1) : 1;
  if (available.size() > n) available.erase(available.begin(), available.end() - n);
  return available;
}

}  // namespace mm
