// The worker protocol's reading side: frame headers and message decoders.
// Every decoder checks each field against the protocol's limits before it
// allocates, and names the message, the item and the field in its errors.
// The writing side is worker_protocol_encode.cc.
#include <algorithm>
#include <bit>
#include <cassert>
#include <cstdio>
#include <limits>
#include <type_traits>
#include <utility>

#include "core/shape.h"
#include "isolation/worker_protocol.h"
#include "isolation/worker_protocol_internal.h"

namespace mm {

namespace worker_protocol_internal {

// Bytes as they may appear inside an error message: printable ASCII kept,
// anything else (newlines a peer could inject into a log, say) as '?'.
std::string Printable(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c < 0x20 || c > 0x7E) c = '?';
  }
  return out;
}

bool IsKnownDataType(uint32_t v) {
  // DataTypeName answers "INVALID" for kInvalid and for every unknown value.
  return v != 0 && v < 256 && DataTypeName(static_cast<DataType>(v)) != "INVALID";
}

bool IsKnownStatusCode(uint32_t v) {
  // StatusCodeName answers "INTERNAL" for kInternal and for every unknown value.
  if (v >= 256) return false;
  const auto code = static_cast<StatusCode>(v);
  return code == StatusCode::kInternal || StatusCodeName(code) != "INTERNAL";
}

// A status code and message; the message must be empty when the code is OK.
Status ReadStatus(Reader& r, Status& out) {
  uint32_t code = 0;
  MM_RETURN_IF_ERROR(r.Int(code, "status code"));
  if (!IsKnownStatusCode(code)) {
    return r.Error("status code " + std::to_string(code) + " is not a known StatusCode");
  }
  std::string message;
  MM_RETURN_IF_ERROR(r.String(message, "status message", 0, kMaxStringBytes));
  if (code == 0 && !message.empty()) {
    return r.Error("status message of " + std::to_string(message.size()) +
                   " bytes with code OK, expected none");
  }
  out = Status(static_cast<StatusCode>(code), std::move(message));
  return OkStatus();
}

// One parameter of request `index`'s list; `p` keeps its buffers.
Status ReadParameter(Reader& r, size_t index, std::pair<std::string, ParameterValue>& p) {
  r.SetContext("parameter", index);
  MM_RETURN_IF_ERROR(r.String(p.first, "key", 1, kMaxParameterKeyBytes));
  r.SetContext("parameter", index, p.first);
  uint8_t kind = 0;
  MM_RETURN_IF_ERROR(r.Int(kind, "kind"));
  switch (kind) {
    case 0: {
      uint8_t b = 0;
      MM_RETURN_IF_ERROR(r.Int(b, "bool value"));
      if (b > 1) return r.Error("bool value " + std::to_string(b) + ", expected 0 or 1");
      p.second = b == 1;
      return OkStatus();
    }
    case 1: {
      int64_t v = 0;
      MM_RETURN_IF_ERROR(r.Int(v, "int64 value"));
      p.second = v;
      return OkStatus();
    }
    case 2: {
      uint64_t bits = 0;
      MM_RETURN_IF_ERROR(r.Int(bits, "double value"));
      p.second = std::bit_cast<double>(bits);
      return OkStatus();
    }
    case 3: {
      // Into the string the pair held, when it held one (its capacity kept).
      if (!std::holds_alternative<std::string>(p.second)) p.second = std::string();
      return r.String(std::get<std::string>(p.second), "string value", 0, kMaxStringBytes);
    }
    default:
      return r.Error("kind " + std::to_string(kind) +
                     ", expected 0 (bool), 1 (int64), 2 (double) or 3 (string)");
  }
}

}  // namespace worker_protocol_internal

namespace {

using namespace worker_protocol_internal;  // NOLINT

// Smallest encodings of a list item, valid or not, used to bound list counts
// before allocating (an invalid item is then reported as itself, not as a
// short list).
constexpr size_t kMinStringBytes = 4;
constexpr size_t kMinTensorBytes = 4 + 4 + 4 + 8 + 8;  // empty name, rank 0
constexpr size_t kMinRequestBytes = 4 + 4 + 4 + 4;     // empty id and lists
constexpr size_t kMinParameterBytes = 4 + 1 + 1;       // empty key, bool
constexpr size_t kMinResultBytes = 4 + 4;              // status, empty message

// `label` is "input" or "output"; `index` its place in the list.
Status ReadTensor(Reader& r, std::string_view label, size_t index, uint64_t region_bytes,
                  ShmTensor& t) {
  r.SetContext(label, index);
  MM_RETURN_IF_ERROR(r.String(t.name, "name", 1, kMaxTensorNameBytes));
  r.SetContext(label, index, t.name);

  uint32_t dtype = 0;
  MM_RETURN_IF_ERROR(r.Int(dtype, "dtype"));
  if (!IsKnownDataType(dtype)) {
    return r.Error("dtype " + std::to_string(dtype) +
                   " is not a known DataType (expected one other than INVALID)");
  }
  t.dtype = static_cast<DataType>(dtype);

  uint32_t rank = 0;
  MM_RETURN_IF_ERROR(r.Count(rank, "rank", kMaxRank, sizeof(int64_t)));
  t.shape.resize(rank);
  for (uint32_t i = 0; i < rank; ++i) {
    t.shape[i] = r.Take<int64_t>();  // Count made sure all rank dims remain
    if (t.shape[i] < 0) {
      return r.Error("dim " + std::to_string(i) + " is " + std::to_string(t.shape[i]) +
                     ", expected >= 0");
    }
  }
  MM_RETURN_IF_ERROR(r.Int(t.offset, "offset"));
  MM_RETURN_IF_ERROR(r.Int(t.bytes, "bytes"));
  if (t.offset > region_bytes || t.bytes > region_bytes - t.offset) {
    return r.Error("offset " + std::to_string(t.offset) + " + bytes " + std::to_string(t.bytes) +
                   " exceed the shared-memory region of " + std::to_string(region_bytes) +
                   " bytes");
  }

  const uint64_t element_bytes = DataTypeSize(t.dtype);
  if (element_bytes == 0) return OkStatus();  // BYTES: any size within the region
  // Element count x element size, computed so that no overflow goes unseen; a
  // zero dim anywhere makes the tensor empty whatever the other dims are.
  uint64_t expected = 0;
  if (std::find(t.shape.begin(), t.shape.end(), 0) == t.shape.end()) {
    expected = element_bytes;
    for (int64_t d : t.shape) {
      const auto ud = static_cast<uint64_t>(d);
      if (expected > std::numeric_limits<uint64_t>::max() / ud) {
        return r.Error("shape " + ShapeToString(t.shape) + " of " +
                       std::string(DataTypeName(t.dtype)) + " needs more than 2^64 bytes");
      }
      expected *= ud;
    }
  }
  if (t.bytes != expected) {
    return r.Error("bytes " + std::to_string(t.bytes) + ", expected " + std::to_string(expected) +
                   " (" + std::to_string(expected / element_bytes) + " elements of " +
                   std::string(DataTypeName(t.dtype)) + " in shape " + ShapeToString(t.shape) +
                   ")");
  }
  return OkStatus();
}

Status ReadTensors(Reader& r, std::string_view label, uint64_t region_bytes,
                   std::vector<ShmTensor>& out) {
  uint32_t n = 0;
  MM_RETURN_IF_ERROR(
      r.Count(n, label == "input" ? "input count" : "output count", kMaxTensors, kMinTensorBytes));
  out.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    MM_RETURN_IF_ERROR(ReadTensor(r, label, i, region_bytes, out[i]));
  }
  r.ClearContext();
  return CheckDistinct(r, label, n, [&](size_t i) -> std::string_view { return out[i].name; });
}

}  // namespace

// ------------------------------------------------------------------- frames

StatusOr<FrameHeader> DecodeFrameHeader(std::span<const std::byte> bytes) {
  if (bytes.size() != kFrameHeaderBytes) {
    return InvalidArgument("worker frame header: " + std::to_string(bytes.size()) +
                           " bytes, expected " + std::to_string(kFrameHeaderBytes));
  }
  Reader r(bytes, "frame");
  uint32_t magic = 0, payload_bytes = 0, request_id = 0;
  uint16_t version = 0, type = 0;
  MM_RETURN_IF_ERROR(r.Int(magic, "magic"));
  MM_RETURN_IF_ERROR(r.Int(version, "version"));
  MM_RETURN_IF_ERROR(r.Int(type, "type"));
  MM_RETURN_IF_ERROR(r.Int(payload_bytes, "payload length"));
  MM_RETURN_IF_ERROR(r.Int(request_id, "request id"));

  char hex[16];
  if (magic != kWorkerProtocolMagic) {
    std::snprintf(hex, sizeof(hex), "0x%08X", magic);
    return InvalidArgument(std::string("worker frame header: magic ") + hex +
                           ", expected 0x4B574D4D (\"MMWK\"): not a worker protocol frame");
  }
  if (version != kWorkerProtocolVersion) {
    return InvalidArgument("worker frame header: protocol version " + std::to_string(version) +
                           ", expected " + std::to_string(kWorkerProtocolVersion) +
                           " (server and worker from different builds?)");
  }
  const auto t = static_cast<WorkerMessageType>(type);
  if (WorkerMessageTypeName(t) == "unknown") {
    return InvalidArgument("worker frame header: message type " + std::to_string(type) +
                           " is unknown (expected 1 to 8, 20 to 27 or 100 to 102)");
  }
  const std::string_view name = WorkerMessageTypeName(t);
  const bool with_tensors = t == WorkerMessageType::kRespond || t == WorkerMessageType::kInfer ||
                            t == WorkerMessageType::kInferResponse;
  const uint32_t max_payload = with_tensors ? kMaxCallPayloadBytes : kMaxPayloadBytes;
  if (payload_bytes > max_payload) {
    return InvalidArgument("worker frame header: " + std::string(name) + " payload length " +
                           std::to_string(payload_bytes) + " exceeds the maximum of " +
                           std::to_string(max_payload));
  }
  const bool empty = t == WorkerMessageType::kUnload || t == WorkerMessageType::kHealth ||
                     t == WorkerMessageType::kStats || t == WorkerMessageType::kCalls;
  if (empty && payload_bytes != 0) {
    return InvalidArgument("worker frame header: " + std::string(name) + " payload length " +
                           std::to_string(payload_bytes) + ", expected 0");
  }
  if (t == WorkerMessageType::kRegion && payload_bytes != 12) {
    return InvalidArgument("worker frame header: Region payload length " +
                           std::to_string(payload_bytes) + ", expected 12");
  }
  if (t == WorkerMessageType::kMailbox && payload_bytes != 8) {
    return InvalidArgument("worker frame header: Mailbox payload length " +
                           std::to_string(payload_bytes) + ", expected 8");
  }
  return FrameHeader{t, payload_bytes, request_id};
}

// ----------------------------------------------------------------- messages

StatusOr<LoadRequest> DecodeLoad(std::span<const std::byte> payload) {
  Reader r(payload, "Load");
  LoadRequest q;
  MM_RETURN_IF_ERROR(r.String(q.model_name, "model_name", 1, kMaxStringBytes));
  MM_RETURN_IF_ERROR(r.Int(q.version, "version"));
  if (q.version < 1) {
    return r.Error("version " + std::to_string(q.version) + ", expected >= 1");
  }
  MM_RETURN_IF_ERROR(r.String(q.model_dir, "model_dir", 1, kMaxModelDirBytes));
  if (q.model_dir.find('\0') != std::string::npos) {
    return r.Error("model_dir contains a NUL byte");
  }
  MM_RETURN_IF_ERROR(r.String(q.config, "config", 0, kMaxConfigBytes));
  MM_RETURN_IF_ERROR(r.Int(q.memory_limit_bytes, "memory_limit_bytes"));
  MM_RETURN_IF_ERROR(r.String(q.platform, "platform", 0, kMaxPlatformBytes));
  uint8_t has_config = 0;
  MM_RETURN_IF_ERROR(r.Int(has_config, "has_config"));
  if (has_config > 1) {
    return r.Error("has_config " + std::to_string(has_config) + ", expected 0 or 1");
  }
  q.has_config = has_config == 1;
  MM_RETURN_IF_ERROR(r.Int(q.instance_index, "instance_index"));
  MM_RETURN_IF_ERROR(r.Finish());
  return q;
}

namespace {

Status ReadExecuteItem(Reader& r, size_t index, uint64_t region_bytes, ExecuteItem& q) {
  r.SetContext("request", index);
  MM_RETURN_IF_ERROR(r.String(q.id, "id", 0, kMaxStringBytes));
  uint32_t n = 0;
  MM_RETURN_IF_ERROR(r.Count(n, "parameter count", kMaxParameters, kMinParameterBytes));
  q.parameters.resize(n);
  for (uint32_t i = 0; i < n; ++i) MM_RETURN_IF_ERROR(ReadParameter(r, i, q.parameters[i]));
  r.ClearContext();
  MM_RETURN_IF_ERROR(CheckDistinct(
      r, "parameter", n, [&](size_t i) -> std::string_view { return q.parameters[i].first; }));
  MM_RETURN_IF_ERROR(ReadTensors(r, "input", region_bytes, q.inputs));
  MM_RETURN_IF_ERROR(r.Count(n, "output name count", kMaxTensors, kMinStringBytes));
  q.outputs.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    r.SetContext("output name", i);
    MM_RETURN_IF_ERROR(r.String(q.outputs[i], "value", 1, kMaxTensorNameBytes));
  }
  r.ClearContext();
  return CheckDistinct(r, "output name", n,
                       [&](size_t i) -> std::string_view { return q.outputs[i]; });
}

}  // namespace

StatusOr<ExecuteRequest> DecodeExecute(std::span<const std::byte> payload,
                                       std::span<const uint64_t> region_sizes) {
  ExecuteRequest q;
  MM_RETURN_IF_ERROR(DecodeExecuteInto(payload, region_sizes, q));
  return q;
}

Status DecodeExecuteInto(std::span<const std::byte> payload, std::span<const uint64_t> region_sizes,
                         ExecuteRequest& q) {
  Reader r(payload, "Execute");
  MM_RETURN_IF_ERROR(r.Int(q.region, "region"));
  if (q.region >= region_sizes.size() || region_sizes[q.region] == 0) {
    return r.Error("region " + std::to_string(q.region) + " is not mapped (" +
                   std::to_string(region_sizes.size()) + " region slots)");
  }
  const uint64_t region_bytes = region_sizes[q.region];
  MM_RETURN_IF_ERROR(r.Int(q.output_offset, "output_offset"));
  if (q.output_offset > region_bytes) {
    return r.Error("output_offset " + std::to_string(q.output_offset) +
                   " exceeds the shared-memory region of " + std::to_string(region_bytes) +
                   " bytes");
  }
  MM_RETURN_IF_ERROR(r.Int(q.decoupled_token, "decoupled_token"));
  uint32_t n = 0;
  MM_RETURN_IF_ERROR(r.Count(n, "request count", kMaxExecuteRequests, kMinRequestBytes));
  if (n == 0) return r.Error("request count 0, expected at least 1");
  q.requests.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    // Errors inside a request name it: "request 2: input 0 'x': ..." reads
    // as the innermost context only, so the request's index leads the field.
    Status s = ReadExecuteItem(r, i, region_bytes, q.requests[i]);
    if (!s.ok()) {
      if (n == 1) return s;
      return Status(s.code(), s.message() + " (in request " + std::to_string(i) + ")");
    }
  }
  return r.Finish();
}

StatusOr<uint64_t> DecodeMailbox(std::span<const std::byte> payload) {
  Reader r(payload, "Mailbox");
  uint64_t bytes = 0;
  MM_RETURN_IF_ERROR(r.Int(bytes, "bytes"));
  if (bytes == 0) return r.Error("bytes 0, expected a mailbox of at least 1 byte");
  MM_RETURN_IF_ERROR(r.Finish());
  return bytes;
}

StatusOr<RegionMessage> DecodeRegion(std::span<const std::byte> payload) {
  Reader r(payload, "Region");
  RegionMessage region;
  MM_RETURN_IF_ERROR(r.Int(region.id, "id"));
  if (region.id >= kMaxRegions) {
    return r.Error("id " + std::to_string(region.id) + ", expected below " +
                   std::to_string(kMaxRegions));
  }
  MM_RETURN_IF_ERROR(r.Int(region.bytes, "bytes"));
  if (region.bytes == 0) return r.Error("bytes 0, expected a region of at least 1 byte");
  MM_RETURN_IF_ERROR(r.Finish());
  return region;
}

StatusOr<LoadReply> DecodeLoadReply(std::span<const std::byte> payload) {
  Reader r(payload, "Load reply");
  LoadReply reply;
  MM_RETURN_IF_ERROR(ReadStatus(r, reply.status));
  if (reply.status.ok()) {
    MM_RETURN_IF_ERROR(r.String(reply.config, "config", 0, kMaxConfigBytes));
    uint8_t as_list = 0;
    MM_RETURN_IF_ERROR(r.Int(as_list, "batch_as_list"));
    if (as_list > 1) {
      return r.Error("batch_as_list " + std::to_string(as_list) + ", expected 0 or 1");
    }
    reply.batch_as_list = as_list == 1;
  }
  MM_RETURN_IF_ERROR(r.Finish());
  return reply;
}

StatusOr<StatusReply> DecodeStatusReply(std::span<const std::byte> payload) {
  Reader r(payload, "Reply");
  StatusReply reply;
  MM_RETURN_IF_ERROR(ReadStatus(r, reply.status));
  MM_RETURN_IF_ERROR(r.Finish());
  return reply;
}

StatusOr<ExecuteReply> DecodeExecuteReply(std::span<const std::byte> payload,
                                          uint64_t region_bytes) {
  ExecuteReply reply;
  MM_RETURN_IF_ERROR(DecodeExecuteReplyInto(payload, region_bytes, reply));
  return reply;
}

Status DecodeExecuteReplyInto(std::span<const std::byte> payload, uint64_t region_bytes,
                              ExecuteReply& reply) {
  Reader r(payload, "Execute reply");
  MM_RETURN_IF_ERROR(ReadStatus(r, reply.status));
  if (reply.status.ok()) {
    uint32_t n = 0;
    MM_RETURN_IF_ERROR(r.Count(n, "result count", kMaxExecuteRequests, kMinResultBytes));
    if (n == 0) return r.Error("result count 0, expected at least 1");
    reply.results.resize(n);
    for (uint32_t i = 0; i < n; ++i) {
      ExecuteResult& result = reply.results[i];
      r.SetContext("result", i);
      MM_RETURN_IF_ERROR(ReadStatus(r, result.status));
      if (result.status.ok()) {
        Status s = ReadTensors(r, "output", region_bytes, result.outputs);
        if (!s.ok()) {
          if (n == 1) return s;
          return Status(s.code(), s.message() + " (in result " + std::to_string(i) + ")");
        }
      } else {
        result.outputs.clear();
      }
    }
    r.ClearContext();
    MM_RETURN_IF_ERROR(r.Int(reply.input_ns, "input_ns"));
    MM_RETURN_IF_ERROR(r.Int(reply.output_ns, "output_ns"));
    reply.region_bytes_needed = 0;
  } else {
    reply.results.clear();
    reply.input_ns = reply.output_ns = 0;
    MM_RETURN_IF_ERROR(r.Int(reply.region_bytes_needed, "region_bytes_needed"));
  }
  return r.Finish();
}

StatusOr<StatsReply> DecodeStatsReply(std::span<const std::byte> payload) {
  Reader r(payload, "Stats reply");
  StatsReply reply;
  MM_RETURN_IF_ERROR(ReadStatus(r, reply.status));
  if (reply.status.ok()) {
    MM_RETURN_IF_ERROR(r.Int(reply.stats.resident_bytes, "resident_bytes"));
    MM_RETURN_IF_ERROR(r.Int(reply.stats.executions, "executions"));
  }
  MM_RETURN_IF_ERROR(r.Finish());
  return reply;
}

}  // namespace mm
