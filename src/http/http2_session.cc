// The HTTP server's HTTP/2 connections: HTTP/2 by nghttp2 (framing, HPACK,
// flow control, the protocol's state machine) on the HTTP server's event
// loops (http_server_impl.h), carrying gRPC calls (grpc_calls.h) on the
// native gRPC port, and REST requests to the Router (http2_rest.h) on the
// HTTP port, whose HTTP/1.1 session hands over a client that speaks HTTP/2
// (h2c with prior knowledge, or h2 chosen by ALPN).
//
// One Http2Session per client, on one event loop: its nghttp2 session is
// touched only from that loop's thread. Bytes read go through
// nghttp2_session_mem_recv, whose callbacks gather each stream's headers and
// messages; a call whose request is complete runs, and its answer comes back
// to the loop (net::dispatch) to be submitted. Output is gathered from
// nghttp2_session_mem_send: frame headers and small frames are copied into
// one buffer, a response message's bytes are written where they lie
// (NGHTTP2_DATA_FLAG_NO_COPY), so a 4 MiB answer is not copied again. One
// write is in flight at a time.
//
// A unary call, and a REST request, runs once its request has ended (a
// /generate_stream reply's events are written as they come, one DATA frame
// at a time as HTTP/1.1 writes them); a ModelStreamInfer stream
// hands each message on as it comes (GrpcStreamCall), at most
// stream_max_pending at a time: further messages wait with their bytes
// unconsumed (window updates are ours), so flow control holds the client.
//
// Deadlines, one timer per connection (see Arm and Check): a connection with
// no stream open for read_timeout_ms is closed (GOAWAY), which covers the
// preface; a TLS handshake has tls_handshake_timeout_ms; a unary call's
// request, and each message of a stream, must arrive within read_timeout_ms
// plus its size at min_transfer_bytes_per_s (else RST_STREAM); a write of
// ours must be taken in the same time; a call's grpc-timeout ends it with
// DEADLINE_EXCEEDED and cancels its request. Inference itself runs under no
// deadline of ours.
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <spdlog/spdlog.h>

#include "http/grpc_calls.h"
#include "http/grpc_framing.h"
#include "http/http2_output.h"
#include "http/http2_rest.h"
#include "http/http2_stream.h"
#include "http/http_server_impl.h"

namespace mm {

namespace {

using http2_internal::H2Out;
using http2_internal::H2Output;
using http2_internal::H2Rest;
using http2_internal::H2Stream;
using http2_internal::Header;
using http2_internal::IsGrpcContentType;
using http2_internal::NowNs;

// The connection's HTTP/2, above its transport: the socket, or the TLS
// stream over it, which Http2Transport<Stream> below adds (the one part
// that depends on the stream's type), starting each read, write and
// handshake and handing its completion back (OnRead, OnWritten,
// OnHandshake).
class Http2Session : public Connection, public std::enable_shared_from_this<Http2Session> {
 public:
  // `rest`: the HTTP port's (REST requests to the Router), else the gRPC
  // port's (gRPC calls only).
  // `tls`: the transport is a TLS stream (its handshake comes first);
  // `executor`: its event loop's.
  Http2Session(HttpServer::Impl* server, bool rest, bool tls, Executor executor)
      : registration_(server, this),
        server_(server),
        rest_(rest),
        tls_(tls),
        executor_(executor),
        timer_(executor) {}
  Http2Session(const Http2Session&) = delete;
  Http2Session& operator=(const Http2Session&) = delete;

  // Before Run: the connection comes from the HTTP port's HTTP/1.1 session,
  // past its TLS handshake, which read `received` of it already.
  void TakeOver(std::string received) {
    taken_over_ = true;
    received_ = std::move(received);
  }

  virtual ~Http2Session() {
    // Streams still open are owned through nghttp2's user data, which
    // nghttp2_session_del does not hand back.
    for (H2Stream* s : streams_) {
      if (s->cancellation != nullptr) s->cancellation->Cancel();
      if (s->stream_call != nullptr) s->stream_call->CancelAll();
      delete s;
    }
    if (session_ != nullptr) nghttp2_session_del(session_);
  }

  void Run() {
    net::dispatch(executor_, [self = this->shared_from_this()] {
      if (!self->Setup()) return self->Close();
      self->SetIdleDeadline();
      if (self->taken_over_) {
        self->handshaken_ = true;
        const std::string received = std::move(self->received_);
        return self->Receive(reinterpret_cast<const uint8_t*>(received.data()), received.size());
      }
      if (self->tls_) {
        self->Handshake();
      } else {
        self->handshaken_ = true;
        self->Read();
      }
    });
  }

  // GOAWAY naming the last stream taken: the calls open finish and are
  // written (a stream stops taking requests), no new one starts, then the
  // connection closes.
  void Shutdown() override {
    net::dispatch(executor_, [self = this->shared_from_this()] {
      if (self->closed_ || self->session_ == nullptr) return;
      if (!self->handshaken_) return self->Close();  // (TLS) nothing was asked yet
      self->closing_ = true;
      nghttp2_submit_goaway(self->session_, NGHTTP2_FLAG_NONE,
                            nghttp2_session_get_last_proc_stream_id(self->session_),
                            NGHTTP2_NO_ERROR, nullptr, 0);
      // A stream its client keeps open takes no more requests: the ones in
      // flight are answered, then it ends UNAVAILABLE (a client retries
      // elsewhere).
      // A unary call whose request is still arriving was never taken:
      // refused (REFUSED_STREAM, which a client may retry elsewhere).
      size_t running = 0;
      for (size_t i = 0; i < self->streams_.size(); ++i) {
        H2Stream* s = self->streams_[i];
        if (s->streaming && !s->request_done) {
          self->StopReading(s, Unavailable("the server is shutting down; open a new stream (on "
                                           "another replica)"));
        } else if (!s->streaming && !s->request_done && !s->answered) {
          s->request_done = true;
          nghttp2_submit_rst_stream(self->session_, NGHTTP2_FLAG_NONE, s->id,
                                    NGHTTP2_REFUSED_STREAM);
          continue;
        }
        if (!s->answered) ++running;
      }
      if (running > 0) {
        spdlog::info("{} connection from {}: shutting down with {} call(s) to answer first",
                     self->What(), self->Peer(), running);
      }
      self->Flush();
    });
  }

 protected:
  // ---- the transport (Http2Transport<Stream>)

  // Starts the TLS handshake (tls only), a read into `buffer`, a write of
  // all of `buffers` (valid until it completes); each completes into
  // OnHandshake, OnRead or OnWritten, on the loop.
  virtual void StartHandshake() = 0;
  virtual void StartRead(net::mutable_buffer buffer) = 0;
  virtual void StartWrite(const std::vector<net::const_buffer>& buffers) = 0;
  // The TCP socket under it.
  virtual Socket& Tcp() = 0;

  void OnHandshake(beast::error_code ec) {
    if (ec) {
      spdlog::debug("gRPC TLS handshake failed: {}", ec.message());
      return Close();
    }
    handshaken_ = true;
    Read();
  }

  void OnRead(beast::error_code ec, size_t n) {
    if (closed_) return;
    if (ec) return Close();
    Receive(input_.get(), n);
  }

  void OnWritten(beast::error_code ec) {
    writing_ = false;
    write_deadline_ns_ = 0;
    output_.Written(!ec);
    if (ec || failed_) return Close();
    // Streams whose written messages made room take in more.
    for (int32_t id : output_.TakeRoomMade()) {
      H2Stream* s = Find(session_, id);
      if (s == nullptr) continue;
      if (s->rest != nullptr) {
        PumpEvents(s);
      } else {
        Pump(s);
      }
    }
    Flush();
  }

 private:
  // "address:port" of the client, for the log.
  std::string Peer() { return PeerOf(Tcp()); }
  const char* What() const { return rest_ ? "HTTP/2" : "gRPC"; }

  // ------------------------------------------------------------ set-up

  bool Setup() {
    nghttp2_session_callbacks* callbacks = nullptr;
    if (nghttp2_session_callbacks_new(&callbacks) != 0) return false;
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, &OnBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, &OnHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &OnFrameRecv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &OnDataChunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &OnStreamClose);
    nghttp2_session_callbacks_set_send_data_callback(callbacks, &OnSendData);
    nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, &OnFrameSend);
    nghttp2_option* option = nullptr;
    nghttp2_option_new(&option);
    // A peer's SETTINGS_MAX_CONCURRENT_STREAMS does not bind a server, which
    // pushes nothing; ours is enforced by nghttp2 (REFUSED_STREAM).
    nghttp2_option_set_max_deflate_dynamic_table_size(option, 4096);
    // Received bytes are consumed (WINDOW_UPDATE) by us: a ModelStreamInfer
    // stream at its bound of pending requests holds its client back.
    nghttp2_option_set_no_auto_window_update(option, 1);
    const int rv = nghttp2_session_server_new2(&session_, callbacks, this, option);
    nghttp2_option_del(option);
    nghttp2_session_callbacks_del(callbacks);
    if (rv != 0) return false;
    output_.Attach(session_);
    const auto& o = server_->options();
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
         rest_ ? o.http2_max_concurrent_streams : o.grpc.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kStreamWindow},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(o.max_header_bytes)},
    };
    if (nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings)) != 0) {
      return false;
    }
    // The connection's window: several streams' 4 MiB tensors at once.
    return nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                                 kConnectionWindow) == 0;
  }

  // Flow control sized for 4 MiB tensors: a stream's whole message is in
  // flight without waiting for a WINDOW_UPDATE (nghttp2 sends one once half
  // the window is consumed; every byte is consumed as it arrives).
  static constexpr uint32_t kStreamWindow = 8u << 20;
  static constexpr int32_t kConnectionWindow = 64 << 20;

  void Handshake() {
    if (closing_ || server_->stopping()) return Close();
    handshake_deadline_ns_ =
        NowNs() + static_cast<int64_t>(server_->options().tls_handshake_timeout_ms) * 1'000'000;
    Arm(handshake_deadline_ns_);
    StartHandshake();
  }

  // ------------------------------------------------------------ input

  void Read() {
    if (closed_) return;
    if (input_ == nullptr) input_ = std::make_unique<uint8_t[]>(kInputBytes);
    StartRead(net::buffer(input_.get(), kInputBytes));
  }
  static constexpr size_t kInputBytes = 64 << 10;

  void Receive(const uint8_t* data, size_t n) {
    in_callback_ = true;  // answers given meanwhile are flushed below, not inside nghttp2
    const ssize_t rv = nghttp2_session_mem_recv(session_, data, n);
    in_callback_ = false;
    if (rv < 0) {
      spdlog::debug("{} connection: HTTP/2 error: {}", What(),
                    nghttp2_strerror(static_cast<int>(rv)));
      // nghttp2 queued a GOAWAY naming the error where it could: send it, then close.
      failed_ = true;
    }
    Flush();
    if (closed_) return;
    if (failed_) {
      if (!writing_) Close();
      return;
    }
    if (nghttp2_session_want_read(session_) != 0) Read();
  }

  static H2Stream* Find(nghttp2_session* session, int32_t id) {
    return static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(session, id));
  }

  static int OnBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
    auto* self = static_cast<Http2Session*>(user);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    auto stream = std::make_unique<H2Stream>();
    stream->id = frame->hd.stream_id;
    stream->received_ns = NowNs();
    stream->index = self->streams_.size();
    if (self->rest_) stream->rest = std::make_unique<H2Rest>();
    self->streams_.push_back(stream.get());
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, stream.release());
    // Its request must arrive in time (the body deadline, see Arm).
    self->Arm(self->streams_.back()->received_ns + self->TransferNs(0));
    return 0;
  }

  static int OnHeader(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
                      size_t name_size, const uint8_t* value, size_t value_size, uint8_t,
                      void* user) {
    auto* self = static_cast<Http2Session*>(user);
    H2Stream* s = Find(session, frame->hd.stream_id);
    if (s == nullptr || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
      return 0;  // (trailers: ignored)
    const std::string_view n(reinterpret_cast<const char*>(name), name_size);
    const std::string_view v(reinterpret_cast<const char*>(value), value_size);
    // As HTTP/2 counts a header list (RFC 9113 6.5.2): 32 bytes per field.
    s->header_bytes += name_size + value_size + 32;
    const size_t limit = self->server_->options().max_header_bytes;
    if (s->header_bytes > limit) {
      if (s->refused.ok()) {
        s->refused = ResourceExhausted("request metadata exceeds the limit of " +
                                       std::to_string(limit) + " bytes (--max-header-bytes)");
      }
      return 0;
    }
    if (n.empty()) return 0;
    if (s->rest != nullptr) {
      const auto& o = self->server_->options();
      http2_internal::TakeRestHeader(*s, n, v, self->server_->router().traces(),
                                     o.max_request_bytes);
      return 0;
    }
    http2_internal::TakeGrpcHeader(*s, n, v, self->server_->router().traces());
    return 0;
  }

  static int OnFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
    auto* self = static_cast<Http2Session*>(user);
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
    H2Stream* s = Find(session, frame->hd.stream_id);
    if (s == nullptr) return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      self->OnRequestHead(s);
    }
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
      s->request_done = true;
      self->OnRequestDone(s);
    }
    return 0;
  }

  // The request's headers are all in: refuse it now if they already say so.
  void OnRequestHead(H2Stream* s) {
    if (s->rest != nullptr) return;  // (decided once it has ended: RunRest)
    if (s->deadline_ns != 0) Arm(s->deadline_ns);
    if (!s->post || !s->grpc_content_type) {
      // Not a gRPC call (the gRPC specification: 415 for another content
      // type), answered once the request has ended, as any HTTP/2 server
      // would; its bytes are dropped meanwhile.
      s->http_status = s->post ? 415 : 405;
      return;
    }
    if (!s->refused.ok()) return output_.End(s, std::move(s->refused));
    if (!s->method.has_value()) {
      return output_.End(s, Unimplemented("the request names no method (:path); expected "
                                          "/inference.GRPCInferenceService/METHOD"));
    }
    s->reader.emplace(server_->options().max_request_bytes, s->encoding);
    if (*s->method != rpc::Method::kModelStreamInfer) {
      s->call = GrpcUnaryCall::Create(*s->method);
      return;
    }
    // A stream authenticates at once (and again at each message).
    auto who = server_->service()->Authenticate(s->authorization, &auth_memo_);
    if (!who.ok()) return output_.End(s, who.status());
    const int32_t id = s->id;
    s->streaming = true;
    s->stream_call = std::make_shared<GrpcStreamCall>(
        server_->grpc_env(), s->authorization, s->traceparent,
        [self = this->shared_from_this(), id](GrpcStreamCall::Out out) {
          net::dispatch(self->executor_, [self, id, out = std::move(out)]() mutable {
            self->OnStreamOut(id, std::move(out));
          });
        });
  }

  static int OnDataChunk(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data,
                         size_t size, void* user) {
    auto* self = static_cast<Http2Session*>(user);
    H2Stream* s = Find(session, id);
    if (s == nullptr) {
      nghttp2_session_consume_connection(session, size);
      return 0;
    }
    s->body_bytes += size;
    const std::string_view piece(reinterpret_cast<const char*>(data), size);
    if (s->rest != nullptr) {
      nghttp2_session_consume(session, id, size);
      if (s->answered || s->request_done || s->http_status != 0) return 0;
      if (!http2_internal::AppendRestBody(*s->rest, piece,
                                          self->server_->options().max_request_bytes)) {
        s->http_status = 413;  // answered once the request ends; the rest is dropped
        s->rest->body.reset();
      }
      return 0;
    }
    if (s->answered || s->request_done || !s->reader.has_value()) {
      nghttp2_session_consume(session, id, size);  // refused or ended: dropped
      return 0;
    }
    if (s->streaming) return self->OnStreamData(s, piece), 0;
    nghttp2_session_consume(session, id, size);
    GrpcUnaryCall* call = s->call.get();
    GrpcMessageReader* reader = &*s->reader;
    // ModelInfer keeps its message's bytes (its tensors view them): the
    // reader's own buffer when it gathered them, so a big tensor is not copied.
    Status fed = *s->method == rpc::Method::kModelInfer
                     ? reader->Feed(piece,
                                    [call, reader](std::string_view m) {
                                      return call->ParseOwned(reader->Take(m));
                                    })
                     : reader->Feed(piece, [call](std::string_view m) { return call->Parse(m); });
    if (!fed.ok()) self->output_.End(s, std::move(fed));
    return 0;
  }

  // ModelStreamInfer's bytes: each message is handed on while the stream
  // has room (--grpc-stream-max-pending), else it waits, and so do the
  // window's bytes it arrived in.
  void OnStreamData(H2Stream* s, std::string_view piece) {
    Status fed = s->reader->Feed(piece, [this, s](std::string_view message) {
      std::string bytes = s->reader->Take(message);
      if (s->waiting.empty() && HasRoom(s)) return HandOn(s, std::move(bytes));
      s->waiting.push_back(std::move(bytes));
      return OkStatus();
    });
    if (s->waiting.empty()) {
      nghttp2_session_consume(session_, s->id, piece.size());
    } else {
      s->unconsumed += piece.size();
    }
    // The per-message read deadline: a message begun must end in time.
    if (!s->reader->partial()) {
      s->partial_since_ns = 0;
    } else if (s->partial_since_ns == 0 || s->reader->messages() != s->messages_seen) {
      s->partial_since_ns = NowNs();
      s->partial_bytes = 0;
      Arm(s->partial_since_ns + TransferNs(0));
    }
    s->partial_bytes += piece.size();
    s->messages_seen = s->reader->messages();
    if (!fed.ok()) StopReading(s, std::move(fed));
  }

  bool HasRoom(const H2Stream* s) const {
    return s->in_flight + s->outgoing.size() < server_->options().grpc.stream_max_pending;
  }

  // One request of a stream to the core. Not OK: the stream ends with it.
  Status HandOn(H2Stream* s, std::string message) {
    // Counted first: its answer may come back at once (inline execution).
    ++s->in_flight;
    Status handed = s->stream_call->OnMessage(std::move(message), &auth_memo_, NowNs());
    if (!handed.ok()) --s->in_flight;
    return handed;
  }

  // Hands on the messages that waited, while there is room; once none
  // waits, their bytes are consumed (the client may send more).
  void Pump(H2Stream* s) {
    while (!s->waiting.empty() && HasRoom(s) && !s->answered && s->stream_call != nullptr) {
      std::string message = std::move(s->waiting.front());
      s->waiting.pop_front();
      if (Status handed = HandOn(s, std::move(message)); !handed.ok()) {
        return StopReading(s, handed);
      }
    }
    if (s->waiting.empty() && s->unconsumed > 0) {
      nghttp2_session_consume(session_, s->id, s->unconsumed);
      s->unconsumed = 0;
    }
    output_.MaybeEndStream(s);
  }

  // A stream reads no more (a message that is not a request, or a revoked
  // key): the requests in flight are answered, then it ends with `status`.
  void StopReading(H2Stream* s, Status status) {
    s->request_done = true;
    s->waiting.clear();
    if (s->end_status.ok()) s->end_status = std::move(status);
    output_.MaybeEndStream(s);
  }

  // The client half-closed: the request is whole. A unary call runs now.
  void OnRequestDone(H2Stream* s) {
    if (s->rest != nullptr) return RunRest(s);
    if (s->http_status != 0) return output_.Respond(s, s->http_status);
    if (s->streaming) {
      if (Status whole = s->reader->Finish(); !whole.ok() && s->end_status.ok()) {
        s->end_status = std::move(whole);
      }
      return output_.MaybeEndStream(s);
    }
    if (s->answered || s->running || s->call == nullptr) return;
    if (Status whole = s->reader->Finish(); !whole.ok()) return output_.End(s, std::move(whole));
    if (!s->call->parsed()) {
      return output_.End(
          s, InvalidArgument("a unary call carries exactly one request message; this one "
                             "ended without any"));
    }
    std::shared_ptr<const Tenant> tenant;
    if (!rpc::OpenToAnyone(*s->method)) {
      auto who = server_->service()->Authenticate(s->authorization, &auth_memo_);
      if (!who.ok()) return output_.End(s, who.status());
      tenant = std::move(*who);
    }
    s->running = true;
    GrpcCallMeta meta;
    meta.traceparent = s->traceparent;
    meta.received_ns = s->received_ns;
    if (*s->method == rpc::Method::kModelInfer) {
      s->cancellation = std::make_shared<Cancellation>();
      meta.cancellation = s->cancellation;
    }
    // The call keeps this session until it has answered, so the answer's
    // callback holds a plain pointer (16 bytes: std::function keeps it in
    // place, no allocation).
    meta.caller = this->shared_from_this();
    const int32_t id = s->id;
    s->call->Run(server_->grpc_env(), std::move(tenant), meta,
                 [session = this, id](GrpcReply reply) {
                   // On an execution thread this hops onto the connection's loop;
                   // on the loop's own thread (a call answered at once) it runs now.
                   net::dispatch(session->executor_, [self = session->shared_from_this(), id,
                                                      reply = std::move(reply)]() mutable {
                     self->OnAnswered(id, std::move(reply));
                   });
                 });
  }

  void OnAnswered(int32_t id, GrpcReply reply) {
    H2Stream* s = closed_ ? nullptr : Find(session_, id);
    if (s == nullptr || s->answered) return;  // gone (reset, or past its deadline): dropped
    if (!reply.status.ok()) {
      output_.End(s, std::move(reply.status));
    } else if (reply.parts.has_value()) {
      output_.QueueParts(s, std::move(*reply.parts), std::move(reply.owner), std::move(reply.keep),
                         std::move(reply.receipt));
      output_.End(s, OkStatus());
    } else {
      output_.Queue(s, H2Out{std::move(reply.message),
                             {},
                             nullptr,
                             std::move(reply.keep),
                             std::move(reply.receipt)});
      output_.End(s, OkStatus());
    }
    Flush();
  }

  void OnStreamOut(int32_t id, GrpcStreamCall::Out out) {
    H2Stream* s = closed_ ? nullptr : Find(session_, id);
    if (s == nullptr) return;  // gone: its receipt is settled undelivered
    if (out.completes) --s->in_flight;
    if (out.write && !s->answered) {
      output_.Queue(s, H2Out{std::move(out.message), {}, nullptr, nullptr, std::move(out.receipt)});
    }
    Pump(s);
    Flush();
  }

  // ------------------------------------------------------------ REST

  // A REST request has ended: to the Router, unless its head or body
  // already decided the answer (as HTTP/1.1 answers them).
  void RunRest(H2Stream* s) {
    if (s->answered || s->running) return;
    const auto& o = server_->options();
    if (s->header_bytes > o.max_header_bytes) {
      return ReplyRest(s, HeadersTooLargeReply(o.max_header_bytes));
    }
    if (s->http_status == 413) return ReplyRest(s, BodyTooLargeReply(o.max_request_bytes));
    if (!s->rest->bad_head.ok()) return ReplyRest(s, ErrorReply(s->rest->bad_head));
    s->running = true;
    s->cancellation = std::make_shared<Cancellation>();
    HttpRequestView view = http2_internal::RestRequestView(*s);
    view.auth_memo = &auth_memo_;
    const int32_t id = s->id;
    server_->router().Handle(view, [self = this->shared_from_this(), id](HttpReply reply) {
      // As a gRPC call's answer (OnRequestDone): onto the connection's loop.
      net::dispatch(self->executor_, [self, id, reply = std::move(reply)]() mutable {
        self->OnRestReply(id, std::move(reply));
      });
    });
  }

  void OnRestReply(int32_t id, HttpReply reply) {
    H2Stream* s = closed_ ? nullptr : Find(session_, id);
    if (s == nullptr || s->answered) {  // reset meanwhile: dropped, undelivered
      if (reply.events != nullptr) reply.events->Abandon();
      return;
    }
    ReplyRest(s, std::move(reply));
    Flush();
  }

  // The reply's head and body, or its head and then its events as they come.
  void ReplyRest(H2Stream* s, HttpReply reply) {
    if (output_.ReplyRest(s, std::move(reply))) PumpEvents(s);
  }

  // Takes the events the model has sent since, once those taken before are
  // in the output (one chunk at a time, as HTTP/1.1 writes them): a client
  // that reads slowly holds the events in the EventStream, not here. With
  // none, the stream waits (deferred) until the model's next Push wakes it.
  void PumpEvents(H2Stream* s) {
    const std::shared_ptr<EventStream>& events = s->rest->events;
    if (events == nullptr || s->ending || !s->outgoing.empty()) return;
    std::string chunk;
    bool last = false;
    const int32_t id = s->id;
    const bool any = events->Take(chunk, &last, [self = this->shared_from_this(), id] {
      net::dispatch(self->executor_, [self, id] {
        H2Stream* s = self->closed_ ? nullptr : Find(self->session_, id);
        if (s == nullptr || s->rest == nullptr) return;
        self->PumpEvents(s);
        self->Flush();
      });
    });
    if (!any) return;
    if (!chunk.empty()) s->outgoing.push_back(H2Out{std::move(chunk), {}, nullptr, nullptr, {}});
    if (last) s->ending = true;
    output_.Resume(s);
  }

  // ------------------------------------------------------------ output

  static int OnSendData(nghttp2_session*, nghttp2_frame* frame, const uint8_t* frame_head,
                        size_t length, nghttp2_data_source* source, void* user) {
    return static_cast<Http2Session*>(user)->output_.SendData(frame, frame_head, length, source);
  }

  // Our END_STREAM went out while the client is still sending (an answer
  // before its whole request: an error): tell it to stop (RFC 9113 8.1).
  static int OnFrameSend(nghttp2_session* session, const nghttp2_frame* frame, void*) {
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0 ||
        (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)) {
      return 0;
    }
    H2Stream* s = Find(session, frame->hd.stream_id);
    if (s != nullptr && !s->request_done) {
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
    }
    return 0;
  }

  static int OnStreamClose(nghttp2_session* session, int32_t id, uint32_t error_code, void* user) {
    auto* self = static_cast<Http2Session*>(user);
    H2Stream* s = Find(session, id);
    if (s == nullptr) return 0;
    nghttp2_session_set_stream_user_data(session, id, nullptr);
    // Reset by the client (or by us) before its answer went out: the call is
    // cancelled, so a request still queued leaves its queue.
    if (!s->answered || error_code != NGHTTP2_NO_ERROR) {
      if (s->cancellation != nullptr) s->cancellation->Cancel();
      if (s->stream_call != nullptr) s->stream_call->CancelAll();
    }
    // Its stream call's sink holds this session: let go of it (its requests
    // still running keep it until they are answered, into nothing).
    s->stream_call.reset();
    // A /generate_stream reply: its last event went out, or it never will.
    if (s->rest != nullptr && s->rest->events != nullptr) {
      if (error_code == NGHTTP2_NO_ERROR && s->ending && s->outgoing.empty()) {
        s->rest->events->Delivered();
      } else {
        s->rest->events->Abandon();
      }
      s->rest->events.reset();
    }
    // Bytes it held back count against the connection's window still.
    if (s->unconsumed > 0) nghttp2_session_consume_connection(session, s->unconsumed);
    // Messages not written stay with it until the write in flight (which
    // may hold part of the first) is done; they are undelivered.
    // Off the open list (swap with the last); kept until the bytes that may
    // refer to its message are written.
    H2Stream* last = self->streams_.back();
    last->index = s->index;
    self->streams_[s->index] = last;
    self->streams_.pop_back();
    self->output_.Retire(s);
    if (self->streams_.empty()) self->SetIdleDeadline();
    return 0;
  }

  // Writes whatever nghttp2 has to send, one write at a time; closes the
  // connection once nghttp2 wants neither to read nor to write.
  void Flush() {
    if (writing_ || closed_ || in_callback_) return;
    if (!output_.Gather()) return Close();
    if (output_.empty()) {
      output_.Written(true);
      if (nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0) {
        Close();
      }
      return;
    }
    size_t bytes = 0;
    const std::vector<net::const_buffer>& buffers = output_.Buffers(&bytes);
    writing_ = true;
    write_deadline_ns_ = NowNs() + TransferNs(bytes);
    Arm(write_deadline_ns_);
    StartWrite(buffers);
  }

  // ------------------------------------------------------------ deadlines

  uint64_t TransferMs(uint64_t bytes) const {
    const auto& o = server_->options();
    return o.read_timeout_ms + bytes * 1000 / std::max<uint64_t>(o.min_transfer_bytes_per_s, 1);
  }
  int64_t TransferNs(uint64_t bytes) const {
    return static_cast<int64_t>(std::min<uint64_t>(TransferMs(bytes), uint64_t{1} << 40)) *
           1'000'000;
  }
  void SetIdleDeadline() {
    idle_deadline_ns_ = NowNs() + TransferNs(0);
    Arm(idle_deadline_ns_);
  }

  // Makes the timer fire by `due_ns` (it may fire earlier: Check re-arms).
  void Arm(int64_t due_ns) {
    if (closed_ || (timer_armed_ && timer_due_ns_ <= due_ns)) return;
    timer_armed_ = true;
    timer_due_ns_ = due_ns;
    const uint64_t generation = ++timer_generation_;
    timer_.expires_after(std::chrono::nanoseconds(std::max<int64_t>(due_ns - NowNs(), 0)));
    timer_.async_wait([weak = this->weak_from_this(), generation](beast::error_code ec) {
      auto self = weak.lock();
      if (self == nullptr || ec || generation != self->timer_generation_) return;
      self->timer_armed_ = false;
      self->Check();
    });
  }

  // Every deadline that has passed acts; the timer is set for the next one.
  void Check() {
    if (closed_) return;
    const int64_t now = NowNs();
    int64_t next = INT64_MAX;
    if (!handshaken_ && handshake_deadline_ns_ != 0) {
      if (now >= handshake_deadline_ns_) {
        spdlog::debug("{} connection: TLS handshake not done in time; closing it", What());
        return Close();
      }
      next = handshake_deadline_ns_;
    }
    if (write_deadline_ns_ != 0) {
      if (now >= write_deadline_ns_) {
        spdlog::debug("{} connection: the client did not read its answers in time; closing it",
                      What());
        return Close();
      }
      next = write_deadline_ns_;
    }
    if (streams_.empty()) {
      if (now >= idle_deadline_ns_) {
        // Idle (or never sent its preface): GOAWAY, and close once it is written.
        closing_ = true;
        nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
        Flush();
        if (!writing_) Close();
        return;
      }
      next = std::min(next, idle_deadline_ns_);
    }
    bool flush = false;
    for (size_t i = 0; i < streams_.size();) {
      H2Stream* s = streams_[i];
      ++i;
      // A unary call's request must be whole in time; a stream's current message.
      const bool streaming = s->streaming;
      if (!s->request_done && (!streaming || s->partial_since_ns != 0)) {
        const int64_t due = streaming ? s->partial_since_ns + TransferNs(s->partial_bytes)
                                      : s->received_ns + TransferNs(s->body_bytes);
        if (now >= due) {
          // Too slow a request: reset it (its id leaves streams_ when nghttp2 closes it).
          nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
          s->request_done = true;
          flush = true;
          continue;
        }
        next = std::min(next, due);
      }
      if (s->deadline_ns != 0 && !s->answered) {
        if (now >= s->deadline_ns) {
          output_.End(s, DeadlineExceeded("the call's deadline (grpc-timeout) passed before it was "
                                          "answered"));
          flush = true;
          continue;
        }
        next = std::min(next, s->deadline_ns);
      }
    }
    if (flush) Flush();
    if (next != INT64_MAX && !closed_) Arm(next);
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    // The streams still open cancel their requests and let go of their
    // stream calls and event streams, which hold this session (after this
    // handler: one may be on the stack).
    net::post(executor_, [self = this->shared_from_this()] {
      for (H2Stream* s : self->streams_) {
        if (s->cancellation != nullptr) s->cancellation->Cancel();
        if (s->stream_call != nullptr) s->stream_call->CancelAll();
        s->stream_call.reset();
        // (An event stream's wake holds this session too.)
        if (s->rest != nullptr && s->rest->events != nullptr) {
          s->rest->events->Abandon();
          s->rest->events.reset();
        }
      }
    });
    beast::error_code ec;
    Tcp().shutdown(net::ip::tcp::socket::shutdown_both, ec);
    Tcp().close(ec);
    timer_.cancel();
  }

  // First: destroyed last, after the transport's stream and the timer (see
  // its type).
  ConnectionRegistration registration_;
  HttpServer::Impl* const server_;
  const bool rest_;          // the HTTP port's: REST requests (else gRPC calls)
  const bool tls_;           // over a TLS stream: its handshake first
  const Executor executor_;  // the event loop's the connection lives on
  bool taken_over_ = false;  // from the HTTP port's HTTP/1.1 session (TakeOver)
  std::string received_;     // what it had read, until Run feeds it to nghttp2
  nghttp2_session* session_ = nullptr;
  std::unique_ptr<uint8_t[]> input_;
  std::vector<H2Stream*> streams_;  // open, owned through nghttp2's user data
  H2Output output_;                 // the answers, and what is written
  TenantRegistry::Memo auth_memo_;  // the last key this connection presented
  bool writing_ = false;
  bool handshaken_ = false;  // (TLS) the handshake is done; plain: always
  bool closing_ = false;     // GOAWAY sent: no new stream
  bool failed_ = false;      // an HTTP/2 error: the GOAWAY is written, then the connection closes
  bool closed_ = false;
  bool in_callback_ = false;  // inside nghttp2_session_mem_recv (no mem_send there)
  int64_t idle_deadline_ns_ = 0;
  int64_t handshake_deadline_ns_ = 0;  // (TLS)
  int64_t write_deadline_ns_ = 0;
  SteadyTimer timer_;
  bool timer_armed_ = false;
  int64_t timer_due_ns_ = 0;
  uint64_t timer_generation_ = 0;
};

// The part of a session that depends on its stream's type: Socket (the
// plain port, h2c) or TlsStream.
template <class Stream>
class Http2Transport final : public Http2Session {
 public:
  template <class... StreamArgs>
  Http2Transport(HttpServer::Impl* server, bool rest, Executor executor, StreamArgs&&... args)
      : Http2Session(server, rest, std::is_same_v<Stream, TlsStream>, executor),
        stream_(std::forward<StreamArgs>(args)...) {}

 private:
  std::shared_ptr<Http2Transport> Self() {
    return std::static_pointer_cast<Http2Transport>(shared_from_this());
  }

  void StartHandshake() override {
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      stream_.async_handshake(net::ssl::stream_base::server,
                              [self = Self()](beast::error_code ec) { self->OnHandshake(ec); });
    }
  }
  void StartRead(net::mutable_buffer buffer) override {
    stream_.async_read_some(
        buffer, [self = Self()](beast::error_code ec, size_t n) { self->OnRead(ec, n); });
  }
  void StartWrite(const std::vector<net::const_buffer>& buffers) override {
    net::async_write(stream_, buffers,
                     [self = Self()](beast::error_code ec, size_t) { self->OnWritten(ec); });
  }
  Socket& Tcp() override { return mm::Tcp(stream_); }

  Stream stream_;
};

// A session over a Stream constructed from `args`, on `executor`'s loop.
template <class Stream, class... StreamArgs>
std::shared_ptr<Http2Transport<Stream>> MakeHttp2(HttpServer::Impl* server, bool rest,
                                                  Executor executor, StreamArgs&&... args) {
  return std::make_shared<Http2Transport<Stream>>(server, rest, executor,
                                                  std::forward<StreamArgs>(args)...);
}

}  // namespace

void StartHttp2Session(HttpServer::Impl* server, Socket socket, net::ssl::context* tls) {
  const Executor executor = socket.get_executor();
  std::shared_ptr<Http2Session> connection;
  if (tls != nullptr) {
    connection = MakeHttp2<TlsStream>(server, false, executor, std::move(socket), *tls);
  } else {
    connection = MakeHttp2<Socket>(server, false, executor, std::move(socket));
  }
  server->Register(connection);
  connection->Run();
}

namespace {

template <class Stream>
void TakeOverHttp2(HttpServer::Impl* server, Stream stream, std::string received) {
  const Executor executor = Tcp(stream).get_executor();
  std::shared_ptr<Http2Session> connection =
      MakeHttp2<Stream>(server, true, executor, std::move(stream));
  connection->TakeOver(std::move(received));
  server->Register(connection);
  connection->Run();
}

}  // namespace

void StartHttp2Rest(HttpServer::Impl* server, Socket stream, std::string received) {
  TakeOverHttp2(server, std::move(stream), std::move(received));
}
void StartHttp2Rest(HttpServer::Impl* server, TlsStream stream, std::string received) {
  TakeOverHttp2(server, std::move(stream), std::move(received));
}

}  // namespace mm
