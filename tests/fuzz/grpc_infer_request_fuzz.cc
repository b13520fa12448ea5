// libFuzzer target: a ModelInferRequest message off the wire, decoded as the
// gRPC transport decodes it, then echoed back as a response.
#include <cstddef>
#include <cstdint>

#include "rpc/grpc_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  inference::ModelInferRequest msg;
  if (!msg.ParseFromArray(data, static_cast<int>(size))) return 0;
  auto decoded = mm::DecodeGrpcInferRequest(msg);
  if (!decoded.ok()) return 0;
  mm::InferResponse response;
  response.model_name = decoded->model_name;
  response.id = decoded->id;
  for (const auto& t : decoded->inputs) response.outputs.push_back(t);
  inference::ModelInferResponse out;
  mm::EncodeGrpcInferResponse(response, &out);
  return 0;
}
