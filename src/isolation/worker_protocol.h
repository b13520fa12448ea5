// The wire protocol between the server and a model's worker process, v4.
//
// A worker runs one model version in its own process. The server talks to it
// over a Unix socket (control messages, this codec) and a shared-memory region
// (tensor bytes, located by ShmTensor). On the control socket the server
// speaks and the worker answers; a second socket, the call socket (v4: Calls
// below; its messages are in worker_calls_protocol.h), is where the worker
// speaks first: decoupled responses, BLS calls, custom metrics. This file is only the codec: pure
// functions over bytes, no I/O, no threads, no exceptions; every function may
// run concurrently with any other.
//
// Both ends are the same binary, yet each decodes what the other sends as
// strictly as client input: a crashed or compromised worker must not be able
// to make the server read out of bounds, allocate unboundedly or misplace
// tensor bytes.
//
// Frame. Every message is a fixed 16-byte header, then the payload:
//   offset 0  u32 magic          kWorkerProtocolMagic, 0x4B574D4D ("MMWK" in memory)
//   offset 4  u16 version        kWorkerProtocolVersion (4)
//   offset 6  u16 type           WorkerMessageType
//   offset 8  u32 payload bytes  <= kMaxPayloadBytes (kMaxCallPayloadBytes for the
//                                call socket's messages with tensors); 0 for Unload,
//                                Health, Stats, Calls
//   offset 12 u32 request id     chosen by the server, echoed in the reply (on
//                                the call socket: the call id, chosen by the worker)
//
// Payload encoding. Integers are little-endian and fixed-width. A string is a
// u32 length then its bytes (at most kMaxStringBytes unless its field says
// otherwise). A list is a u32 count then its items. Payloads:
//   Load (1)       string model_name (1..kMaxStringBytes)
//                  i64    version (>= 1)
//                  string model_dir (1..kMaxModelDirBytes, no NUL byte)
//                  string config (0..kMaxConfigBytes; serialized ModelConfig, opaque here)
//                  u64    memory_limit_bytes (0: none): the worker caps its own
//                         address space at its size now plus this (RLIMIT_AS)
//                  string platform (0..kMaxPlatformBytes: which backend loads it)
//                  u8     has_config (0 or 1: whether config.pbtxt existed)
//                  u32    instance_index (v4): which instance of the model version
//                         this worker runs (0-based, across its instance groups)
//   Unload (2)     empty
//   Execute (3)    u32 region (< kMaxRegions, mapped): the region the tensors lie in
//                  u64 output_offset (<= the region's size): the worker writes the
//                         outputs at or after it, the inputs lie before it
//                  u64 decoupled_token (v4; 0: not decoupled): non-zero for a
//                         decoupled model's batch: the worker answers each
//                         request with Respond messages on the call socket
//                         naming this token and the request's index, and
//                         replies to the Execute (results with no outputs)
//                         once the model's execute returned
//                  list<Request> requests (1..kMaxExecuteRequests): a batch as the
//                         list of its requests (v3; v2 carried one request's
//                         inputs and outputs here). One request is a list of one.
//   Request        string id (0..kMaxStringBytes: the request's id)
//                  list<Parameter> parameters (0..kMaxParameters, distinct keys)
//                  list<ShmTensor> inputs (0..kMaxTensors, distinct names)
//                  list<string> outputs (0..kMaxTensors names of 1..kMaxTensorNameBytes,
//                                        distinct; empty: every output)
//   Parameter      string key (1..kMaxParameterKeyBytes)
//                  u8 kind: 0 bool (then u8 0 or 1), 1 int64 (then i64),
//                           2 double (then u64, its IEEE-754 bits),
//                           3 string (then string 0..kMaxStringBytes)
//   Health (4)     empty
//   Stats (5)      empty
//   Region (6)     u32 id (< kMaxRegions), u64 bytes (> 0): the frame carries a
//                  descriptor (SCM_RIGHTS) of a sealed memfd of exactly that
//                  size, shared-memory region `id` for the Executes that name
//                  it (replacing any earlier region with that id). The server
//                  keeps several, so that a response can point into the region
//                  its outputs were written to while the next batch uses
//                  another. No reply.
//   Mailbox (7)    u64 bytes: the frame carries a descriptor of a mailbox
//                  (mailbox.h) of that size. Reply: a StatusReply on the
//                  socket; after an OK, every request comes through the
//                  mailbox, whose slots hold these same payloads (Region
//                  frames, and messages too large for a slot, still travel
//                  on the socket, announced by the request that follows).
//   Calls (8)      empty: the frame carries a descriptor, the worker's end of
//                  the call socket (v4). Sent after Health, before Load (a
//                  model may create metrics in its initialize). Reply: a
//                  StatusReply.
//   Reply (100)    status, then a body only when the status is OK:
//                    reply to Load: string config (0..kMaxConfigBytes; the complete
//                                   serialized ModelConfig), u8 batch_as_list
//                                   (0 or 1: LoadedModel::batch_as_list of the
//                                   worker's backend; v3)          (LoadReply)
//                    reply to Unload, Health: no body              (StatusReply)
//                    reply to Execute: list<Result> results (1..kMaxExecuteRequests,
//                                      one per request of the Execute, in its
//                                      order; v3), u64 input_ns,
//                                      u64 output_ns             (ExecuteReply)
//   Result         status (that request's own), then only when it is OK:
//                  list<ShmTensor> outputs (0..kMaxTensors, distinct names; v3)
//                    reply to Stats: u64 resident_bytes, u64 executions (StatsReply)
//                  One exception: a reply to Execute with a non-OK status carries
//                  u64 region_bytes_needed, non-zero when the outputs did not fit
//                  in the region: the server maps one at least that large and
//                  sends the Execute again.
//                  The frame does not say which request a Reply answers; the
//                  server knows from the request id and picks the decoder.
//   status         u32 code (a StatusCode value), string message (empty when OK)
//   ShmTensor      string name (1..kMaxTensorNameBytes)
//                  u32    dtype (a DataType other than kInvalid)
//                  u32    rank (0..kMaxRank), then rank x i64 dims (each >= 0)
//                  u64    offset, u64 bytes: the tensor's bytes in the shared-memory
//                         region; offset + bytes <= the region's size. For a
//                         fixed-size dtype bytes == element count x DataTypeSize;
//                         for BYTES (serialized, variable length) any size.
//
// Every decoder consumes its payload exactly (trailing bytes are an error),
// checks every length against the bytes that remain before allocating, and
// returns INVALID_ARGUMENT naming the message, the field and what was
// expected, e.g. "worker message Execute: input 2 'x': rank 40 exceeds the
// maximum of 16". On failure nothing is returned but the Status.
//
// Encoders do not validate: they write what they are given, and a message
// that breaks a limit above is rejected by the peer's decoder, never altered
// on the way (one exception: a status message is cut to kMaxStringBytes, so a
// long backend error still gets through). A message within the limits always
// fits in kMaxPayloadBytes, but for an Execute or its reply with several
// requests: the sender checks the encoded size (a batch too large to
// describe fails, the worker untouched). Encoding is canonical: re-encoding what a decoder
// returned gives back the bytes it decoded.
//
// Senders check first (Check*Fits): what the server accepts in its own
// process may break a limit here (a model whose tensors have 65 dims, say),
// and such a request is refused by the sender with a clear error, never sent
// for the peer to reject (the peer then ends the conversation: a broken
// channel, and a worker restart).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/data_type.h"
#include "core/status.h"
#include "core/tensor.h"

namespace mm {

inline constexpr uint32_t kWorkerProtocolMagic = 0x4B574D4D;
inline constexpr uint16_t kWorkerProtocolVersion = 4;
inline constexpr size_t kFrameHeaderBytes = 16;
inline constexpr uint32_t kMaxPayloadBytes = 16u << 20;
// The call socket's messages that carry tensor bytes inline (Respond, Infer,
// InferResponse: worker_calls_protocol.h).
inline constexpr uint32_t kMaxCallPayloadBytes = 64u << 20;
inline constexpr size_t kMaxStringBytes = 64u << 10;
inline constexpr size_t kMaxModelDirBytes = 4096;
inline constexpr size_t kMaxConfigBytes = 4u << 20;
inline constexpr size_t kMaxTensorNameBytes = 4096;
inline constexpr size_t kMaxPlatformBytes = 256;
inline constexpr size_t kMaxRank = 64;
inline constexpr size_t kMaxTensors = 1024;          // per list: inputs, outputs, output names
inline constexpr uint32_t kMaxRegions = 8;           // regions a worker maps at once
inline constexpr size_t kMaxExecuteRequests = 1024;  // requests in one Execute
inline constexpr size_t kMaxParameters = 256;        // parameters of one request
inline constexpr size_t kMaxParameterKeyBytes = 1024;

enum class WorkerMessageType : uint16_t {
  kLoad = 1,
  kUnload = 2,
  kExecute = 3,
  kHealth = 4,
  kStats = 5,
  kRegion = 6,
  kMailbox = 7,
  kCalls = 8,
  // On the call socket, worker to server (worker_calls_protocol.h).
  kRespond = 20,
  kInfer = 21,
  kModelReady = 22,
  kMetricCreate = 23,
  kMetricUpdate = 24,
  kMetricValue = 25,
  kMetricRelease = 26,
  kIsCancelled = 27,
  kReply = 100,
  // On the call socket, server to worker.
  kCallReply = 101,
  kInferResponse = 102,
};

// "Load", "Execute", ... ("unknown" for a value outside the enum).
std::string_view WorkerMessageTypeName(WorkerMessageType type);

struct FrameHeader {
  WorkerMessageType type = WorkerMessageType::kReply;
  uint32_t payload_bytes = 0;
  uint32_t request_id = 0;
};

// Appends the 16 header bytes (magic and version included) to `out`.
void AppendFrameHeader(std::string& out, const FrameHeader& header);

// Reads a header from exactly kFrameHeaderBytes bytes. Rejects a wrong magic,
// a version other than kWorkerProtocolVersion (saying which was expected), an
// unknown type, a payload over kMaxPayloadBytes (kMaxCallPayloadBytes for
// Respond, Infer, InferResponse) and a non-empty payload on Unload, Health,
// Stats or Calls.
StatusOr<FrameHeader> DecodeFrameHeader(std::span<const std::byte> header);

// Header + payload, ready to write to the socket.
std::string Frame(WorkerMessageType type, uint32_t request_id, std::string_view payload);

// A tensor whose bytes lie in the shared-memory region at [offset, offset + bytes).
struct ShmTensor {
  std::string name;
  DataType dtype = DataType::kInvalid;
  std::vector<int64_t> shape;
  uint64_t offset = 0;
  uint64_t bytes = 0;

  bool operator==(const ShmTensor&) const = default;
};

struct LoadRequest {
  std::string model_name;
  int64_t version = 0;
  std::string model_dir;
  std::string config;  // serialized ModelConfig protobuf
  uint64_t memory_limit_bytes = 0;
  std::string platform;
  bool has_config = false;
  uint32_t instance_index = 0;

  bool operator==(const LoadRequest&) const = default;
};

// One request of an Execute. Parameters are a list (not a map) so that a
// decode into a reused ExecuteRequest keeps their buffers.
struct ExecuteItem {
  std::string id;
  std::vector<std::pair<std::string, ParameterValue>> parameters;  // distinct keys
  std::vector<ShmTensor> inputs;
  std::vector<std::string> outputs;  // requested output names; empty: all

  bool operator==(const ExecuteItem&) const = default;
};

struct ExecuteRequest {
  uint32_t region = 0;
  uint64_t output_offset = 0;
  uint64_t decoupled_token = 0;       // 0: not decoupled
  std::vector<ExecuteItem> requests;  // at least one

  bool operator==(const ExecuteRequest&) const = default;
};

struct LoadReply {
  Status status;
  std::string config;          // only when status is OK; not encoded otherwise
  bool batch_as_list = false;  // only when status is OK; not encoded otherwise
};

// The reply to Unload and Health.
struct StatusReply {
  Status status;
};

// One request's answer: its own status, and its outputs when that is OK.
struct ExecuteResult {
  Status status;
  std::vector<ShmTensor> outputs;  // only when status is OK; not encoded otherwise
};

struct ExecuteReply {
  // The whole Execute's; a request's own failure is in its result.
  Status status;
  // Only when status is OK: one per request of the Execute, in its order
  // (the server checks the count). Not encoded otherwise.
  std::vector<ExecuteResult> results;
  uint64_t region_bytes_needed = 0;  // only when status is not OK
  // Only when status is OK: the worker's own stage times (ns), preparing the
  // inputs and taking the outputs (into the region); the rest of its time
  // is the model's run (ExecutionTiming).
  uint64_t input_ns = 0;
  uint64_t output_ns = 0;
};

struct WorkerStats {
  uint64_t resident_bytes = 0;
  uint64_t executions = 0;

  bool operator==(const WorkerStats&) const = default;
};

struct StatsReply {
  Status status;
  WorkerStats stats;  // only when status is OK; not encoded otherwise
};

// Each Encode returns a payload (no header); each Decode takes one. The
// decoders of messages carrying tensors take the size of the shared-memory
// region the tensors must lie in.
std::string EncodeLoad(const LoadRequest& request);
StatusOr<LoadRequest> DecodeLoad(std::span<const std::byte> payload);

std::string EncodeExecute(const ExecuteRequest& request);
// The same into `out` (replacing what it held, keeping its capacity).
void EncodeExecuteTo(const ExecuteRequest& request, std::string& out);
// `region_bytes[id]` is the size of region `id`, 0 when none is mapped.
StatusOr<ExecuteRequest> DecodeExecute(std::span<const std::byte> payload,
                                       std::span<const uint64_t> region_bytes);
// The same into `out`, reusing what it holds (a per-batch decode allocates
// nothing once the buffers have grown); on failure `out` holds garbage.
Status DecodeExecuteInto(std::span<const std::byte> payload, std::span<const uint64_t> region_bytes,
                         ExecuteRequest& out);

struct RegionMessage {
  uint32_t id = 0;
  uint64_t bytes = 0;

  bool operator==(const RegionMessage&) const = default;
};
std::string EncodeRegion(const RegionMessage& region);
StatusOr<RegionMessage> DecodeRegion(std::span<const std::byte> payload);

// A Mailbox message: the mailbox's size in bytes (> 0).
std::string EncodeMailbox(uint64_t bytes);
StatusOr<uint64_t> DecodeMailbox(std::span<const std::byte> payload);

std::string EncodeLoadReply(const LoadReply& reply);
StatusOr<LoadReply> DecodeLoadReply(std::span<const std::byte> payload);

std::string EncodeStatusReply(const StatusReply& reply);
StatusOr<StatusReply> DecodeStatusReply(std::span<const std::byte> payload);

std::string EncodeExecuteReply(const ExecuteReply& reply);
void EncodeExecuteReplyTo(const ExecuteReply& reply, std::string& out);  // as EncodeExecuteTo
StatusOr<ExecuteReply> DecodeExecuteReply(std::span<const std::byte> payload,
                                          uint64_t region_bytes);
Status DecodeExecuteReplyInto(std::span<const std::byte> payload, uint64_t region_bytes,
                              ExecuteReply& out);  // as DecodeExecuteInto

std::string EncodeStatsReply(const StatsReply& reply);
StatusOr<StatsReply> DecodeStatsReply(std::span<const std::byte> payload);

// What a sender checks before it encodes: OK when the decoder will accept
// the message's lists, names, ids, parameters and ranks (offsets and bytes are the sender's
// own layout, not checked here); else INVALID_ARGUMENT naming the tensor and
// the limit, e.g. "input 'x' has 65 dims; a model in a worker process takes
// tensors of at most 64 dims". Cheap: no allocation unless there is an error.
Status CheckExecuteFits(const ExecuteRequest& request);
Status CheckExecuteItemFits(const ExecuteItem& request);  // one request of it
Status CheckExecuteReplyFits(const ExecuteReply& reply);
Status CheckExecuteResultFits(const ExecuteResult& result);  // one result of it
Status CheckLoadFits(const LoadRequest& request);
Status CheckLoadReplyFits(const LoadReply& reply);

}  // namespace mm
