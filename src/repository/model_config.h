// Model configuration: reading config.pbtxt, checking it, choosing versions
// and writing it as Triton's JSON.
//
// All functions are pure (no I/O, no global state) and safe to call
// concurrently. This header is the door; behind it,
//   model_config_parse.cc     config.pbtxt (TextFormat) and unknown-field warnings
//   model_config_validate.cc  ValidateModelConfig, CheckServerLimits, SelectVersions
//   model_config_json.cc      ModelConfigToJson, and config overrides read from JSON
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/message.h>

#include "core/status.h"
#include "model_config.pb.h"

namespace mm {

// Bounds on a model configuration's numbers (docs/model_config.md, "Bounds").
// A config is untrusted input: a tenant's load override as much as an
// operator's config.pbtxt. Every number that sizes memory, threads, time or
// work has a bound here, checked by ValidateModelConfig, so that a config
// never makes the server allocate, spawn or wait without limit. Each bound is
// far above what a real model needs (each says why it is where it is).
struct ConfigBounds {
  // A batch is formed of this many rows at most. Triton's FIL examples use
  // 32768; 2^20 leaves room, and statistics are kept per batch size.
  static constexpr int32_t kMaxBatchSize = 1 << 20;
  static constexpr int kMaxPreferredBatchSizes = 64;
  // Waiting for a batch longer than a minute is never a latency trade-off.
  static constexpr uint64_t kMaxQueueDelayUs = 60'000'000;
  // Priority levels are scheduling classes: nobody tells a thousand apart.
  // (The queues are sparse, so the bound is about policy tables and
  // messages, not memory per level.)
  static constexpr uint64_t kMaxPriorityLevels = 1000;
  // A queue policy's default_timeout_microseconds: an hour, as a request's
  // "timeout" parameter.
  static constexpr uint64_t kMaxQueueTimeoutUs = 3'600'000'000;
  // A queue policy's max_queue_size (per priority level; 0: unbounded).
  static constexpr uint32_t kMaxQueueSize = 1'000'000;
  // Inputs, outputs (each), and tensors a warmup sample names.
  static constexpr int kMaxTensors = 1024;
  // Dims of a configured tensor, reshape or warmup input: rank and size.
  static constexpr int kMaxRank = 64;
  static constexpr int64_t kMaxDim = (int64_t{1} << 31) - 1;
  // Instance groups, and instances over all groups (a worker process each
  // under PROCESS isolation); the server's --max-instances-per-model is
  // usually lower (ServerLimits).
  static constexpr int kMaxInstanceGroups = 64;
  static constexpr int64_t kMaxInstances = 1024;
  static constexpr int kMaxGpusPerGroup = 64;
  static constexpr int32_t kMaxGpuIndex = 1023;
  static constexpr int kMaxRateLimiterResources = 64;
  static constexpr uint32_t kMaxRateLimiterCount = 1'000'000;  // also its priority
  // parameters intra_op_thread_count and inter_op_thread_count, per
  // instance (as the onnxruntime backend); the server's
  // --max-threads-per-model bounds them per model (ServerLimits).
  static constexpr int kMaxThreadsPerInstance = 1024;
  // version_policy latest.num_versions and specific's list; also how many
  // versions a policy may select on disk (each is loaded).
  static constexpr int kMaxVersions = 100;
  // model_warmup: samples; runs per instance (the sum of every sample's
  // count, 0 counting 1), since warmup holds a loader thread; bytes of
  // input data per sample (generated, or read from input_data_file).
  static constexpr int kMaxWarmupSamples = 64;
  static constexpr uint64_t kMaxWarmupRuns = 1000;
  static constexpr uint64_t kMaxWarmupSampleBytes = uint64_t{64} << 20;
  // Entries of parameters, metric_tags and cc_model_filenames (each).
  static constexpr int kMaxMapEntries = 256;
  // mmserve.memory_footprint_bytes and memory_limit_bytes: 256 TiB, far
  // above any machine, and sums of footprints cannot overflow.
  static constexpr uint64_t kMaxMemoryBytes = uint64_t{1} << 48;
  // mmserve.execution_timeout_ms: one hour.
  static constexpr uint64_t kMaxExecutionTimeoutMs = 3'600'000;
  static constexpr double kMaxWeight = 1e6;  // mmserve.weight
  // An ensemble's steps; and its requests in flight at once (each a few
  // bytes of scheduler state until it runs).
  static constexpr int kMaxEnsembleSteps = 256;
  static constexpr uint32_t kMaxEnsembleInflight = 65536;
  // A load's config override (JSON), as config.pbtxt files are read.
  static constexpr size_t kMaxOverrideBytes = size_t{4} << 20;
};

// The server's own caps on what one model may ask for (flags), checked with
// CheckServerLimits at every load, after ValidateModelConfig.
struct ServerLimits {
  // --max-instances-per-model: instances over all instance groups (a count
  // of 0 counts 1; no group: 1). 0: only ConfigBounds::kMaxInstances.
  int64_t max_instances_per_model = 16;
  // --max-threads-per-model: instances x (intra_op_thread_count +
  // inter_op_thread_count), the runtime threads a model may ask for. An
  // unset count counts 1 (the backends' default), 0 counts `cores` (ONNX
  // Runtime's "one per core"). 0: no cap.
  int64_t max_threads_per_model = 64;
  // What a thread count of 0 stands for; 0: std::thread::hardware_concurrency().
  int64_t cores = 0;
};

// Instances one group makes (Triton's rule): its count, 0 counting 1, and a
// KIND_GPU group that lists GPUs makes that many on each of them.
int64_t GroupInstanceCount(const inference::ModelInstanceGroup& group);

// Instances a (validated) config asks for: every group's (above) summed; at
// least 1.
int64_t InstanceCount(const inference::ModelConfig& config);

// INVALID_ARGUMENT naming the flag, the value asked for and the cap when a
// validated config asks for more instances or threads than `limits` allow.
Status CheckServerLimits(const inference::ModelConfig& config, const ServerLimits& limits);

// A load's config override (Triton's "config" load parameter: the model
// config as JSON, proto field names), checked as a load checks it before
// anything is allocated: at most kMaxOverrideBytes, parses as a ModelConfig,
// names `model_name` or no model (the name is filled in), passes
// ValidateModelConfig and CheckServerLimits. INVALID_ARGUMENT otherwise,
// naming the model and the parameter.
StatusOr<inference::ModelConfig> ParseConfigOverride(std::string_view json,
                                                     std::string_view model_name,
                                                     const ServerLimits& limits);

// The admin-only fields a JSON config override sets: every field of the
// mmserve block (accounting, placement and policy: footprint, pinning,
// tenant, weight, isolation, limits), named "mmserve.<field>", in any JSON
// spelling and even when set to its default value; "mmserve" alone for a
// block that names no field. INVALID_ARGUMENT when `json` is not a config
// (the same answer as ParseConfigOverride for model `model_name`). Empty: none.
StatusOr<std::vector<std::string>> AdminOnlyFieldsIn(std::string_view json,
                                                     std::string_view model_name);

// Parses config.pbtxt text. `model_name` names the model in messages
// ("config.pbtxt of model 'm' line 3 column 5: ..."; lines and columns count
// from 1). Fields mmserve does not know (other Triton fields) are skipped and
// each adds an entry to `*warnings` naming it ("... unknown field 'foo'
// ignored"); `warnings` may be null. A syntax error, a wrong value type or an
// unknown enum value is INVALID_ARGUMENT. The result is not validated and its
// name is not filled in: see ValidateModelConfig.
StatusOr<inference::ModelConfig> ParseModelConfig(std::string_view text,
                                                  std::string_view model_name,
                                                  std::vector<std::string>* warnings);

// Structural checks that need nothing but the config: the name is usable as a
// model name, tensors are named uniquely with a data type and sane dims,
// every number is within ConfigBounds. INVALID_ARGUMENT names the offending
// field, its value and the bound. Checks against the model file itself are
// the backend's job; the server's own caps are CheckServerLimits'.
Status ValidateModelConfig(const inference::ModelConfig& config);

// The versions to serve: `available` (on disk, any order) filtered by
// `policy`, ascending. Unset policy: latest 1. latest N: the N highest.
// all: every version. specific: the listed versions that are available.
std::vector<int64_t> SelectVersions(const inference::ModelVersionPolicy& policy,
                                    std::vector<int64_t> available);

// `message` as JSON the way Triton's HTTP model-config endpoint writes it:
// proto field names, enums by name, 64-bit integers as JSON numbers, every
// non-oneof scalar and repeated field printed even when default, sub-messages
// only when set, map entries sorted by key. Floats print shortest round-trip;
// NaN and infinities as the strings "NaN", "Infinity", "-Infinity"; bytes
// as base64.
std::string ModelConfigToJson(const google::protobuf::Message& message);

}  // namespace mm
