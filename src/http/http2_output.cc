#include "http/http2_output.h"

#include <algorithm>
#include <charconv>
#include <string_view>
#include <utility>

#include "http/http2_rest.h"

namespace mm::http2_internal {

namespace {

// Writes `code` into the stream's status_text (its :status or grpc-status).
void SetStatusText(H2Stream* s, int code) {
  s->status_size = static_cast<size_t>(
      std::to_chars(s->status_text.data(), s->status_text.data() + s->status_text.size(), code)
          .ptr -
      s->status_text.data());
}

}  // namespace

nghttp2_data_provider H2Output::BodyOf(H2Stream* s) {
  nghttp2_data_provider body;
  body.source.ptr = s;
  body.read_callback = &ReadMessage;
  return body;
}

void H2Output::QueueParts(H2Stream* s, GrpcResponseParts parts, std::shared_ptr<const void> owner,
                          std::shared_ptr<const void> keep, DeliveryReceipt receipt) {
  auto head = std::make_shared<const std::string>(std::move(parts.head));
  for (size_t i = 0; i < parts.pieces.size(); ++i) {
    const GrpcResponseParts::Piece& piece = parts.pieces[i];
    H2Out out;
    if (piece.in_head) {
      out.view = std::string_view(*head).substr(piece.head_offset, piece.size);
      out.owner = head;
    } else {
      out.view = std::string_view(reinterpret_cast<const char*>(piece.data), piece.size);
      out.owner = owner;
    }
    if (i + 1 == parts.pieces.size()) {
      out.keep = std::move(keep);
      out.receipt = std::move(receipt);
    }
    Queue(s, std::move(out));
  }
}

void H2Output::Queue(H2Stream* s, H2Out out) {
  s->outgoing.push_back(std::move(out));
  if (!s->headers_sent) {
    s->headers_sent = true;
    const nghttp2_nv headers[] = {Header(":status", "200"),
                                  Header("content-type", "application/grpc")};
    const nghttp2_data_provider body = BodyOf(s);
    nghttp2_submit_response(session_, s->id, headers, std::size(headers), &body);
  } else {
    Resume(s);
  }
}

void H2Output::Resume(H2Stream* s) {
  if (!s->deferred) return;
  s->deferred = false;
  nghttp2_session_resume_data(session_, s->id);
}

void H2Output::MaybeEndStream(H2Stream* s) {
  if (!s->streaming || s->answered || !s->request_done || s->in_flight > 0 || !s->waiting.empty()) {
    return;
  }
  End(s, s->end_status);
}

void H2Output::End(H2Stream* s, Status status) {
  if (s->answered) return;
  // (The call stays until the stream closes: this may run inside its Run.)
  s->answered = true;
  s->ending = true;
  if (!status.ok()) {
    if (s->cancellation != nullptr) s->cancellation->Cancel();
    if (s->stream_call != nullptr) s->stream_call->CancelAll();
  }
  SetStatusText(s, status.ok() ? 0 : GrpcCodeFor(status.code()));
  if (!status.ok()) s->grpc_message = PercentEncodeGrpcMessage(status.message());
  s->end_status = std::move(status);
  if (s->headers_sent) return Resume(s);  // the trailers follow the last message
  const std::string_view code_text(s->status_text.data(), s->status_size);
  if (s->end_status.ok()) {
    const nghttp2_nv headers[] = {Header(":status", "200"),
                                  Header("content-type", "application/grpc"),
                                  Header("grpc-status", code_text)};
    nghttp2_submit_response(session_, s->id, headers, std::size(headers), nullptr);
  } else {
    const nghttp2_nv headers[] = {
        Header(":status", "200"), Header("content-type", "application/grpc"),
        Header("grpc-status", code_text), Header("grpc-message", s->grpc_message)};
    nghttp2_submit_response(session_, s->id, headers, std::size(headers), nullptr);
  }
  s->headers_sent = true;
}

void H2Output::Respond(H2Stream* s, int status) {
  if (s->answered) return;
  s->answered = true;
  s->ending = true;
  s->plain = true;
  SetStatusText(s, status);
  static constexpr std::string_view kBody =
      R"({"error":"this port serves gRPC (inference.GRPCInferenceService): POST with )"
      R"(content-type application/grpc"})";
  s->outgoing.push_back(H2Out{std::string(kBody), {}, nullptr, nullptr, {}});
  s->headers_sent = true;
  const nghttp2_nv headers[] = {
      Header(":status", std::string_view(s->status_text.data(), s->status_size)),
      Header("content-type", "application/json")};
  const nghttp2_data_provider body = BodyOf(s);
  nghttp2_submit_response(session_, s->id, headers, std::size(headers), &body);
}

void H2Output::SubmitHead(H2Stream* s, const nghttp2_nv* fields, size_t count, bool body) {
  if (!body) {
    nghttp2_submit_response(session_, s->id, fields, count, nullptr);
    return;
  }
  const nghttp2_data_provider provider = BodyOf(s);
  nghttp2_submit_response(session_, s->id, fields, count, &provider);
}

bool H2Output::ReplyRest(H2Stream* s, HttpReply reply) {
  if (s->answered) return false;
  s->answered = true;
  s->plain = true;
  s->headers_sent = true;
  RestHead head;
  RestResponseHead(reply, head);
  if (reply.events != nullptr) {
    s->rest->events = std::move(reply.events);
    SubmitHead(s, head.fields.data(), head.size, /*body=*/true);
    return true;
  }
  s->ending = true;
  if (!s->rest->head_only) RestBodyPieces(reply, s->outgoing);
  if (s->outgoing.empty()) reply.receipt.Settle(true);  // the head is the whole answer
  SubmitHead(s, head.fields.data(), head.size, /*body=*/!s->outgoing.empty());
  return false;
}

// nghttp2 asks for the next DATA frame's bytes: it gets their length (at
// most the front message's rest), and the bytes go out where they lie
// (SendData). With nothing queued the stream waits (deferred) until a
// message comes or the call ends; at the end come the trailers.
ssize_t H2Output::ReadMessage(nghttp2_session* session, int32_t id, uint8_t*, size_t length,
                              uint32_t* flags, nghttp2_data_source* source, void*) {
  auto* s = static_cast<H2Stream*>(source->ptr);
  size_t n = 0;
  if (!s->outgoing.empty()) {
    n = std::min(length, s->outgoing.front().size() - s->front_queued);
    s->front_queued += n;
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  } else if (!s->ending) {
    s->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  const bool last =
      s->ending && (s->outgoing.empty() ||
                    (s->outgoing.size() == 1 && s->front_queued == s->outgoing.front().size()));
  if (last && s->plain) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;  // no trailers: the body ends the stream
  } else if (last) {
    *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    const std::string_view code(s->status_text.data(), s->status_size);
    int rv;
    if (s->end_status.ok()) {
      const nghttp2_nv trailers[] = {Header("grpc-status", code)};
      rv = nghttp2_submit_trailer(session, id, trailers, std::size(trailers));
    } else {
      const nghttp2_nv trailers[] = {Header("grpc-status", code),
                                     Header("grpc-message", s->grpc_message)};
      rv = nghttp2_submit_trailer(session, id, trailers, std::size(trailers));
    }
    if (rv != 0) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  return static_cast<ssize_t>(n);
}

int H2Output::SendData(nghttp2_frame* frame, const uint8_t* frame_head, size_t length,
                       nghttp2_data_source* source) {
  auto* s = static_cast<H2Stream*>(source->ptr);
  if (frame->data.padlen > 0 || s->outgoing.empty()) return NGHTTP2_ERR_CALLBACK_FAILURE;
  Copy(frame_head, 9);
  H2Out& front = s->outgoing.front();
  Refer(front.data() + s->front_sent, length);
  s->front_sent += length;
  if (s->front_sent == front.size()) {
    // Whole in the output: kept (and its receipt held) until the write is done.
    written_.push_back(std::move(front));
    s->outgoing.pop_front();
    s->front_queued = 0;
    s->front_sent = 0;
    // Room for more: waiting stream messages, or a REST reply's next events.
    if (s->waiting.size() > 0 || (s->rest != nullptr && s->rest->events != nullptr)) {
      room_made_.push_back(s->id);
    }
  }
  return 0;
}

void H2Output::Copy(const uint8_t* data, size_t size) {
  if (!segments_.empty() && segments_.back().owned) {
    segments_.back().size += size;
  } else {
    segments_.push_back({true, nullptr, out_.size(), size});
  }
  out_.append(reinterpret_cast<const char*>(data), size);
}

void H2Output::Refer(const char* data, size_t size) {
  if (size > 0) segments_.push_back({false, data, 0, size});
}

bool H2Output::Gather() {
  for (;;) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) return false;
    if (n == 0) return true;
    Copy(data, static_cast<size_t>(n));
    if (out_.size() >= kBatchBytes) return true;
  }
}

const std::vector<net::const_buffer>& H2Output::Buffers(size_t* bytes) {
  buffers_.clear();
  *bytes = 0;
  for (const Segment& seg : segments_) {
    buffers_.emplace_back(seg.owned ? out_.data() + seg.offset : seg.data, seg.size);
    *bytes += seg.size;
  }
  return buffers_;
}

void H2Output::Written(bool written) {
  segments_.clear();
  out_.clear();
  for (auto& out : written_) out.receipt.Settle(written);
  written_.clear();
  retired_.clear();
}

}  // namespace mm::http2_internal
