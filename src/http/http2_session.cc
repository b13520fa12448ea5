// The HTTP/2 connection itself (http2_session.h): set-up, reading into
// nghttp2, its callbacks, writing, deadlines and closing; and the transport
// that carries it, a socket or a TLS stream.
#include "http/http2_session.h"

#include <algorithm>
#include <chrono>
#include <type_traits>

#include <spdlog/spdlog.h>

#include "http/http2_rest.h"

namespace mm {
namespace http2_internal {

void Http2Session::TakeOver(std::string received) {
  taken_over_ = true;
  received_ = std::move(received);
}

Http2Session::~Http2Session() {
  // Streams still open are owned through nghttp2's user data, which
  // nghttp2_session_del does not hand back.
  for (H2Stream* s : streams_) {
    if (s->cancellation != nullptr) s->cancellation->Cancel();
    if (s->stream_call != nullptr) s->stream_call->CancelAll();
    delete s;
  }
  if (session_ != nullptr) nghttp2_session_del(session_);
}

void Http2Session::Run() {
  net::dispatch(executor_, [self = shared_from_this()] {
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

void Http2Session::Shutdown() {
  net::dispatch(executor_, [self = shared_from_this()] {
    if (self->closed_ || self->session_ == nullptr) return;
    if (!self->handshaken_) return self->Close();  // (TLS) nothing was asked yet
    self->closing_ = true;
    nghttp2_submit_goaway(self->session_, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(self->session_), NGHTTP2_NO_ERROR,
                          nullptr, 0);
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
        nghttp2_submit_rst_stream(self->session_, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_REFUSED_STREAM);
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

void Http2Session::OnHandshake(beast::error_code ec) {
  if (ec) {
    spdlog::debug("gRPC TLS handshake failed: {}", ec.message());
    return Close();
  }
  handshaken_ = true;
  Read();
}

void Http2Session::OnRead(beast::error_code ec, size_t n) {
  if (closed_) return;
  if (ec) return Close();
  Receive(input_.get(), n);
}

void Http2Session::OnWritten(beast::error_code ec) {
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

bool Http2Session::Setup() {
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
  return nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow) ==
         0;
}

void Http2Session::Handshake() {
  if (closing_ || server_->stopping()) return Close();
  handshake_deadline_ns_ =
      NowNs() + static_cast<int64_t>(server_->options().tls_handshake_timeout_ms) * 1'000'000;
  Arm(handshake_deadline_ns_);
  StartHandshake();
}

void Http2Session::Read() {
  if (closed_) return;
  if (input_ == nullptr) input_ = std::make_unique<uint8_t[]>(kInputBytes);
  StartRead(net::buffer(input_.get(), kInputBytes));
}

void Http2Session::Receive(const uint8_t* data, size_t n) {
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

H2Stream* Http2Session::Find(nghttp2_session* session, int32_t id) {
  return static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(session, id));
}

int Http2Session::OnBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
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

int Http2Session::OnHeader(nghttp2_session* session, const nghttp2_frame* frame,
                           const uint8_t* name, size_t name_size, const uint8_t* value,
                           size_t value_size, uint8_t, void* user) {
  auto* self = static_cast<Http2Session*>(user);
  H2Stream* s = Find(session, frame->hd.stream_id);
  if (s == nullptr || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;  // (trailers: ignored)
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
    http2_internal::TakeRestHeader(*s, n, v, self->server_->router().traces(), o.max_request_bytes);
    return 0;
  }
  http2_internal::TakeGrpcHeader(*s, n, v, self->server_->router().traces());
  return 0;
}

int Http2Session::OnFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
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

int Http2Session::OnDataChunk(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data,
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

int Http2Session::OnSendData(nghttp2_session*, nghttp2_frame* frame, const uint8_t* frame_head,
                             size_t length, nghttp2_data_source* source, void* user) {
  return static_cast<Http2Session*>(user)->output_.SendData(frame, frame_head, length, source);
}

int Http2Session::OnFrameSend(nghttp2_session* session, const nghttp2_frame* frame, void*) {
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

int Http2Session::OnStreamClose(nghttp2_session* session, int32_t id, uint32_t error_code,
                                void* user) {
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

void Http2Session::Flush() {
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

uint64_t Http2Session::TransferMs(uint64_t bytes) const {
  const auto& o = server_->options();
  return o.read_timeout_ms + bytes * 1000 / std::max<uint64_t>(o.min_transfer_bytes_per_s, 1);
}

int64_t Http2Session::TransferNs(uint64_t bytes) const {
  return static_cast<int64_t>(std::min<uint64_t>(TransferMs(bytes), uint64_t{1} << 40)) * 1'000'000;
}

void Http2Session::SetIdleDeadline() {
  idle_deadline_ns_ = NowNs() + TransferNs(0);
  Arm(idle_deadline_ns_);
}

void Http2Session::Arm(int64_t due_ns) {
  if (closed_ || (timer_armed_ && timer_due_ns_ <= due_ns)) return;
  timer_armed_ = true;
  timer_due_ns_ = due_ns;
  const uint64_t generation = ++timer_generation_;
  timer_.expires_after(std::chrono::nanoseconds(std::max<int64_t>(due_ns - NowNs(), 0)));
  timer_.async_wait([weak = weak_from_this(), generation](beast::error_code ec) {
    auto self = weak.lock();
    if (self == nullptr || ec || generation != self->timer_generation_) return;
    self->timer_armed_ = false;
    self->Check();
  });
}

void Http2Session::Check() {
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

void Http2Session::Close() {
  if (closed_) return;
  closed_ = true;
  // The streams still open cancel their requests and let go of their
  // stream calls and event streams, which hold this session (after this
  // handler: one may be on the stack).
  net::post(executor_, [self = shared_from_this()] {
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

}  // namespace http2_internal

namespace {

using http2_internal::Http2Session;

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
