// libFuzzer target: a ModelInferRequest message off the wire, decoded as the
// gRPC transport decodes it, then echoed back as a response.
//
// Differential: the in-place parse (rpc/infer_request_wire.h) must accept
// exactly what protobuf's own parse accepts and give the same message; the
// request decoded from its views must be the one decoded from protobuf's
// message; the response's parts must be the serialized response. Any
// difference traps.
#include <google/protobuf/stubs/logging.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rpc/grpc_codec.h"
#include "rpc/infer_request_wire.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

bool SameBytes(std::span<const std::byte> a, std::span<const std::byte> b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

bool SameTensor(const mm::Tensor& a, const mm::Tensor& b) {
  return a.name == b.name && a.dtype == b.dtype && a.shape == b.shape &&
         a.parameters == b.parameters && SameBytes(a.data, b.data);
}

void CheckSameRequest(const mm::InferRequest& a, const mm::InferRequest& b) {
  Check(a.model_name == b.model_name && a.model_version == b.model_version && a.id == b.id &&
        a.parameters == b.parameters);
  Check(a.inputs.size() == b.inputs.size() && a.outputs.size() == b.outputs.size());
  for (size_t i = 0; i < a.inputs.size(); ++i) Check(SameTensor(a.inputs[i], b.inputs[i]));
  for (size_t i = 0; i < a.outputs.size(); ++i) {
    Check(a.outputs[i].name == b.outputs[i].name &&
          a.outputs[i].parameters == b.outputs[i].parameters);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // For good: protobuf logs each string it refuses as not UTF-8.
  static const auto* quiet = new google::protobuf::LogSilencer;
  (void)quiet;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view wire(reinterpret_cast<const char*>(data), size);
  inference::ModelInferRequest msg;
  const bool protobuf_ok = msg.ParseFromArray(data, static_cast<int>(size));

  inference::ModelInferRequest in_place;
  std::vector<std::string_view> raw;
  const mm::Status parsed = mm::ParseModelInferRequestInPlace(wire, &in_place, &raw);
  Check(parsed.ok() == protobuf_ok);
  if (!protobuf_ok) {
    Check(parsed.code() == mm::StatusCode::kInvalidArgument && raw.empty());
    return 0;
  }
  // The same raw contents, as views (into the wire, or into in_place's own
  // raw contents when protobuf parsed a message with a group whole) ...
  Check(static_cast<int>(raw.size()) == msg.raw_input_contents_size());
  for (size_t i = 0; i < raw.size(); ++i) {
    Check(raw[i] == msg.raw_input_contents(static_cast<int>(i)));
    const std::string_view home = in_place.raw_input_contents_size() > 0
                                      ? std::string_view(in_place.raw_input_contents(i))
                                      : wire;
    Check(raw[i].data() >= home.data() &&
          raw[i].data() + raw[i].size() <= home.data() + home.size());
  }
  // ... and the same other fields.
  {
    inference::ModelInferRequest a = msg;
    inference::ModelInferRequest b = in_place;
    a.clear_raw_input_contents();
    b.clear_raw_input_contents();
    Check(mm::SerializeDeterministic(a) == mm::SerializeDeterministic(b));
  }

  // Decoded from the views, the request protobuf's message decodes to; or
  // the same error. Which of two bad parameters an error names follows a
  // protobuf map's order, which differs between two maps of the same
  // entries: the words are compared on one message, decoded both ways.
  auto decoded = mm::DecodeGrpcInferRequest(msg);
  auto same_message = mm::DecodeGrpcInferRequest(msg, raw);
  auto from_views = mm::DecodeGrpcInferRequest(in_place, raw);
  Check(decoded.ok() == same_message.ok() && decoded.ok() == from_views.ok());
  if (!decoded.ok()) {
    Check(decoded.status().code() == same_message.status().code() &&
          decoded.status().message() == same_message.status().message() &&
          decoded.status().code() == from_views.status().code());
    return 0;
  }
  CheckSameRequest(*decoded, *same_message);
  CheckSameRequest(*decoded, *from_views);

  mm::InferResponse response;
  response.model_name = decoded->model_name;
  response.id = decoded->id;
  for (const auto& t : decoded->inputs) response.outputs.push_back(t);
  inference::ModelInferResponse out;
  mm::EncodeGrpcInferResponse(response, &out);
  // The parts on the wire: the 5-byte prefix and the message, byte for byte.
  auto parts = mm::EncodeGrpcInferResponseParts(response);
  const std::string serialized = mm::SerializeDeterministic(out);
  Check(parts.ok() == (serialized.size() <= static_cast<size_t>(INT_MAX)));
  if (!parts.ok()) return 0;
  std::string flat;
  for (const auto& piece : parts->pieces) {
    const auto bytes = parts->bytes(piece);
    flat.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  Check(parts->total == flat.size() && flat.size() == serialized.size() + 5);
  Check(flat[0] == 0);
  uint32_t length = 0;
  for (int i = 1; i < 5; ++i) length = (length << 8) | static_cast<uint8_t>(flat[i]);
  Check(length == serialized.size());
  Check(std::string_view(flat).substr(5) == serialized);
  return 0;
}
