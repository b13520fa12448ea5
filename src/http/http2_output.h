// Inside the HTTP/2 transport (http2_session.cc): the answering half of a
// connection. It decides what each stream sends (a gRPC call's messages and
// trailers, a trailers-only error, a plain HTTP answer, a REST reply's head
// and body) and gathers what nghttp2 then has to send into one write: frame
// headers and small frames copied into one buffer, a message's bytes
// referred to where they lie (NGHTTP2_DATA_FLAG_NO_COPY), so a 4 MiB answer
// is not copied again. Not a door: src/http only.
//
// Owned by its session and touched only on the session's loop's thread.
// The session writes what Gather collected, one write at a time, and calls
// Written when that write is done; meanwhile the output keeps what the write
// refers to:
//   1. a message leaves its stream's `outgoing` once all its bytes are in
//      the output, and stays here (its receipt unsettled) until Written,
//      which settles the receipt as delivered or not;
//   2. a stream nghttp2 closed is kept (Retire) until the next Written, as
//      the write may still refer to its front message.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/delivery.h"
#include "core/status.h"
#include "http/asio.h"
#include "http/grpc_framing.h"
#include "http/http2_stream.h"
#include "http/router.h"

namespace mm::http2_internal {

class H2Output {
 public:
  // Before any other call: the session's nghttp2 session (not owned).
  void Attach(nghttp2_session* session) { session_ = session; }

  // ---- what a stream answers

  // Queues bytes of a gRPC answer; the first sends the response HEADERS.
  void Queue(H2Stream* s, H2Out out);
  // A big answer's message in its parts, written where they lie: the head's
  // ranges (kept by the head itself) and the output tensors (kept by
  // `owner`); `keep` and the receipt ride on the last part.
  void QueueParts(H2Stream* s, GrpcResponseParts parts, std::shared_ptr<const void> owner,
                  std::shared_ptr<const void> keep, DeliveryReceipt receipt);
  // Decides a gRPC call's end: after the messages queued, trailers with
  // `status` (grpc-status 0 when OK); with none queued ever, a
  // trailers-only response. An error cancels what the call still runs.
  // Once per stream: later calls do nothing.
  void End(H2Stream* s, Status status);
  // A ModelStreamInfer stream ends (End with its end_status) once its client
  // half-closed (or reading stopped), every request is answered and nothing
  // waits.
  void MaybeEndStream(H2Stream* s);
  // A plain HTTP/2 answer, for a request to the gRPC port that is not a
  // gRPC call: `status` and a JSON body saying what this port takes.
  void Respond(H2Stream* s, int status);
  // A REST reply (once per stream: later calls do nothing): its head, then
  // its body where it lies (the JSON, the binary tensors). True when it is
  // a /generate_stream reply, whose events follow as they come: the caller
  // takes them from s->rest->events into s->outgoing, then Resume, and sets
  // s->ending after the last.
  bool ReplyRest(H2Stream* s, HttpReply reply);
  // A stream that waits for bytes (deferred) has some now, or its end.
  void Resume(H2Stream* s);

  // ---- nghttp2's side

  // The send_data callback's work (the session registers the callback): the
  // frame header is copied, the `length` bytes of the stream's front message
  // are referred to. 0, or NGHTTP2_ERR_CALLBACK_FAILURE.
  int SendData(nghttp2_frame* frame, const uint8_t* frame_head, size_t length,
               nghttp2_data_source* source);
  // nghttp2 closed `s` (no longer open, out of its user data): owned here
  // until the next Written.
  void Retire(H2Stream* s) { retired_.emplace_back(s); }

  // ---- the write

  // Takes what nghttp2 has to send into the output, up to about
  // kBatchBytes. False on nghttp2's error (the connection must close).
  bool Gather();
  bool empty() const { return segments_.empty(); }
  // The output as buffers for one write (valid until Written), and its bytes.
  const std::vector<net::const_buffer>& Buffers(size_t* bytes);
  // The write of Buffers is done (`written`: its bytes went out), or there
  // was nothing to write: the receipts of the messages in it are settled,
  // and the output and the retired streams are freed.
  void Written(bool written);
  // Ids of the streams whose messages the output took, making room for more
  // (their waiting messages, a REST reply's next events); emptied.
  std::vector<int32_t> TakeRoomMade() { return std::exchange(room_made_, {}); }

  static constexpr size_t kBatchBytes = 256 << 10;

 private:
  // nghttp2's read callback of every stream's data provider.
  static ssize_t ReadMessage(nghttp2_session* session, int32_t id, uint8_t*, size_t length,
                             uint32_t* flags, nghttp2_data_source* source, void*);
  static nghttp2_data_provider BodyOf(H2Stream* s);
  void SubmitHead(H2Stream* s, const nghttp2_nv* fields, size_t count, bool body);
  void Copy(const uint8_t* data, size_t size);
  void Refer(const char* data, size_t size);

  struct Segment {
    bool owned;        // in out_ at offset, else at data
    const char* data;  // (not owned)
    size_t offset;     // (owned)
    size_t size;
  };

  nghttp2_session* session_ = nullptr;
  std::string out_;
  std::vector<Segment> segments_;
  std::vector<net::const_buffer> buffers_;
  std::vector<H2Out> written_;                      // messages in the output
  std::vector<std::unique_ptr<H2Stream>> retired_;  // closed, freed at the next Written
  std::vector<int32_t> room_made_;
};

}  // namespace mm::http2_internal
