// The call socket's messages (worker protocol v4): what a worker says first
// (decoupled responses, BLS calls, custom metrics) and what the server
// answers. Frames are worker_protocol.h's (the same 16-byte header; its
// request id is the call id, chosen by the worker, echoed by the server);
// this file is only the codec of their payloads: pure functions over bytes,
// no I/O, no threads, no exceptions; every function may run concurrently with
// any other. The server decodes what a worker sends as strictly as client
// input (a worker runs tenant code).
//
// Encoding as worker_protocol.h (little-endian, u32-length strings, u32-count
// lists, Parameter and status as there). Tensor bytes travel inline, so that
// a receiver's tensors are views of the frame it read (no copy, and no shared
// region the sender could still write while the receiver reads):
//   CallTensor     string name (1..kMaxTensorNameBytes)
//                  u32 dtype (a DataType other than kInvalid)
//                  u32 rank (0..kMaxRank), rank x i64 dims (each >= 0)
//                  u64 bytes, then zero bytes up to a payload offset that is
//                      a multiple of kTensorAlignment (8: a receiver's tensors
//                      are aligned views of its frame buffer), then the
//                      bytes: element count x DataTypeSize
//                      for a fixed-size dtype; for BYTES, exactly element
//                      count items of u32 length + bytes
//   ResponseBody   status, then only when it is OK:
//                    u8 has_response (0: the final flag alone, only when final)
//                    when has_response: list<Parameter> parameters
//                      (0..kMaxParameters, distinct keys),
//                      list<CallTensor> outputs (0..kMaxTensors, distinct names)
// Worker to server:
//   Respond (20)       u64 token (non-zero: an Execute's decoupled_token),
//                      u32 index (the request's place in that Execute),
//                      u8 final (0 or 1), ResponseBody. No reply.
//   Infer (21)         string model_name (1..kMaxStringBytes), string
//                      model_version (0..kMaxStringBytes; empty: the newest),
//                      string request_id (0..kMaxStringBytes),
//                      list<Parameter> parameters, list<CallTensor> inputs,
//                      list<string> outputs (requested names, distinct; empty:
//                      all). Answered by InferResponse messages with the same
//                      call id, the last one final.
//   ModelReady (22)    string name (1..), string version (0..). Reply:
//                      CallReply, body u8 ready (0 or 1).
//   MetricCreate (23)  string family (1..kMaxMetricNameBytes), string
//                      description (0..kMaxStringBytes), u8 kind (MetricKind),
//                      list<(string name, string value)> labels
//                      (0..kMaxMetricLabels, distinct names of
//                      1..kMaxMetricNameBytes, values 0..kMaxStringBytes),
//                      list<f64> buckets (0..kMaxMetricBuckets). Reply:
//                      CallReply, body u64 id.
//   MetricUpdate (24)  u64 id, u8 op (MetricOp), f64 value. No reply.
//   MetricValue (25)   u64 id. Reply: CallReply, body f64.
//   MetricRelease (26) u64 id. No reply.
//   IsCancelled (27)   u64 token, u32 index (a decoupled request, as Respond
//                      names it): whether its client went away
//                      (ResponseSender::cancelled). Reply: CallReply, body u8.
// Server to worker:
//   CallReply (101)    status, then only when it is OK: string body
//                      (0..kMaxStringBytes; the call's, as above)
//   InferResponse (102) u8 final (0 or 1), ResponseBody
// f64 is the u64 of its IEEE-754 bits. Every decoder consumes its payload
// exactly and names the message and field in its INVALID_ARGUMENT; encoding
// is canonical (re-encoding a decoded message gives back its bytes).
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "backends/model_host.h"
#include "core/status.h"
#include "core/tensor.h"
#include "isolation/worker_protocol.h"

namespace mm {

inline constexpr size_t kMaxMetricNameBytes = 1024;
inline constexpr size_t kMaxMetricLabels = 64;
inline constexpr size_t kMaxMetricBuckets = 1024;
// Where a tensor's bytes start in a payload (a multiple of this), so that
// views of a received frame (whose buffer is allocated aligned) are aligned.
inline constexpr size_t kTensorAlignment = 8;

// A tensor whose bytes are a view (into the frame it was decoded from, or
// into the sender's memory while it encodes).
struct CallTensor {
  std::string name;
  DataType dtype = DataType::kInvalid;
  std::vector<int64_t> shape;
  std::span<const std::byte> data;

  bool operator==(const CallTensor& o) const;
};

using CallParameters = std::vector<std::pair<std::string, ParameterValue>>;

struct ResponseBody {
  Status status;
  bool has_response = false;  // only when status is OK
  CallParameters parameters;  // only with a response
  std::vector<CallTensor> outputs;

  bool operator==(const ResponseBody& o) const;
};

struct RespondMessage {
  uint64_t token = 0;
  uint32_t index = 0;
  bool final = false;
  ResponseBody body;

  bool operator==(const RespondMessage&) const = default;
};

struct InferCallMessage {
  std::string model_name;
  std::string model_version;
  std::string request_id;
  CallParameters parameters;
  std::vector<CallTensor> inputs;
  std::vector<std::string> outputs;

  bool operator==(const InferCallMessage&) const = default;
};

struct InferResponseMessage {
  bool final = false;
  ResponseBody body;

  bool operator==(const InferResponseMessage&) const = default;
};

struct ModelReadyMessage {
  std::string name;
  std::string version;

  bool operator==(const ModelReadyMessage&) const = default;
};

struct MetricUpdateMessage {
  uint64_t id = 0;
  MetricOp op = MetricOp::kIncrement;
  double value = 0;
};

struct CallReply {
  Status status;
  std::string body;  // only when status is OK
};

// A decoupled request: its Execute's token and its index in it.
struct RequestRef {
  uint64_t token = 0;
  uint32_t index = 0;

  bool operator==(const RequestRef&) const = default;
};

// An encoded payload whose tensor bytes stay where they are: `bytes` holds
// every other field, and `inserts[i].second` goes at offset
// `inserts[i].first` of it (offsets ascending), so that a writer sends
// tensors from their own memory (writev) without copying them.
struct WireParts {
  std::string bytes;
  std::vector<std::pair<size_t, std::span<const std::byte>>> inserts;

  size_t size() const;
  // The iovecs of the payload, in order (into `bytes` and the inserts).
  void AppendIovecs(std::vector<iovec>& out) const;
  // The whole payload in one buffer (tests, fuzzing).
  std::string Flatten() const;
};

// Tensor-carrying messages: the encoders fill `out` (replacing what it held).
void EncodeRespond(const RespondMessage& message, WireParts& out);
StatusOr<RespondMessage> DecodeRespond(std::span<const std::byte> payload);

void EncodeInferCall(const InferCallMessage& message, WireParts& out);
StatusOr<InferCallMessage> DecodeInferCall(std::span<const std::byte> payload);

void EncodeInferResponse(const InferResponseMessage& message, WireParts& out);
StatusOr<InferResponseMessage> DecodeInferResponse(std::span<const std::byte> payload);

std::string EncodeModelReady(const ModelReadyMessage& message);
StatusOr<ModelReadyMessage> DecodeModelReady(std::span<const std::byte> payload);

std::string EncodeMetricCreate(const MetricSpec& spec);
StatusOr<MetricSpec> DecodeMetricCreate(std::span<const std::byte> payload);

std::string EncodeMetricUpdate(const MetricUpdateMessage& message);
StatusOr<MetricUpdateMessage> DecodeMetricUpdate(std::span<const std::byte> payload);

// MetricValue and MetricRelease: a metric id.
std::string EncodeMetricId(uint64_t id);
StatusOr<uint64_t> DecodeMetricId(std::span<const std::byte> payload, std::string_view message);

std::string EncodeCallReply(const CallReply& reply);
StatusOr<CallReply> DecodeCallReply(std::span<const std::byte> payload);

// IsCancelled.
std::string EncodeRequestRef(const RequestRef& ref);
StatusOr<RequestRef> DecodeRequestRef(std::span<const std::byte> payload);

// CallReply bodies: u8 (0/1), u64, f64.
std::string EncodeBoolBody(bool v);
StatusOr<bool> DecodeBoolBody(std::string_view body);
std::string EncodeU64Body(uint64_t v);
StatusOr<uint64_t> DecodeU64Body(std::string_view body);
std::string EncodeF64Body(double v);
StatusOr<double> DecodeF64Body(std::string_view body);

// What a sender checks before it encodes (as worker_protocol.h's Check*):
// OK when the decoder will take the message, else INVALID_ARGUMENT saying
// which tensor, name or size breaks which limit ("output 'x' has 65 dims; ...").
// The size of the whole frame is checked too (against kMaxCallPayloadBytes).
Status CheckResponseBodyFits(const ResponseBody& body);
Status CheckInferCallFits(const InferCallMessage& message);
Status CheckMetricSpecFits(const MetricSpec& spec);

// The tensors of a request or response as CallTensors viewing their bytes.
void ToCallTensors(std::span<const Tensor> tensors, std::vector<CallTensor>& out);
// And back: Tensors viewing the same bytes, held by `owner`.
void FromCallTensors(std::span<const CallTensor> tensors, const std::shared_ptr<const void>& owner,
                     std::vector<Tensor>& out);

}  // namespace mm
