// gRPC over HTTP/2, the parts above the frames (the gRPC "PROTOCOL-HTTP2"
// specification), as pure functions for the native HTTP/2 transport
// (issue 26): nghttp2 hands a stream's DATA payloads over in whatever pieces
// the peer sent, and these turn them into messages, read the call's
// grpc-timeout and write what the trailers carry.
//
//   Length-Prefixed-Message = Compressed-Flag (1 byte: 0 or 1)
//                             Message-Length  (4 bytes, big-endian)
//                             Message
//
// No state beyond a GrpcMessageReader's; nothing here allocates per message
// unless a message arrives split across pieces (then it is gathered once).
// Thread-safety: a GrpcMessageReader belongs to one stream; the functions
// are reentrant.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace mm {

inline constexpr size_t kGrpcPrefixBytes = 5;

// Appends the 5-byte prefix of a message of `length` bytes (uncompressed).
void AppendGrpcMessagePrefix(std::string& out, uint32_t length);

// Gathers one stream's messages out of its DATA payloads.
//
// Contract:
//  1. Feed() takes the pieces in order and calls `on_message` once per
//     complete message, in order, with a view valid only during the call: into
//     the piece itself when the whole message is in it (no copy), else into
//     the reader's buffer.
//  2. A message longer than `max_message_bytes` fails the stream with
//     RESOURCE_EXHAUSTED naming both sizes, before its bytes are buffered; a
//     compressed message (flag 1) is inflated when the call's grpc-encoding
//     is gzip or deflate (at most `max_message_bytes` once inflated, else
//     RESOURCE_EXHAUSTED; bytes that do not inflate: INTERNAL), and fails
//     the stream with UNIMPLEMENTED under identity; a flag other than 0 or 1
//     fails it with INTERNAL, as the specification says of a malformed
//     message. After a failure, Feed() returns the same status and delivers
//     nothing more.
//  3. A failure `on_message` returns stops the feeding and is returned.
//  4. Finish() at the end of the stream: OK when no message is left half
//     read, else INTERNAL naming how many bytes are missing.
// A call's grpc-encoding: how its compressed messages are compressed.
enum class GrpcEncoding { kIdentity, kGzip, kDeflate };

// The encoding a grpc-encoding value names; nullopt for one not supported.
std::optional<GrpcEncoding> ParseGrpcEncoding(std::string_view value);

class GrpcMessageReader {
 public:
  using OnMessage = std::function<Status(std::string_view message)>;
  explicit GrpcMessageReader(size_t max_message_bytes,
                             GrpcEncoding encoding = GrpcEncoding::kIdentity)
      : max_message_bytes_(max_message_bytes), encoding_(encoding) {}

  Status Feed(std::string_view piece, const OnMessage& on_message);
  Status Finish() const;

  // Inside on_message: `message` (the view it was given) as a string of the
  // caller's own. A message the reader gathered (it came in several pieces,
  // as every big one does) or inflated is the reader's own buffer, handed
  // over without a copy; one whole in a piece (a view into the transport's
  // read buffer) is copied.
  std::string Take(std::string_view message);

  // Messages delivered so far.
  uint64_t messages() const { return messages_; }
  // Whether a message has begun and not ended (its prefix or body half read).
  bool partial() const { return prefix_have_ > 0 || in_message_; }

 private:
  // Reads the prefix in prefix_[0..5); sets expected_ and compressed_ (or fails).
  Status TakePrefix();
  // Hands a whole message over, inflated first when it is compressed.
  Status Deliver(std::string_view message, const OnMessage& on_message);

  const size_t max_message_bytes_;
  const GrpcEncoding encoding_;
  bool compressed_ = false;  // the current message's flag
  std::string inflated_;     // a compressed message, inflated
  char prefix_[kGrpcPrefixBytes] = {};
  size_t prefix_have_ = 0;   // bytes of the current prefix read
  bool in_message_ = false;  // the prefix is read; expected_ bytes follow
  size_t expected_ = 0;
  std::string buffer_;  // the current message's bytes, when split across pieces
  Status failed_;
  uint64_t messages_ = 0;
};

// The grpc-timeout header: 1 to 8 digits and a unit (H, M, S, m, u, n).
// INVALID_ARGUMENT naming the value and the expected form otherwise. Values
// beyond what a nanosecond count holds saturate (a timeout of 99999999 hours
// is no timeout in practice).
StatusOr<std::chrono::nanoseconds> ParseGrpcTimeout(std::string_view value);

// The grpc-message trailer's form of `message`: every byte outside
// 0x20..0x7E, and '%', as %XX (upper-case hex), so that UTF-8 and control
// characters pass through HTTP/2 header values intact.
std::string PercentEncodeGrpcMessage(std::string_view message);

// Its inverse, for clients and tests; a malformed escape is kept as it is
// (the specification asks receivers not to fail on one).
std::string PercentDecodeGrpcMessage(std::string_view encoded);

}  // namespace mm
