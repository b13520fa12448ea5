// Inside the HTTP/2 transport (http2_session.cc): one HTTP/2 stream's state
// from its HEADERS to its close, and the small helpers the session uses on
// it. Not a door: nothing outside src/http includes it.
#pragma once

#include <nghttp2/nghttp2.h>

#include <array>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/cancellation.h"
#include "core/delivery.h"
#include "core/status.h"
#include "http/grpc_calls.h"
#include "http/grpc_framing.h"
#include "http/router.h"
#include "rpc/rpc_methods.h"

namespace mm::http2_internal {

inline int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline nghttp2_nv Header(std::string_view name, std::string_view value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NONE};
}

// Whether `value` is a gRPC content type: "application/grpc", alone or
// followed by "+proto" (or another format) or parameters.
inline bool IsGrpcContentType(std::string_view value) {
  constexpr std::string_view kGrpc = "application/grpc";
  if (value.size() < kGrpc.size()) return false;
  for (size_t i = 0; i < kGrpc.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(value[i])) != kGrpc[i]) return false;
  }
  return value.size() == kGrpc.size() || value[kGrpc.size()] == '+' || value[kGrpc.size()] == ';';
}

// Bytes of an answer to write, in order: its own (`bytes`), or a view of
// bytes `owner` keeps alive (a REST reply's binary tensors). `receipt` is
// settled once they are written, or not.
struct H2Out {
  std::string bytes;
  std::string_view view;
  std::shared_ptr<const void> owner;
  std::shared_ptr<const void> keep;  // what `receipt` settles into (GrpcReply::keep): after it
  DeliveryReceipt receipt;

  const char* data() const { return owner != nullptr ? view.data() : bytes.data(); }
  size_t size() const { return owner != nullptr ? view.size() : bytes.size(); }
};

// A REST request (the HTTP port's HTTP/2): its head as the Router takes it,
// and its body gathered (padded for the JSON parser, as HTTP/1.1's is).
struct H2Rest {
  HttpMethod method = HttpMethod::kOther;
  std::string target;
  std::optional<size_t> inference_header_length;
  Status bad_head;  // a header that is malformed: 400 once the request ends
  std::shared_ptr<std::string> body;
  bool head_only = false;               // HEAD: the answer's head alone
  std::shared_ptr<EventStream> events;  // a /generate_stream reply being written
};

// One HTTP/2 stream: a gRPC call or a REST request from its HEADERS to its
// close.
struct H2Stream {
  int32_t id = 0;
  size_t index = 0;  // its place in Http2Session::streams_
  int64_t received_ns = 0;
  size_t header_bytes = 0;
  uint64_t body_bytes = 0;
  // The request.
  bool post = false;
  bool grpc_content_type = false;
  int http_status = 0;           // not a gRPC call: the HTTP status it gets once it ends
  bool plain = false;            // answered as plain HTTP (no trailers)
  std::unique_ptr<H2Rest> rest;  // a REST request (the HTTP port)
  std::optional<rpc::Method> method;
  std::string authorization;
  std::string traceparent;
  GrpcEncoding encoding = GrpcEncoding::kIdentity;  // of its compressed messages
  Status refused;  // a request refused from its headers: answered once they are in
  std::shared_ptr<GrpcUnaryCall> call;          // a unary call
  bool streaming = false;                       // ModelStreamInfer
  std::shared_ptr<GrpcStreamCall> stream_call;  // its call, until the stream closes
  std::optional<GrpcMessageReader> reader;
  bool request_done = false;                   // END_STREAM received (or reading stopped)
  bool running = false;                        // a unary call handed to the core
  int64_t deadline_ns = 0;                     // from grpc-timeout; 0: none
  std::shared_ptr<Cancellation> cancellation;  // a unary ModelInfer's
  // ModelStreamInfer's flow: requests handed on and not answered, and the
  // messages that wait for room (--grpc-stream-max-pending) with their bytes
  // not yet consumed (so HTTP/2 flow control holds the client back).
  size_t in_flight = 0;
  std::deque<std::string> waiting;
  uint64_t unconsumed = 0;
  // A stream lives as long as its client likes; a message begun on it must
  // arrive in time (when it began, and its bytes since).
  int64_t partial_since_ns = 0;
  uint64_t partial_bytes = 0;
  uint64_t messages_seen = 0;
  // The answer: messages to write in order (the front is being handed to
  // nghttp2), then the trailers with end_status once `ending`.
  std::deque<H2Out> outgoing;
  size_t front_queued = 0;  // bytes of the front handed to nghttp2 (read callback)
  size_t front_sent = 0;    // bytes of the front in the output (send_data callback)
  bool headers_sent = false;
  bool deferred = false;  // the data provider waits for a message (NGHTTP2_ERR_DEFERRED)
  bool ending = false;    // no message will follow those in `outgoing`
  bool answered = false;  // the end is decided (a unary call's answer, or a stream's end)
  Status end_status;
  std::array<char, 12> status_text{};
  size_t status_size = 0;
  std::string grpc_message;
};

// Takes one request header field of a gRPC call (HTTP/2 names are lower
// case; `name` is not empty): the pseudo-headers :method and :path, and the
// fields the call reads: authorization, content-type, grpc-timeout,
// grpc-encoding and traceparent (with `traces`). A field that refuses the
// call (an unknown method, a malformed timeout, an encoding not supported)
// sets s.refused, the first such only; others are ignored.
void TakeGrpcHeader(H2Stream& s, std::string_view name, std::string_view value, bool traces);

}  // namespace mm::http2_internal
