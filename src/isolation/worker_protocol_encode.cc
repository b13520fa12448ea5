// The worker protocol's writing side: frames, message encoders, and the
// sender's checks (what the decoders would refuse, said from the user's
// side before anything is sent). The reading side is worker_protocol_decode.cc.
#include <algorithm>
#include <bit>
#include <cassert>
#include <limits>
#include <type_traits>

#include "core/shape.h"
#include "isolation/worker_protocol.h"
#include "isolation/worker_protocol_internal.h"

namespace mm {

using namespace worker_protocol_internal;  // NOLINT

namespace {

// ------------------------------------------------------------------ writing

void PutTensor(std::string& out, const ShmTensor& t) {
  PutString(out, t.name);
  PutLe<uint32_t>(out, static_cast<uint32_t>(t.dtype));
  PutLe<uint32_t>(out, static_cast<uint32_t>(t.shape.size()));
  for (int64_t d : t.shape) PutLe<int64_t>(out, d);
  PutLe<uint64_t>(out, t.offset);
  PutLe<uint64_t>(out, t.bytes);
}

void PutTensors(std::string& out, const std::vector<ShmTensor>& tensors) {
  PutLe<uint32_t>(out, static_cast<uint32_t>(tensors.size()));
  for (const auto& t : tensors) PutTensor(out, t);
}

// ------------------------------------------------------------ sender checks

// `label` "input" / "output"; what the decoder's ReadTensor and the list
// limits would reject, said from the user's side.
Status CheckTensorFits(std::string_view label, const std::string& name,
                       const std::vector<int64_t>& shape) {
  if (name.empty() || name.size() > kMaxTensorNameBytes) {
    return InvalidArgument(std::string(label) + " name of " + std::to_string(name.size()) +
                           " bytes; a model in a worker process takes tensor names of 1 to " +
                           std::to_string(kMaxTensorNameBytes) + " bytes");
  }
  if (shape.size() > kMaxRank) {
    return InvalidArgument(std::string(label) + " '" + Printable(name) + "' has " +
                           std::to_string(shape.size()) +
                           " dims; a model in a worker process takes tensors of at most " +
                           std::to_string(kMaxRank) + " dims");
  }
  for (int64_t d : shape) {
    if (d < 0) {
      return InvalidArgument(std::string(label) + " '" + Printable(name) + "' has shape " +
                             ShapeToString(shape) + ", with a negative dim");
    }
  }
  return OkStatus();
}

Status CheckCount(std::string_view what, size_t n) {
  if (n <= kMaxTensors) return OkStatus();
  return InvalidArgument(std::to_string(n) + " " + std::string(what) +
                         "; a model in a worker process takes at most " +
                         std::to_string(kMaxTensors));
}

}  // namespace

Status CheckExecuteFits(const ExecuteRequest& execute) {
  if (execute.requests.empty() || execute.requests.size() > kMaxExecuteRequests) {
    return InvalidArgument("a batch of " + std::to_string(execute.requests.size()) +
                           " requests; a model in a worker process takes 1 to " +
                           std::to_string(kMaxExecuteRequests) + " at once");
  }
  for (const ExecuteItem& request : execute.requests) {
    MM_RETURN_IF_ERROR(CheckExecuteItemFits(request));
  }
  return OkStatus();
}

Status CheckExecuteItemFits(const ExecuteItem& request) {
  if (request.id.size() > kMaxStringBytes) {
    return InvalidArgument("request id of " + std::to_string(request.id.size()) +
                           " bytes; a model in a worker process takes ids of at most " +
                           std::to_string(kMaxStringBytes) + " bytes");
  }
  if (request.parameters.size() > kMaxParameters) {
    return InvalidArgument(std::to_string(request.parameters.size()) +
                           " request parameters; a model in a worker process takes at most " +
                           std::to_string(kMaxParameters));
  }
  for (const auto& [key, value] : request.parameters) {
    if (key.empty() || key.size() > kMaxParameterKeyBytes) {
      return InvalidArgument("request parameter name of " + std::to_string(key.size()) +
                             " bytes; a model in a worker process takes names of 1 to " +
                             std::to_string(kMaxParameterKeyBytes) + " bytes");
    }
    const std::string* text = std::get_if<std::string>(&value);
    if (text != nullptr && text->size() > kMaxStringBytes) {
      return InvalidArgument("request parameter '" + Printable(key) + "' of " +
                             std::to_string(text->size()) +
                             " bytes; a model in a worker process takes string parameters of "
                             "at most " +
                             std::to_string(kMaxStringBytes) + " bytes");
    }
  }
  MM_RETURN_IF_ERROR(CheckCount("inputs", request.inputs.size()));
  MM_RETURN_IF_ERROR(CheckCount("requested outputs", request.outputs.size()));
  for (const ShmTensor& t : request.inputs) {
    MM_RETURN_IF_ERROR(CheckTensorFits("input", t.name, t.shape));
  }
  for (const std::string& name : request.outputs) {
    if (name.empty() || name.size() > kMaxTensorNameBytes) {
      return InvalidArgument("requested output name of " + std::to_string(name.size()) +
                             " bytes; a model in a worker process takes tensor names of 1 to " +
                             std::to_string(kMaxTensorNameBytes) + " bytes");
    }
  }
  return OkStatus();
}

Status CheckExecuteReplyFits(const ExecuteReply& reply) {
  if (!reply.status.ok()) return OkStatus();
  if (reply.results.empty() || reply.results.size() > kMaxExecuteRequests) {
    return InvalidArgument("a reply of " + std::to_string(reply.results.size()) +
                           " results; expected 1 to " + std::to_string(kMaxExecuteRequests));
  }
  for (const ExecuteResult& result : reply.results) {
    MM_RETURN_IF_ERROR(CheckExecuteResultFits(result));
  }
  return OkStatus();
}

Status CheckExecuteResultFits(const ExecuteResult& reply) {
  if (!reply.status.ok()) return OkStatus();
  MM_RETURN_IF_ERROR(CheckCount("outputs", reply.outputs.size()));
  for (const ShmTensor& t : reply.outputs) {
    MM_RETURN_IF_ERROR(CheckTensorFits("output", t.name, t.shape));
    if (t.dtype == DataType::kInvalid) {
      return InvalidArgument("output '" + Printable(t.name) + "' has no datatype");
    }
  }
  const size_t n = reply.outputs.size();
  for (size_t i = 1; i < n && n <= 32; ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (reply.outputs[i].name == reply.outputs[j].name) {
        return InvalidArgument("output '" + Printable(reply.outputs[i].name) +
                               "' is answered twice");
      }
    }
  }
  if (n > 32) {
    std::vector<std::string_view> names;
    names.reserve(n);
    for (const ShmTensor& t : reply.outputs) names.push_back(t.name);
    std::sort(names.begin(), names.end());
    auto dup = std::adjacent_find(names.begin(), names.end());
    if (dup != names.end()) {
      return InvalidArgument("output '" + Printable(*dup) + "' is answered twice");
    }
  }
  return OkStatus();
}

Status CheckLoadFits(const LoadRequest& request) {
  const auto fits = [](std::string_view field, const std::string& s, size_t min, size_t max) {
    if (s.size() >= min && s.size() <= max) return OkStatus();
    return InvalidArgument(std::string(field) + " of " + std::to_string(s.size()) +
                           " bytes; a model in a worker process takes " + std::to_string(min) +
                           " to " + std::to_string(max));
  };
  MM_RETURN_IF_ERROR(fits("model name", request.model_name, 1, kMaxStringBytes));
  MM_RETURN_IF_ERROR(fits("model folder path", request.model_dir, 1, kMaxModelDirBytes));
  if (request.model_dir.find('\0') != std::string::npos) {
    return InvalidArgument("model folder path contains a NUL byte");
  }
  MM_RETURN_IF_ERROR(fits("model config (serialized)", request.config, 0, kMaxConfigBytes));
  MM_RETURN_IF_ERROR(fits("platform name", request.platform, 0, kMaxPlatformBytes));
  if (request.version < 1) {
    return InvalidArgument("version " + std::to_string(request.version) + ", expected >= 1");
  }
  return OkStatus();
}

Status CheckLoadReplyFits(const LoadReply& reply) {
  if (reply.status.ok() && reply.config.size() > kMaxConfigBytes) {
    return InvalidArgument("the model's complete config is " + std::to_string(reply.config.size()) +
                           " bytes serialized; a model in a worker process may have at most " +
                           std::to_string(kMaxConfigBytes));
  }
  return OkStatus();
}

// ------------------------------------------------------------------- frames

std::string_view WorkerMessageTypeName(WorkerMessageType type) {
  switch (type) {
    case WorkerMessageType::kLoad:
      return "Load";
    case WorkerMessageType::kUnload:
      return "Unload";
    case WorkerMessageType::kExecute:
      return "Execute";
    case WorkerMessageType::kHealth:
      return "Health";
    case WorkerMessageType::kStats:
      return "Stats";
    case WorkerMessageType::kRegion:
      return "Region";
    case WorkerMessageType::kMailbox:
      return "Mailbox";
    case WorkerMessageType::kCalls:
      return "Calls";
    case WorkerMessageType::kRespond:
      return "Respond";
    case WorkerMessageType::kInfer:
      return "Infer";
    case WorkerMessageType::kModelReady:
      return "ModelReady";
    case WorkerMessageType::kMetricCreate:
      return "MetricCreate";
    case WorkerMessageType::kMetricUpdate:
      return "MetricUpdate";
    case WorkerMessageType::kMetricValue:
      return "MetricValue";
    case WorkerMessageType::kMetricRelease:
      return "MetricRelease";
    case WorkerMessageType::kIsCancelled:
      return "IsCancelled";
    case WorkerMessageType::kReply:
      return "Reply";
    case WorkerMessageType::kCallReply:
      return "CallReply";
    case WorkerMessageType::kInferResponse:
      return "InferResponse";
  }
  return "unknown";
}

void AppendFrameHeader(std::string& out, const FrameHeader& header) {
  PutLe<uint32_t>(out, kWorkerProtocolMagic);
  PutLe<uint16_t>(out, kWorkerProtocolVersion);
  PutLe<uint16_t>(out, static_cast<uint16_t>(header.type));
  PutLe<uint32_t>(out, header.payload_bytes);
  PutLe<uint32_t>(out, header.request_id);
}

std::string Frame(WorkerMessageType type, uint32_t request_id, std::string_view payload) {
  assert(payload.size() <= std::numeric_limits<uint32_t>::max());
  std::string out;
  out.reserve(kFrameHeaderBytes + payload.size());
  AppendFrameHeader(out, {type, static_cast<uint32_t>(payload.size()), request_id});
  out.append(payload);
  return out;
}

// ----------------------------------------------------------------- messages

std::string EncodeLoad(const LoadRequest& request) {
  std::string out;
  PutString(out, request.model_name);
  PutLe<int64_t>(out, request.version);
  PutString(out, request.model_dir);
  PutString(out, request.config);
  PutLe<uint64_t>(out, request.memory_limit_bytes);
  PutString(out, request.platform);
  PutLe<uint8_t>(out, request.has_config ? 1 : 0);
  PutLe<uint32_t>(out, request.instance_index);
  return out;
}

std::string EncodeExecute(const ExecuteRequest& request) {
  std::string out;
  EncodeExecuteTo(request, out);
  return out;
}

void EncodeExecuteTo(const ExecuteRequest& execute, std::string& out) {
  out.clear();
  PutLe<uint32_t>(out, execute.region);
  PutLe<uint64_t>(out, execute.output_offset);
  PutLe<uint64_t>(out, execute.decoupled_token);
  PutLe<uint32_t>(out, static_cast<uint32_t>(execute.requests.size()));
  for (const ExecuteItem& request : execute.requests) {
    PutString(out, request.id);
    PutLe<uint32_t>(out, static_cast<uint32_t>(request.parameters.size()));
    for (const auto& [key, value] : request.parameters) PutParameter(out, key, value);
    PutTensors(out, request.inputs);
    PutLe<uint32_t>(out, static_cast<uint32_t>(request.outputs.size()));
    for (const auto& name : request.outputs) PutString(out, name);
  }
}

std::string EncodeMailbox(uint64_t bytes) {
  std::string out;
  PutLe<uint64_t>(out, bytes);
  return out;
}

std::string EncodeRegion(const RegionMessage& region) {
  std::string out;
  PutLe<uint32_t>(out, region.id);
  PutLe<uint64_t>(out, region.bytes);
  return out;
}

std::string EncodeLoadReply(const LoadReply& reply) {
  std::string out;
  PutStatus(out, reply.status);
  if (reply.status.ok()) {
    PutString(out, reply.config);
    PutLe<uint8_t>(out, reply.batch_as_list ? 1 : 0);
  }
  return out;
}

std::string EncodeStatusReply(const StatusReply& reply) {
  std::string out;
  PutStatus(out, reply.status);
  return out;
}

std::string EncodeExecuteReply(const ExecuteReply& reply) {
  std::string out;
  EncodeExecuteReplyTo(reply, out);
  return out;
}

void EncodeExecuteReplyTo(const ExecuteReply& reply, std::string& out) {
  out.clear();
  PutStatus(out, reply.status);
  if (reply.status.ok()) {
    PutLe<uint32_t>(out, static_cast<uint32_t>(reply.results.size()));
    for (const ExecuteResult& result : reply.results) {
      PutStatus(out, result.status);
      if (result.status.ok()) PutTensors(out, result.outputs);
    }
    PutLe<uint64_t>(out, reply.input_ns);
    PutLe<uint64_t>(out, reply.output_ns);
  } else {
    PutLe<uint64_t>(out, reply.region_bytes_needed);
  }
}

std::string EncodeStatsReply(const StatsReply& reply) {
  std::string out;
  PutStatus(out, reply.status);
  if (reply.status.ok()) {
    PutLe<uint64_t>(out, reply.stats.resident_bytes);
    PutLe<uint64_t>(out, reply.stats.executions);
  }
  return out;
}

}  // namespace mm
