#include "isolation/worker_calls_protocol.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "core/shape.h"
#include "isolation/worker_protocol_internal.h"

namespace mm {

using namespace worker_protocol_internal;  // NOLINT

namespace {

constexpr size_t kMinTensorBytes = 4 + 4 + 4 + 8;  // empty name, rank 0, no bytes
constexpr size_t kMinParameterBytes = 4 + 1 + 1;   // empty key, bool
constexpr size_t kMinStringBytes = 4;
constexpr size_t kMinLabelBytes = 8;

// ------------------------------------------------------------------ writing

void PutF64(std::string& out, double v) { PutLe<uint64_t>(out, std::bit_cast<uint64_t>(v)); }

void PutParameters(std::string& out, const CallParameters& parameters) {
  PutLe<uint32_t>(out, static_cast<uint32_t>(parameters.size()));
  for (const auto& [key, value] : parameters) PutParameter(out, key, value);
}

// Zero bytes up to the next multiple of kTensorAlignment of `position`.
size_t PadTo(size_t position) {
  return (kTensorAlignment - position % kTensorAlignment) % kTensorAlignment;
}

void PutCallTensors(WireParts& out, const std::vector<CallTensor>& tensors) {
  PutLe<uint32_t>(out.bytes, static_cast<uint32_t>(tensors.size()));
  size_t inserted = 0;  // bytes of the inserts so far (their place in the payload)
  for (const auto& insert : out.inserts) inserted += insert.second.size();
  for (const CallTensor& t : tensors) {
    PutString(out.bytes, t.name);
    PutLe<uint32_t>(out.bytes, static_cast<uint32_t>(t.dtype));
    PutLe<uint32_t>(out.bytes, static_cast<uint32_t>(t.shape.size()));
    for (int64_t d : t.shape) PutLe<int64_t>(out.bytes, d);
    PutLe<uint64_t>(out.bytes, t.data.size());
    out.bytes.append(PadTo(out.bytes.size() + inserted), '\0');
    if (!t.data.empty()) {
      out.inserts.emplace_back(out.bytes.size(), t.data);
      inserted += t.data.size();
    }
  }
}

void PutBody(WireParts& out, const ResponseBody& body) {
  PutStatus(out.bytes, body.status);
  if (!body.status.ok()) return;
  PutLe<uint8_t>(out.bytes, body.has_response ? 1 : 0);
  if (!body.has_response) return;
  PutParameters(out.bytes, body.parameters);
  PutCallTensors(out, body.outputs);
}

void Reset(WireParts& out) {
  out.bytes.clear();
  out.inserts.clear();
}

// ------------------------------------------------------------------ reading

Status ReadBool(Reader& r, bool& v, std::string_view field) {
  uint8_t b = 0;
  MM_RETURN_IF_ERROR(r.Int(b, field));
  if (b > 1) return r.Error(std::string(field) + " " + std::to_string(b) + ", expected 0 or 1");
  v = b == 1;
  return OkStatus();
}

Status ReadParameters(Reader& r, CallParameters& out) {
  uint32_t n = 0;
  MM_RETURN_IF_ERROR(r.Count(n, "parameter count", kMaxParameters, kMinParameterBytes));
  out.resize(n);
  for (uint32_t i = 0; i < n; ++i) MM_RETURN_IF_ERROR(ReadParameter(r, i, out[i]));
  r.ClearContext();
  return CheckDistinct(r, "parameter", n,
                       [&](size_t i) -> std::string_view { return out[i].first; });
}

// BYTES: exactly `elements` items of u32 length + bytes.
bool BytesFramingOk(std::span<const std::byte> data, uint64_t elements) {
  size_t pos = 0;
  for (uint64_t e = 0; e < elements; ++e) {
    if (data.size() - pos < 4) return false;
    uint32_t n = 0;
    for (int i = 0; i < 4; ++i) n |= std::to_integer<uint32_t>(data[pos + i]) << (8 * i);
    pos += 4;
    if (n > data.size() - pos) return false;
    pos += n;
  }
  return pos == data.size();
}

Status ReadCallTensor(Reader& r, std::string_view label, size_t index, CallTensor& t) {
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
    t.shape[i] = r.Take<int64_t>();
    if (t.shape[i] < 0) {
      return r.Error("dim " + std::to_string(i) + " is " + std::to_string(t.shape[i]) +
                     ", expected >= 0");
    }
  }
  uint64_t bytes = 0;
  MM_RETURN_IF_ERROR(r.Int(bytes, "bytes"));
  const size_t pad = PadTo(r.position());
  MM_RETURN_IF_ERROR(r.Need(pad, "alignment padding"));
  for (std::byte b : r.Bytes(pad)) {
    if (b != std::byte{0}) return r.Error("alignment padding: a non-zero byte");
  }
  if (bytes > r.remaining()) {
    return r.Error("bytes " + std::to_string(bytes) + ": truncated, " +
                   std::to_string(r.remaining()) + " remain");
  }
  // Element count, with no overflow unseen (a zero dim makes it 0).
  uint64_t elements = 1;
  if (std::find(t.shape.begin(), t.shape.end(), 0) != t.shape.end()) {
    elements = 0;
  } else {
    for (int64_t d : t.shape) {
      const auto ud = static_cast<uint64_t>(d);
      if (elements > std::numeric_limits<uint64_t>::max() / ud) {
        return r.Error("shape " + ShapeToString(t.shape) + " has more than 2^64 elements");
      }
      elements *= ud;
    }
  }
  t.data = r.Bytes(bytes);
  const uint64_t element_bytes = DataTypeSize(t.dtype);
  if (element_bytes != 0) {
    if (bytes % element_bytes != 0 || elements != bytes / element_bytes) {
      return r.Error("bytes " + std::to_string(bytes) + ", expected " + std::to_string(elements) +
                     " elements of " + std::string(DataTypeName(t.dtype)) + " (shape " +
                     ShapeToString(t.shape) + ")");
    }
  } else if (elements > bytes / 4 || !BytesFramingOk(t.data, elements)) {
    return r.Error("bytes: not " + std::to_string(elements) +
                   " elements of u32 length + bytes filling " + std::to_string(bytes) +
                   " bytes (shape " + ShapeToString(t.shape) + ")");
  }
  return OkStatus();
}

Status ReadCallTensors(Reader& r, std::string_view label, std::vector<CallTensor>& out) {
  uint32_t n = 0;
  MM_RETURN_IF_ERROR(
      r.Count(n, label == "input" ? "input count" : "output count", kMaxTensors, kMinTensorBytes));
  out.resize(n);
  for (uint32_t i = 0; i < n; ++i) MM_RETURN_IF_ERROR(ReadCallTensor(r, label, i, out[i]));
  r.ClearContext();
  return CheckDistinct(r, label, n, [&](size_t i) -> std::string_view { return out[i].name; });
}

Status ReadBody(Reader& r, bool final, ResponseBody& body) {
  MM_RETURN_IF_ERROR(ReadStatus(r, body.status));
  body.has_response = false;
  body.parameters.clear();
  body.outputs.clear();
  if (!body.status.ok()) return OkStatus();
  MM_RETURN_IF_ERROR(ReadBool(r, body.has_response, "has_response"));
  if (!body.has_response) {
    if (!final) return r.Error("no response and no final flag: an empty message");
    return OkStatus();
  }
  MM_RETURN_IF_ERROR(ReadParameters(r, body.parameters));
  return ReadCallTensors(r, "output", body.outputs);
}

Status ReadU64(std::span<const std::byte> payload, std::string_view message, uint64_t& v) {
  Reader r(payload, message);
  MM_RETURN_IF_ERROR(r.Int(v, "value"));
  return r.Finish();
}

std::span<const std::byte> AsBytes(std::string_view s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

// Sender checks.
Status TensorsFit(std::string_view label, const std::vector<CallTensor>& tensors) {
  if (tensors.size() > kMaxTensors) {
    return InvalidArgument(std::to_string(tensors.size()) + " " + std::string(label) +
                           "s; a call from a worker process carries at most " +
                           std::to_string(kMaxTensors));
  }
  for (const CallTensor& t : tensors) {
    if (t.name.empty() || t.name.size() > kMaxTensorNameBytes) {
      return InvalidArgument(std::string(label) + " name of " + std::to_string(t.name.size()) +
                             " bytes; expected 1 to " + std::to_string(kMaxTensorNameBytes));
    }
    if (t.shape.size() > kMaxRank) {
      return InvalidArgument(std::string(label) + " '" + Printable(t.name) + "' has " +
                             std::to_string(t.shape.size()) + " dims; at most " +
                             std::to_string(kMaxRank) + " cross a worker's call channel");
    }
    if (t.dtype == DataType::kInvalid) {
      return InvalidArgument(std::string(label) + " '" + Printable(t.name) + "' has no datatype");
    }
    for (int64_t d : t.shape) {
      if (d < 0) {
        return InvalidArgument(std::string(label) + " '" + Printable(t.name) +
                               "' has a negative dim in shape " + ShapeToString(t.shape));
      }
    }
  }
  for (size_t i = 1; i < tensors.size(); ++i) {
    for (size_t j = 0; j < i && tensors.size() <= 64; ++j) {
      if (tensors[i].name == tensors[j].name) {
        return InvalidArgument(std::string(label) + " '" + Printable(tensors[i].name) +
                               "' appears twice");
      }
    }
  }
  return OkStatus();
}

Status ParametersFit(const CallParameters& parameters) {
  if (parameters.size() > kMaxParameters) {
    return InvalidArgument(std::to_string(parameters.size()) +
                           " parameters; a call from a worker process carries at most " +
                           std::to_string(kMaxParameters));
  }
  for (const auto& [key, value] : parameters) {
    if (key.empty() || key.size() > kMaxParameterKeyBytes) {
      return InvalidArgument("parameter name of " + std::to_string(key.size()) +
                             " bytes; expected 1 to " + std::to_string(kMaxParameterKeyBytes));
    }
    const std::string* s = std::get_if<std::string>(&value);
    if (s != nullptr && s->size() > kMaxStringBytes) {
      return InvalidArgument("parameter '" + Printable(key) + "' of " + std::to_string(s->size()) +
                             " bytes; at most " + std::to_string(kMaxStringBytes));
    }
  }
  return OkStatus();
}

uint64_t TensorBytes(const std::vector<CallTensor>& tensors) {
  uint64_t n = 0;
  for (const CallTensor& t : tensors) n += t.data.size() + t.name.size() + 8 * t.shape.size() + 32;
  return n;
}

Status SizeFits(uint64_t bytes) {
  if (bytes <= kMaxCallPayloadBytes) return OkStatus();
  return InvalidArgument("the tensors take " + std::to_string(bytes) +
                         " bytes; a worker's call channel carries at most " +
                         std::to_string(kMaxCallPayloadBytes) + " per message");
}

}  // namespace

bool CallTensor::operator==(const CallTensor& o) const {
  return name == o.name && dtype == o.dtype && shape == o.shape && data.size() == o.data.size() &&
         std::equal(data.begin(), data.end(), o.data.begin());
}

bool ResponseBody::operator==(const ResponseBody& o) const {
  return status.code() == o.status.code() && status.message() == o.status.message() &&
         has_response == o.has_response && parameters == o.parameters && outputs == o.outputs;
}

size_t WireParts::size() const {
  size_t n = bytes.size();
  for (const auto& insert : inserts) n += insert.second.size();
  return n;
}

void WireParts::AppendIovecs(std::vector<iovec>& out) const {
  size_t at = 0;
  for (const auto& [offset, data] : inserts) {
    if (offset > at) out.push_back({const_cast<char*>(bytes.data()) + at, offset - at});
    out.push_back({const_cast<std::byte*>(data.data()), data.size()});
    at = offset;
  }
  if (bytes.size() > at) out.push_back({const_cast<char*>(bytes.data()) + at, bytes.size() - at});
}

std::string WireParts::Flatten() const {
  std::string out;
  out.reserve(size());
  size_t at = 0;
  for (const auto& [offset, data] : inserts) {
    out.append(bytes, at, offset - at);
    out.append(reinterpret_cast<const char*>(data.data()), data.size());
    at = offset;
  }
  out.append(bytes, at, std::string::npos);
  return out;
}

void EncodeRespond(const RespondMessage& m, WireParts& out) {
  Reset(out);
  PutLe<uint64_t>(out.bytes, m.token);
  PutLe<uint32_t>(out.bytes, m.index);
  PutLe<uint8_t>(out.bytes, m.final ? 1 : 0);
  PutBody(out, m.body);
}

StatusOr<RespondMessage> DecodeRespond(std::span<const std::byte> payload) {
  Reader r(payload, "Respond");
  RespondMessage m;
  MM_RETURN_IF_ERROR(r.Int(m.token, "token"));
  if (m.token == 0) return r.Error("token 0, expected an Execute's non-zero decoupled_token");
  MM_RETURN_IF_ERROR(r.Int(m.index, "index"));
  MM_RETURN_IF_ERROR(ReadBool(r, m.final, "final"));
  MM_RETURN_IF_ERROR(ReadBody(r, m.final, m.body));
  MM_RETURN_IF_ERROR(r.Finish());
  return m;
}

void EncodeInferCall(const InferCallMessage& m, WireParts& out) {
  Reset(out);
  PutString(out.bytes, m.model_name);
  PutString(out.bytes, m.model_version);
  PutString(out.bytes, m.request_id);
  PutParameters(out.bytes, m.parameters);
  PutCallTensors(out, m.inputs);
  PutLe<uint32_t>(out.bytes, static_cast<uint32_t>(m.outputs.size()));
  for (const std::string& name : m.outputs) PutString(out.bytes, name);
}

StatusOr<InferCallMessage> DecodeInferCall(std::span<const std::byte> payload) {
  Reader r(payload, "Infer");
  InferCallMessage m;
  MM_RETURN_IF_ERROR(r.String(m.model_name, "model_name", 1, kMaxStringBytes));
  MM_RETURN_IF_ERROR(r.String(m.model_version, "model_version", 0, kMaxStringBytes));
  MM_RETURN_IF_ERROR(r.String(m.request_id, "request_id", 0, kMaxStringBytes));
  MM_RETURN_IF_ERROR(ReadParameters(r, m.parameters));
  MM_RETURN_IF_ERROR(ReadCallTensors(r, "input", m.inputs));
  uint32_t n = 0;
  MM_RETURN_IF_ERROR(r.Count(n, "output name count", kMaxTensors, kMinStringBytes));
  m.outputs.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    r.SetContext("output name", i);
    MM_RETURN_IF_ERROR(r.String(m.outputs[i], "value", 1, kMaxTensorNameBytes));
  }
  r.ClearContext();
  MM_RETURN_IF_ERROR(CheckDistinct(r, "output name", n,
                                   [&](size_t i) -> std::string_view { return m.outputs[i]; }));
  MM_RETURN_IF_ERROR(r.Finish());
  return m;
}

void EncodeInferResponse(const InferResponseMessage& m, WireParts& out) {
  Reset(out);
  PutLe<uint8_t>(out.bytes, m.final ? 1 : 0);
  PutBody(out, m.body);
}

StatusOr<InferResponseMessage> DecodeInferResponse(std::span<const std::byte> payload) {
  Reader r(payload, "InferResponse");
  InferResponseMessage m;
  MM_RETURN_IF_ERROR(ReadBool(r, m.final, "final"));
  MM_RETURN_IF_ERROR(ReadBody(r, m.final, m.body));
  MM_RETURN_IF_ERROR(r.Finish());
  return m;
}

std::string EncodeModelReady(const ModelReadyMessage& m) {
  std::string out;
  PutString(out, m.name);
  PutString(out, m.version);
  return out;
}

StatusOr<ModelReadyMessage> DecodeModelReady(std::span<const std::byte> payload) {
  Reader r(payload, "ModelReady");
  ModelReadyMessage m;
  MM_RETURN_IF_ERROR(r.String(m.name, "name", 1, kMaxStringBytes));
  MM_RETURN_IF_ERROR(r.String(m.version, "version", 0, kMaxStringBytes));
  MM_RETURN_IF_ERROR(r.Finish());
  return m;
}

std::string EncodeMetricCreate(const MetricSpec& spec) {
  std::string out;
  PutString(out, spec.family);
  PutString(out, spec.description);
  PutLe<uint8_t>(out, static_cast<uint8_t>(spec.kind));
  PutLe<uint32_t>(out, static_cast<uint32_t>(spec.labels.size()));
  for (const auto& [name, value] : spec.labels) {
    PutString(out, name);
    PutString(out, value);
  }
  PutLe<uint32_t>(out, static_cast<uint32_t>(spec.buckets.size()));
  for (double b : spec.buckets) PutF64(out, b);
  return out;
}

StatusOr<MetricSpec> DecodeMetricCreate(std::span<const std::byte> payload) {
  Reader r(payload, "MetricCreate");
  MetricSpec spec;
  MM_RETURN_IF_ERROR(r.String(spec.family, "family", 1, kMaxMetricNameBytes));
  MM_RETURN_IF_ERROR(r.String(spec.description, "description", 0, kMaxStringBytes));
  uint8_t kind = 0;
  MM_RETURN_IF_ERROR(r.Int(kind, "kind"));
  if (kind > static_cast<uint8_t>(MetricKind::kHistogram)) {
    return r.Error("kind " + std::to_string(kind) +
                   ", expected 0 (counter), 1 (gauge) or 2 (histogram)");
  }
  spec.kind = static_cast<MetricKind>(kind);
  uint32_t n = 0;
  MM_RETURN_IF_ERROR(r.Count(n, "label count", kMaxMetricLabels, kMinLabelBytes));
  std::string previous;
  for (uint32_t i = 0; i < n; ++i) {
    r.SetContext("label", i);
    std::string name, value;
    MM_RETURN_IF_ERROR(r.String(name, "name", 1, kMaxMetricNameBytes));
    r.SetContext("label", i, name);
    MM_RETURN_IF_ERROR(r.String(value, "value", 0, kMaxStringBytes));
    // Canonical: in the map's order, so that re-encoding gives the same bytes.
    if (i > 0 && name <= previous) {
      return r.Error("name out of order or repeated (labels are sorted by name, distinct)");
    }
    previous = name;
    spec.labels.emplace(std::move(name), std::move(value));
  }
  r.ClearContext();
  MM_RETURN_IF_ERROR(r.Count(n, "bucket count", kMaxMetricBuckets, sizeof(uint64_t)));
  spec.buckets.resize(n);
  for (uint32_t i = 0; i < n; ++i) spec.buckets[i] = std::bit_cast<double>(r.Take<uint64_t>());
  MM_RETURN_IF_ERROR(r.Finish());
  return spec;
}

std::string EncodeMetricUpdate(const MetricUpdateMessage& m) {
  std::string out;
  PutLe<uint64_t>(out, m.id);
  PutLe<uint8_t>(out, static_cast<uint8_t>(m.op));
  PutF64(out, m.value);
  return out;
}

StatusOr<MetricUpdateMessage> DecodeMetricUpdate(std::span<const std::byte> payload) {
  Reader r(payload, "MetricUpdate");
  MetricUpdateMessage m;
  MM_RETURN_IF_ERROR(r.Int(m.id, "id"));
  uint8_t op = 0;
  MM_RETURN_IF_ERROR(r.Int(op, "op"));
  if (op > static_cast<uint8_t>(MetricOp::kObserve)) {
    return r.Error("op " + std::to_string(op) + ", expected 0 (increment), 1 (set) or 2 (observe)");
  }
  m.op = static_cast<MetricOp>(op);
  uint64_t bits = 0;
  MM_RETURN_IF_ERROR(r.Int(bits, "value"));
  m.value = std::bit_cast<double>(bits);
  MM_RETURN_IF_ERROR(r.Finish());
  return m;
}

std::string EncodeMetricId(uint64_t id) {
  std::string out;
  PutLe<uint64_t>(out, id);
  return out;
}

StatusOr<uint64_t> DecodeMetricId(std::span<const std::byte> payload, std::string_view message) {
  uint64_t id = 0;
  MM_RETURN_IF_ERROR(ReadU64(payload, message, id));
  return id;
}

std::string EncodeCallReply(const CallReply& reply) {
  std::string out;
  PutStatus(out, reply.status);
  if (reply.status.ok()) PutString(out, reply.body);
  return out;
}

StatusOr<CallReply> DecodeCallReply(std::span<const std::byte> payload) {
  Reader r(payload, "CallReply");
  CallReply reply;
  MM_RETURN_IF_ERROR(ReadStatus(r, reply.status));
  if (reply.status.ok()) MM_RETURN_IF_ERROR(r.String(reply.body, "body", 0, kMaxStringBytes));
  MM_RETURN_IF_ERROR(r.Finish());
  return reply;
}

std::string EncodeRequestRef(const RequestRef& m) {
  std::string out;
  PutLe<uint64_t>(out, m.token);
  PutLe<uint32_t>(out, m.index);
  return out;
}

StatusOr<RequestRef> DecodeRequestRef(std::span<const std::byte> payload) {
  Reader r(payload, "IsCancelled");
  RequestRef m;
  MM_RETURN_IF_ERROR(r.Int(m.token, "token"));
  MM_RETURN_IF_ERROR(r.Int(m.index, "index"));
  MM_RETURN_IF_ERROR(r.Finish());
  return m;
}

std::string EncodeBoolBody(bool v) { return std::string(1, v ? '\1' : '\0'); }

StatusOr<bool> DecodeBoolBody(std::string_view body) {
  Reader r(AsBytes(body), "CallReply body");
  bool v = false;
  MM_RETURN_IF_ERROR(ReadBool(r, v, "ready"));
  MM_RETURN_IF_ERROR(r.Finish());
  return v;
}

std::string EncodeU64Body(uint64_t v) { return EncodeMetricId(v); }

StatusOr<uint64_t> DecodeU64Body(std::string_view body) {
  uint64_t v = 0;
  MM_RETURN_IF_ERROR(ReadU64(AsBytes(body), "CallReply body", v));
  return v;
}

std::string EncodeF64Body(double v) { return EncodeMetricId(std::bit_cast<uint64_t>(v)); }

StatusOr<double> DecodeF64Body(std::string_view body) {
  uint64_t v = 0;
  MM_RETURN_IF_ERROR(ReadU64(AsBytes(body), "CallReply body", v));
  return std::bit_cast<double>(v);
}

Status CheckResponseBodyFits(const ResponseBody& body) {
  if (!body.status.ok() || !body.has_response) return OkStatus();
  MM_RETURN_IF_ERROR(ParametersFit(body.parameters));
  MM_RETURN_IF_ERROR(TensorsFit("output", body.outputs));
  return SizeFits(TensorBytes(body.outputs));
}

Status CheckInferCallFits(const InferCallMessage& m) {
  if (m.model_name.empty() || m.model_name.size() > kMaxStringBytes) {
    return InvalidArgument("model name of " + std::to_string(m.model_name.size()) +
                           " bytes; expected 1 to " + std::to_string(kMaxStringBytes));
  }
  if (m.model_version.size() > kMaxStringBytes || m.request_id.size() > kMaxStringBytes) {
    return InvalidArgument("model version or request id over " + std::to_string(kMaxStringBytes) +
                           " bytes");
  }
  MM_RETURN_IF_ERROR(ParametersFit(m.parameters));
  MM_RETURN_IF_ERROR(TensorsFit("input", m.inputs));
  if (m.outputs.size() > kMaxTensors) {
    return InvalidArgument(std::to_string(m.outputs.size()) + " requested outputs; at most " +
                           std::to_string(kMaxTensors));
  }
  for (size_t i = 0; i < m.outputs.size(); ++i) {
    if (m.outputs[i].empty() || m.outputs[i].size() > kMaxTensorNameBytes) {
      return InvalidArgument("requested output name of " + std::to_string(m.outputs[i].size()) +
                             " bytes; expected 1 to " + std::to_string(kMaxTensorNameBytes));
    }
    for (size_t j = 0; j < i && m.outputs.size() <= 64; ++j) {
      if (m.outputs[i] == m.outputs[j]) {
        return InvalidArgument("requested output '" + Printable(m.outputs[i]) + "' appears twice");
      }
    }
  }
  return SizeFits(TensorBytes(m.inputs));
}

Status CheckMetricSpecFits(const MetricSpec& spec) {
  if (spec.family.empty() || spec.family.size() > kMaxMetricNameBytes) {
    return InvalidArgument("metric family name of " + std::to_string(spec.family.size()) +
                           " bytes; expected 1 to " + std::to_string(kMaxMetricNameBytes));
  }
  if (spec.description.size() > kMaxStringBytes) {
    return InvalidArgument("metric description over " + std::to_string(kMaxStringBytes) + " bytes");
  }
  if (spec.labels.size() > kMaxMetricLabels) {
    return InvalidArgument(std::to_string(spec.labels.size()) + " metric labels; at most " +
                           std::to_string(kMaxMetricLabels));
  }
  for (const auto& [name, value] : spec.labels) {
    if (name.empty() || name.size() > kMaxMetricNameBytes || value.size() > kMaxStringBytes) {
      return InvalidArgument("metric label '" + Printable(name.substr(0, 64)) +
                             "': a name of 1 to " + std::to_string(kMaxMetricNameBytes) +
                             " bytes and a value of at most " + std::to_string(kMaxStringBytes) +
                             " expected");
    }
  }
  if (spec.buckets.size() > kMaxMetricBuckets) {
    return InvalidArgument(std::to_string(spec.buckets.size()) + " histogram buckets; at most " +
                           std::to_string(kMaxMetricBuckets));
  }
  return OkStatus();
}

void ToCallTensors(std::span<const Tensor> tensors, std::vector<CallTensor>& out) {
  out.resize(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    out[i].name = tensors[i].name;
    out[i].dtype = tensors[i].dtype;
    out[i].shape.assign(tensors[i].shape.begin(), tensors[i].shape.end());
    out[i].data = tensors[i].data;
  }
}

void FromCallTensors(std::span<const CallTensor> tensors, const std::shared_ptr<const void>& owner,
                     std::vector<Tensor>& out) {
  out.resize(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    out[i].name = tensors[i].name;
    out[i].dtype = tensors[i].dtype;
    out[i].shape.assign(tensors[i].shape.begin(), tensors[i].shape.end());
    out[i].data = tensors[i].data;
    out[i].owner = owner;
  }
}

}  // namespace mm
