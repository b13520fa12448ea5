// Fuzzes the call socket's decoders (isolation/worker_calls_protocol.h):
// what a worker (untrusted: it runs tenant code) sends the server, and what
// the server sends a worker. Checks, beyond "no crash, leak or UB":
//  - every rejection is INVALID_ARGUMENT with a message;
//  - encoding is canonical: whatever decodes re-encodes to exactly the bytes
//    it was decoded from (tensor bytes included, padding too);
//  - decoded tensors are views inside the input, and their bytes agree with
//    their dtype and shape (BYTES: well-framed elements).
//
// Input layout: byte 0 picks the decoder (modulo 10); the rest is the payload.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

#include "isolation/worker_calls_protocol.h"

namespace {

void Check(bool cond, const char* what) {
  if (!cond) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

std::span<const std::byte> AsBytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

template <typename T>
bool Rejected(const mm::StatusOr<T>& r) {
  if (r.ok()) return false;
  Check(r.status().code() == mm::StatusCode::kInvalidArgument, "rejections are INVALID_ARGUMENT");
  Check(!r.status().message().empty(), "rejections have messages");
  return true;
}

void CheckSame(std::span<const std::byte> in, const std::string& bytes) {
  Check(in.size() == bytes.size() && std::equal(in.begin(), in.end(), AsBytes(bytes).begin()),
        "re-encoding gives back the decoded bytes");
}

void CheckViews(std::span<const std::byte> in, const std::vector<mm::CallTensor>& tensors) {
  for (const mm::CallTensor& t : tensors) {
    if (t.data.empty()) continue;
    Check(t.data.data() >= in.data() && t.data.data() + t.data.size() <= in.data() + in.size(),
          "tensor bytes lie inside the payload");
    Check(static_cast<size_t>(t.data.data() - in.data()) % mm::kTensorAlignment == 0,
          "tensor bytes are aligned in the payload");
  }
}

template <typename Decode, typename Encode>
void RoundTripParts(std::span<const std::byte> in, Decode decode, Encode encode) {
  auto a = decode(in);
  if (Rejected(a)) return;
  mm::WireParts parts;
  encode(*a, parts);
  const std::string bytes = parts.Flatten();
  CheckSame(in, bytes);
  Check(decode(AsBytes(bytes)).ok(), "a re-encoded message decodes");
}

template <typename Decode, typename Encode>
void RoundTrip(std::span<const std::byte> in, Decode decode, Encode encode) {
  auto a = decode(in);
  if (Rejected(a)) return;
  const std::string bytes = encode(*a);
  CheckSame(in, bytes);
  Check(decode(AsBytes(bytes)).ok(), "a re-encoded message decodes");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int which = data[0] % 10;
  // A copy in its own (aligned) buffer, as a received frame is.
  const std::string payload(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::span<const std::byte> in = AsBytes(payload);

  switch (which) {
    case 0:
      RoundTripParts(
          in,
          [&](auto p) {
            auto m = mm::DecodeInferCall(p);
            if (m.ok() && p.data() == in.data()) CheckViews(in, m->inputs);
            return m;
          },
          mm::EncodeInferCall);
      break;
    case 1:
      RoundTripParts(
          in,
          [&](auto p) {
            auto m = mm::DecodeRespond(p);
            if (m.ok() && p.data() == in.data()) CheckViews(in, m->body.outputs);
            return m;
          },
          mm::EncodeRespond);
      break;
    case 2:
      RoundTripParts(
          in,
          [&](auto p) {
            auto m = mm::DecodeInferResponse(p);
            if (m.ok() && p.data() == in.data()) CheckViews(in, m->body.outputs);
            return m;
          },
          mm::EncodeInferResponse);
      break;
    case 3:
      RoundTrip(
          in, [](auto p) { return mm::DecodeModelReady(p); }, mm::EncodeModelReady);
      break;
    case 4:
      RoundTrip(
          in, [](auto p) { return mm::DecodeMetricCreate(p); }, mm::EncodeMetricCreate);
      break;
    case 5:
      RoundTrip(
          in, [](auto p) { return mm::DecodeMetricUpdate(p); }, mm::EncodeMetricUpdate);
      break;
    case 6:
      RoundTrip(
          in, [](auto p) { return mm::DecodeMetricId(p, "MetricValue"); }, mm::EncodeMetricId);
      break;
    case 7:
      RoundTrip(
          in, [](auto p) { return mm::DecodeCallReply(p); }, mm::EncodeCallReply);
      break;
    case 8:
      RoundTrip(
          in, [](auto p) { return mm::DecodeRequestRef(p); }, mm::EncodeRequestRef);
      break;
    case 9: {
      // CallReply bodies.
      const std::string_view body(payload);
      if (auto v = mm::DecodeBoolBody(body); !Rejected(v)) {
        Check(mm::EncodeBoolBody(*v) == body, "bool body canonical");
      }
      if (auto v = mm::DecodeU64Body(body); !Rejected(v)) {
        Check(mm::EncodeU64Body(*v) == body, "u64 body canonical");
      }
      if (auto v = mm::DecodeF64Body(body); !Rejected(v)) {
        Check(mm::EncodeF64Body(*v) == body, "f64 body canonical");
      }
      break;
    }
  }
  return 0;
}
