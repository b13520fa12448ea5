#include "rpc/grpc_codec.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>
#include <limits>

#include "core/bytes_tensor.h"
#include "core/shape.h"
#include "core/tensor_data.h"

namespace mm {

namespace {

using inference::InferParameter;
using inference::InferTensorContents;

StatusOr<ParameterValue> FromProto(const std::string& key, const InferParameter& p,
                                   std::string_view where) {
  switch (p.parameter_choice_case()) {
    case InferParameter::kBoolParam:
      return ParameterValue(p.bool_param());
    case InferParameter::kInt64Param:
      return ParameterValue(p.int64_param());
    case InferParameter::kDoubleParam:
      return ParameterValue(p.double_param());
    case InferParameter::kStringParam:
      return ParameterValue(p.string_param());
    case InferParameter::kUint64Param:
      if (p.uint64_param() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return InvalidArgument(std::string(where) + " parameter '" + key +
                               "' is out of range for a 64-bit signed integer");
      }
      return ParameterValue(static_cast<int64_t>(p.uint64_param()));
    default:
      return InvalidArgument(std::string(where) + " parameter '" + key + "' has no value");
  }
}

InferParameter ToProto(const ParameterValue& v) {
  InferParameter p;
  if (const auto* b = std::get_if<bool>(&v)) p.set_bool_param(*b);
  if (const auto* i = std::get_if<int64_t>(&v)) p.set_int64_param(*i);
  if (const auto* d = std::get_if<double>(&v)) p.set_double_param(*d);
  if (const auto* s = std::get_if<std::string>(&v)) p.set_string_param(*s);
  return p;
}

Status DecodeParameters(const google::protobuf::Map<std::string, InferParameter>& in,
                        std::string_view where, Parameters& out) {
  for (const auto& [key, value] : in) {
    MM_ASSIGN_OR_RETURN(ParameterValue v, FromProto(key, value, where));
    out.emplace(key, std::move(v));
  }
  return OkStatus();
}

template <typename T>
std::span<const std::byte> View(const google::protobuf::RepeatedField<T>& field) {
  return {reinterpret_cast<const std::byte*>(field.data()), field.size() * sizeof(T)};
}

// Narrows int32/uint32 contents into the tensor's own element type (the
// words of the HTTP codec's JSON check for the same value).
template <typename To, typename From>
StatusOr<std::shared_ptr<ByteBuffer>> Narrow(const google::protobuf::RepeatedField<From>& field,
                                             const std::string& what, DataType dtype) {
  auto buffer = std::make_shared<ByteBuffer>(field.size() * sizeof(To));
  auto* out = reinterpret_cast<To*>(buffer->bytes.get());
  for (int i = 0; i < field.size(); ++i) {
    From v = field.Get(i);
    if (v < static_cast<From>(std::numeric_limits<To>::min()) ||
        v > static_cast<From>(std::numeric_limits<To>::max())) {
      return InvalidArgument(what + ": element " + std::to_string(i) + ": " + std::to_string(v) +
                             " is out of range for " + std::string(DataTypeName(dtype)));
    }
    out[i] = static_cast<To>(v);
  }
  return buffer;
}

// The number of typed elements present for `dtype`, and the input's data.
Status DecodeContents(const InferTensorContents& c, Tensor& t, const std::string& what,
                      int64_t expected) {
  int64_t got = 0;
  auto set_view = [&](auto& field) {
    got = field.size();
    t.data = View(field);
  };
  auto attach = [&](StatusOr<std::shared_ptr<ByteBuffer>> buffer, int64_t n) -> Status {
    if (!buffer.ok()) return buffer.status();
    got = n;
    AttachBuffer(t, std::move(*buffer));
    return OkStatus();
  };
  switch (t.dtype) {
    case DataType::kBool: {
      got = c.bool_contents_size();
      auto buffer = std::make_shared<ByteBuffer>(static_cast<size_t>(got));
      for (int i = 0; i < c.bool_contents_size(); ++i) {
        buffer->bytes[i] = std::byte{c.bool_contents(i) ? uint8_t{1} : uint8_t{0}};
      }
      AttachBuffer(t, std::move(buffer));
      break;
    }
    case DataType::kInt8:
      MM_RETURN_IF_ERROR(
          attach(Narrow<int8_t>(c.int_contents(), what, t.dtype), c.int_contents_size()));
      break;
    case DataType::kInt16:
      MM_RETURN_IF_ERROR(
          attach(Narrow<int16_t>(c.int_contents(), what, t.dtype), c.int_contents_size()));
      break;
    case DataType::kInt32:
      set_view(c.int_contents());
      break;
    case DataType::kInt64:
      set_view(c.int64_contents());
      break;
    case DataType::kUint8:
      MM_RETURN_IF_ERROR(
          attach(Narrow<uint8_t>(c.uint_contents(), what, t.dtype), c.uint_contents_size()));
      break;
    case DataType::kUint16:
      MM_RETURN_IF_ERROR(
          attach(Narrow<uint16_t>(c.uint_contents(), what, t.dtype), c.uint_contents_size()));
      break;
    case DataType::kUint32:
      set_view(c.uint_contents());
      break;
    case DataType::kUint64:
      set_view(c.uint64_contents());
      break;
    case DataType::kFp32:
      set_view(c.fp32_contents());
      break;
    case DataType::kFp64:
      set_view(c.fp64_contents());
      break;
    case DataType::kBytes: {
      got = c.bytes_contents_size();
      auto serialized = std::make_shared<std::string>();
      for (const std::string& s : c.bytes_contents()) AppendBytesElement(s, *serialized);
      t.data = {reinterpret_cast<const std::byte*>(serialized->data()), serialized->size()};
      t.owner = std::move(serialized);
      break;
    }
    default:
      return InvalidArgument(what + ": " + std::string(DataTypeName(t.dtype)) +
                             " has no typed contents field; send it in raw_input_contents");
  }
  if (got != expected) {
    return InvalidArgument(what + ": expected " + std::to_string(expected) +
                           " elements for shape " + ShapeToString(t.shape) + ", got " +
                           std::to_string(got));
  }
  return OkStatus();
}

// Fills every field of `out` but raw_output_contents: EncodeGrpcInferResponse
// adds those as strings, EncodeGrpcInferResponseParts writes them beside the
// serialized rest, so both send the same message.
void EncodeResponseWithoutRawContents(const InferResponse& response,
                                      inference::ModelInferResponse* out) {
  out->set_model_name(response.model_name);
  out->set_model_version(response.model_version);
  out->set_id(response.id);
  for (const Tensor& t : response.outputs) {
    auto* o = out->add_outputs();
    o->set_name(t.name);
    o->set_datatype(std::string(DataTypeName(t.dtype)));
    for (int64_t d : t.shape) o->add_shape(d);
    for (const auto& [key, value] : t.parameters) {
      (*o->mutable_parameters())[key] = ToProto(value);
    }
  }
}

// raw_output_contents: field 6 of ModelInferResponse, length-delimited.
constexpr char kRawOutputContentsTag = (6 << 3) | 2;
// gRPC's message prefix: a compressed flag and the length, big-endian.
constexpr size_t kGrpcPrefixBytes = 5;

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  for (; v >= 0x80; v >>= 7) ++n;
  return n;
}

void AppendVarint(uint64_t v, std::string& out) {
  for (; v >= 0x80; v >>= 7) out.push_back(static_cast<char>((v & 0x7f) | 0x80));
  out.push_back(static_cast<char>(v));
}

}  // namespace

std::string SerializeDeterministic(const google::protobuf::MessageLite& message) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializePartialToCodedStream(&coded);
  }
  return out;
}

StatusOr<InferRequest> DecodeGrpcInferRequest(const inference::ModelInferRequest& msg) {
  // The views of msg's own raw contents; on the stack for the usual handful
  // of inputs (no allocation per request on the grpc++ transport's path).
  constexpr size_t kInline = 16;
  const auto& field = msg.raw_input_contents();
  if (static_cast<size_t>(field.size()) <= kInline) {
    std::array<std::string_view, kInline> views;
    std::copy(field.begin(), field.end(), views.begin());
    return DecodeGrpcInferRequest(msg, std::span(views.data(), static_cast<size_t>(field.size())));
  }
  const std::vector<std::string_view> views(field.begin(), field.end());
  return DecodeGrpcInferRequest(msg, views);
}

StatusOr<InferRequest> DecodeGrpcInferRequest(
    const inference::ModelInferRequest& msg, std::span<const std::string_view> raw_input_contents) {
  InferRequest request;
  request.model_name = msg.model_name();
  request.model_version = msg.model_version();
  request.id = msg.id();
  MM_RETURN_IF_ERROR(DecodeParameters(msg.parameters(), "request", request.parameters));
  // raw_input_contents holds one entry per input that is not in shared
  // memory, in input order.
  const bool raw = !raw_input_contents.empty();
  size_t with_data = 0;
  for (const auto& in : msg.inputs()) {
    if (!in.parameters().contains("shared_memory_region")) ++with_data;
  }
  if (raw && raw_input_contents.size() != with_data) {
    return InvalidArgument("raw_input_contents has " + std::to_string(raw_input_contents.size()) +
                           " entries but the request has " + std::to_string(with_data) +
                           " inputs not in shared memory: give one per such input, in order");
  }
  size_t next_raw = 0;
  request.inputs.reserve(msg.inputs_size());
  for (int i = 0; i < msg.inputs_size(); ++i) {
    const auto& in = msg.inputs(i);
    if (in.name().empty()) {
      return InvalidArgument("inputs[" + std::to_string(i) + "] has an empty 'name'");
    }
    const std::string what = "input '" + in.name() + "'";
    for (int j = 0; j < i; ++j) {  // a handful of inputs: a scan allocates nothing
      if (msg.inputs(j).name() == in.name()) return InvalidArgument(what + " appears twice");
    }
    Tensor& t = request.inputs.emplace_back();
    t.name = in.name();
    auto dtype = DataTypeFromName(in.datatype());
    if (!dtype) {
      return InvalidArgument(what + ": unknown datatype '" + in.datatype() + "'");
    }
    t.dtype = *dtype;
    t.shape.assign(in.shape().begin(), in.shape().end());
    MM_ASSIGN_OR_RETURN(int64_t count, ElementCount(t.shape, what));
    MM_RETURN_IF_ERROR(DecodeParameters(in.parameters(), what, t.parameters));
    if (t.parameters.count("shared_memory_region")) {
      if (in.has_contents()) {
        return InvalidArgument(what + " has both data and a shared memory reference");
      }
      continue;  // the service maps the region
    }
    if (raw) {
      if (in.has_contents()) {
        return InvalidArgument(what + " has both typed contents and raw_input_contents");
      }
      const std::string_view bytes = raw_input_contents[next_raw++];
      t.data = {reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()};
      // As HTTP checks its binary data: the same rule, the same words.
      MM_RETURN_IF_ERROR(CheckTensorData(t.dtype, t.shape, count, t.data, what));
      continue;
    }
    if (!in.has_contents()) {
      return InvalidArgument(what + " has no data: set its contents or raw_input_contents");
    }
    MM_RETURN_IF_ERROR(DecodeContents(in.contents(), t, what, count));
  }
  request.outputs.reserve(msg.outputs_size());
  for (int i = 0; i < msg.outputs_size(); ++i) {
    const auto& out = msg.outputs(i);
    if (out.name().empty()) {
      return InvalidArgument("outputs[" + std::to_string(i) + "] has an empty 'name'");
    }
    const std::string what = "output '" + out.name() + "'";
    for (int j = 0; j < i; ++j) {
      if (msg.outputs(j).name() == out.name()) return InvalidArgument(what + " is requested twice");
    }
    RequestedOutput& r = request.outputs.emplace_back();
    r.name = out.name();
    MM_RETURN_IF_ERROR(DecodeParameters(out.parameters(), what, r.parameters));
    r.parameters.erase("binary_data");  // an HTTP notion some clients send anyway
    // Triton's classification extension (HTTP's class_count): 0 asks for the tensor.
    if (auto it = r.parameters.find("classification"); it != r.parameters.end()) {
      const int64_t* n = std::get_if<int64_t>(&it->second);
      if (n == nullptr || *n < 0) {
        return InvalidArgument(what + ": 'classification' must be a non-negative integer");
      }
      if (*n != 0) {
        return Unimplemented(what +
                             ": 'classification' (the classification extension) is not supported");
      }
      r.parameters.erase(it);
    }
  }
  return request;
}

void EncodeGrpcInferResponse(const InferResponse& response, inference::ModelInferResponse* out) {
  EncodeResponseWithoutRawContents(response, out);
  for (const Tensor& t : response.outputs) {
    out->add_raw_output_contents()->assign(reinterpret_cast<const char*>(t.data.data()),
                                           t.data.size());
  }
}

StatusOr<GrpcResponseParts> EncodeGrpcInferResponseParts(const InferResponse& response) {
  inference::ModelInferResponse rest;
  EncodeResponseWithoutRawContents(response, &rest);
  const size_t rest_size = rest.ByteSizeLong();
  size_t size = rest_size;
  for (const Tensor& t : response.outputs) {
    size += 1 + VarintSize(t.data.size()) + t.data.size();
  }
  if (size > static_cast<size_t>(INT_MAX)) {
    return ResourceExhausted("the response is " + std::to_string(size) +
                             " bytes, over the 2 GiB a protobuf message can hold; ask for fewer "
                             "outputs or use shared memory for them");
  }
  GrpcResponseParts parts;
  parts.total = kGrpcPrefixBytes + size;
  std::string& head = parts.head;
  head.reserve(kGrpcPrefixBytes + rest_size + response.outputs.size() * 6);
  head.push_back('\0');  // not compressed
  for (int shift = 24; shift >= 0; shift -= 8) {
    head.push_back(static_cast<char>((size >> shift) & 0xff));
  }
  head.resize(kGrpcPrefixBytes + rest_size);
  {
    // Deterministic: map entries (parameters) sorted, so that one response
    // always gives the same bytes.
    google::protobuf::io::ArrayOutputStream array(head.data() + kGrpcPrefixBytes,
                                                  static_cast<int>(rest_size));
    google::protobuf::io::CodedOutputStream coded(&array);
    coded.SetSerializationDeterministic(true);
    rest.SerializeWithCachedSizes(&coded);
  }
  size_t head_from = 0;  // head's bytes from here on are in no piece yet
  for (const Tensor& t : response.outputs) {
    head.push_back(kRawOutputContentsTag);
    AppendVarint(t.data.size(), head);
    if (t.data.empty()) continue;
    parts.pieces.push_back(
        {.in_head = true, .head_offset = head_from, .size = head.size() - head_from});
    parts.pieces.push_back({.data = t.data.data(), .size = t.data.size()});
    head_from = head.size();
  }
  if (head_from < head.size()) {
    parts.pieces.push_back(
        {.in_head = true, .head_offset = head_from, .size = head.size() - head_from});
  }
  return parts;
}

}  // namespace mm
