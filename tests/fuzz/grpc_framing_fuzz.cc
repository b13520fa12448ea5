// libFuzzer target for the gRPC message layer of the native HTTP/2
// transport (http/grpc_framing.h): the bytes of a stream's DATA frames, cut
// into pieces at sizes the input picks, through GrpcMessageReader; and the
// same bytes as a grpc-timeout header and a grpc-message trailer.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http/grpc_framing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t piece = 1 + data[0] % 64;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  mm::GrpcMessageReader reader(4096);
  size_t total = 0;
  for (size_t i = 0; i < bytes.size(); i += piece) {
    mm::Status s = reader.Feed(bytes.substr(i, piece), [&](std::string_view m) {
      total += m.size();
      return m.size() == 13 ? mm::InvalidArgument("unlucky") : mm::OkStatus();
    });
    if (!s.ok()) break;
  }
  (void)reader.Finish();
  if (total > bytes.size()) __builtin_trap();  // messages are made of the input's bytes
  (void)mm::ParseGrpcTimeout(bytes);
  if (mm::PercentDecodeGrpcMessage(mm::PercentEncodeGrpcMessage(bytes)) != bytes) {
    __builtin_trap();
  }
  return 0;
}
