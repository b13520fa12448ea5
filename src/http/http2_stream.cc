#include "http/http2_stream.h"

#include <algorithm>
#include <string>

namespace mm::http2_internal {

void TakeGrpcHeader(H2Stream& s, std::string_view name, std::string_view value, bool traces) {
  if (name[0] == ':') {
    if (name == ":method") {
      s.post = value == "POST";
    } else if (name == ":path") {
      s.method = rpc::MethodFromPath(value);
      if (!s.method.has_value() && s.refused.ok()) {
        s.refused = Unimplemented("unknown method " + std::string(value.substr(0, 200)) +
                                  ": the server serves inference.GRPCInferenceService");
      }
    }
    return;
  }
  switch (name[0]) {
    case 'a':
      if (name == "authorization") s.authorization.assign(value);
      break;
    case 'c':
      if (name == "content-type") s.grpc_content_type = IsGrpcContentType(value);
      break;
    case 'g':
      if (name == "grpc-timeout") {
        auto timeout = ParseGrpcTimeout(value);
        if (!timeout.ok()) {
          if (s.refused.ok()) s.refused = timeout.status();
        } else {
          const int64_t ns = std::min<int64_t>(timeout->count(), int64_t{1} << 61);
          s.deadline_ns = s.received_ns + std::max<int64_t>(ns, 1);
        }
      } else if (name == "grpc-encoding") {
        if (auto encoding = ParseGrpcEncoding(value)) {
          s.encoding = *encoding;
        } else if (s.refused.ok()) {
          s.refused = Unimplemented("grpc-encoding '" + std::string(value.substr(0, 64)) +
                                    "' is not supported; send messages uncompressed "
                                    "(identity) or as gzip or deflate");
        }
      }
      break;
    case 't':
      if (name == "traceparent" && traces) s.traceparent.assign(value);
      break;
    default:
      break;
  }
}

}  // namespace mm::http2_internal
