// The connections of the HTTP server: one Session per client, on one event
// loop, reading requests, handing them to the Router and writing the replies
// in order (http_server_impl.h).
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <memory_resource>
#include <optional>
#include <type_traits>

#include <spdlog/spdlog.h>

#include "http/http_server_impl.h"
#include "http/padded_body.h"
#include "http/request_head.h"

namespace mm {

namespace {

std::string_view Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 413:
      return "Payload Too Large";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 499:
      return "Client Closed Request";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Unknown";
  }
}

// One connection over `Stream`: Socket (plain HTTP) or TlsStream. All its
// handlers run on its event loop's thread, one at a time. The two kinds share
// every line of the HTTP code; only Run() differs (a TLS connection does its
// handshake first), chosen at compile time, so the plain path pays nothing.
template <class Stream>
class Session final : public Connection, public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

 public:
  // `stream_args` construct the stream: a Socket, and for TLS the context.
  template <class... StreamArgs>
  explicit Session(HttpServer::Impl* server, StreamArgs&&... stream_args)
      : registration_(server, this),
        stream_(std::forward<StreamArgs>(stream_args)...),
        server_(server),
        executor_(stream_.get_executor()),
        timer_(executor_) {}

  void Run() {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kTls) {
        self->Handshake();
      } else if (self->server_->options().http2) {
        self->Sniff();
      } else {
        self->Read();
      }
    });
  }

  void Shutdown() override {
    net::dispatch(executor_, [self = this->shared_from_this()] {
      self->closing_ = true;
      if (self->reading_ && !self->handed_over_) {
        beast::error_code ec;
        Tcp(self->stream_).shutdown(net::ip::tcp::socket::shutdown_both, ec);
        Tcp(self->stream_).close(ec);
      }
    });
  }

 private:
  // TLS only. Counts as idle for Shutdown() (reading_); a client that does
  // not finish within tls_handshake_timeout_ms is closed. A failed handshake
  // (a plain HTTP client, no or a wrong client certificate) closes quietly.
  void Handshake() {
    if (closing_ || server_->stopping()) return Close();
    reading_ = true;
    SetDeadline(server_->options().tls_handshake_timeout_ms, "TLS handshake");
    stream_.async_handshake(
        net::ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
          self->reading_ = false;
          if (ec) {
            spdlog::debug("TLS handshake from {} failed: {}", self->Peer(), ec.message());
            return self->Close();
          }
          // ALPN agreed on h2 (only offered with --http2): an HTTP/2 client.
          const unsigned char* protocol = nullptr;
          unsigned int size = 0;
          SSL_get0_alpn_selected(self->stream_.native_handle(), &protocol, &size);
          if (size == 2 && protocol[0] == 'h' && protocol[1] == '2') return self->HandOver({});
          self->Read();
        });
  }

  // Plain connections (with --http2) begin here: a client whose first bytes
  // are the HTTP/2 connection preface (h2c with prior knowledge) is handed
  // to an Http2Session; any other is HTTP/1.1, whose parser then finds the
  // bytes read here in buffer_. Once per connection, not per request.
  void Sniff() {
    if (closing_ || server_->stopping()) return Close();
    reading_ = true;
    SetDeadline(server_->options().read_timeout_ms, "request head");
    stream_.async_read_some(
        buffer_.prepare(kSniffBytes - buffer_.size()),
        [self = this->shared_from_this()](beast::error_code ec, size_t n) {
          self->reading_ = false;
          if (ec) return self->Close();
          self->buffer_.commit(n);
          static constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
          static_assert(kPreface.size() == kSniffBytes);
          const std::string_view have(static_cast<const char*>(self->buffer_.data().data()),
                                      self->buffer_.size());
          const size_t same = std::min(have.size(), kPreface.size());
          if (have.substr(0, same) != kPreface.substr(0, same)) return self->Read();
          if (same < kPreface.size()) return self->Sniff();  // (a preface in pieces)
          self->HandOver(std::string(have));
        });
  }
  // Only the preface's length: what the HTTP/1.1 parser then finds already
  // read is no more than a slow client's first piece would be (Beast 1.74
  // checks --max-header-bytes per read; a 16 KiB first read let a head of
  // many small fields past it).
  static constexpr size_t kSniffBytes = 24;
  // Beast reads as much as the buffer has room for, and at least 512 bytes,
  // and the buffer grows only when the bytes kept in it need more: left at
  // 512 bytes, a request of 600 took two reads (one more trip through the
  // event loop), and a 4 MiB body 8,192. A request's head (and a small
  // body with it) has this much room; a larger body, up to kBodyReadBytes a
  // read, given back once the request has been read.
  static constexpr size_t kHeadReadBytes = 4096;
  static constexpr size_t kBodyReadBytes = 256 * 1024;

  // The connection goes on as HTTP/2; this session only lets go of it.
  void HandOver(std::string received) {
    handed_over_ = true;
    ClearDeadline();
    timer_.cancel();
    StartHttp2Rest(server_, std::move(stream_), std::move(received));
  }

  // Deadlines. Each phase in which the connection waits on its client (TLS
  // handshake, request head, body, reply, lingering close) sets one; waiting
  // on the server (inference) clears it. A client past its deadline is cut
  // off: a slow or silent client holds neither a thread nor memory for long.
  // Setting a deadline is a clock read and two stores: the one timer is
  // re-armed only when it would fire too late, or when it fires early.
  void SetDeadline(uint64_t ms, const char* phase) {
    const int64_t now = NowNs();
    deadline_ns_ =
        now + static_cast<int64_t>(std::min<uint64_t>(ms, uint64_t{1} << 40)) * 1'000'000;
    deadline_phase_ = phase;
    if (!timer_armed_ || deadline_ns_ < timer_due_ns_) ArmTimer(deadline_ns_ - now);
  }
  void ClearDeadline() { deadline_ns_ = 0; }
  // The time a transfer of `bytes` may take: the read timeout plus the bytes
  // at the minimum rate.
  uint64_t TransferMs(uint64_t bytes) const {
    const auto& o = server_->options();
    return o.read_timeout_ms + bytes * 1000 / std::max<uint64_t>(o.min_transfer_bytes_per_s, 1);
  }
  static int64_t NowNs() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  void ArmTimer(int64_t in_ns) {
    timer_armed_ = true;
    timer_due_ns_ = NowNs() + in_ns;
    const uint64_t generation = ++timer_generation_;
    timer_.expires_after(std::chrono::nanoseconds(in_ns));  // (cancels a pending wait)
    // A weak reference: a pending timer does not keep a closed connection alive.
    timer_.async_wait([weak = this->weak_from_this(), generation](beast::error_code ec) {
      auto self = weak.lock();
      if (self == nullptr || generation != self->timer_generation_) return;  // re-armed since
      self->timer_armed_ = false;
      if (ec || self->deadline_ns_ == 0) return;
      const int64_t left = self->deadline_ns_ - NowNs();
      if (left > 0) return self->ArmTimer(left);  // moved on since the timer was set
      spdlog::debug("HTTP connection from {}: {} not done within its time limit; closing it",
                    self->Peer(), self->deadline_phase_);
      self->Close();
    });
  }

  // "address:port" of the client, for the log.
  std::string Peer() { return PeerOf(Tcp(stream_)); }

  void Read() {
    if (closing_ || server_->stopping()) return Close();
    // The header fields live in the connection's arena, emptied per request.
    parser_.reset();
    header_arena_.release();
    parser_.emplace(std::piecewise_construct, std::make_tuple(),
                    std::make_tuple(RequestAllocator(&header_arena_)));
    parser_->body_limit(server_->options().max_request_bytes);
    parser_->header_limit(static_cast<uint32_t>(server_->options().max_header_bytes));
    if (buffer_.capacity() > kHeadReadBytes && buffer_.size() <= kHeadReadBytes) {
      buffer_.shrink_to_fit();  // the last body needed more: give it back (bytes kept)
    }
    if (buffer_.capacity() < kHeadReadBytes) buffer_.reserve(kHeadReadBytes);
    reading_ = true;
    SetDeadline(server_->options().read_timeout_ms, "request head");
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  // The header is in (its size and Content-Length already checked against the
  // limits); a client that sent "Expect: 100-continue" waits for our go-ahead
  // before it sends the body (curl does so for bodies over 1 KiB).
  void OnHeader(beast::error_code ec) {
    if (ec || parser_->is_done()) {
      reading_ = false;
      return OnRead(ec);
    }
    const auto& req = parser_->get();
    if (auto it = req.find(bhttp::field::expect);
        it != req.end() && beast::iequals(it->value(), "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      reading_ = false;
      return net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                              [self = this->shared_from_this()](beast::error_code ec, size_t) {
                                if (ec) return self->Close();
                                self->ReadBody();
                              });
    }
    ReadBody();
  }

  void ReadBody() {
    reading_ = true;
    const auto length = parser_->content_length();
    if (length && *length > kHeadReadBytes && *length > buffer_.size() &&
        buffer_.capacity() < kBodyReadBytes) {
      // Reads of up to kBodyReadBytes for a large body (it is read at most
      // that much at a time, whatever its length).
      buffer_.reserve(
          static_cast<size_t>(std::min<uint64_t>(*length + kHeadReadBytes, kBodyReadBytes)));
      // Acknowledge at once while the body comes: a client whose last small
      // segment waits for our ACK (Nagle) must not wait out a delayed ACK
      // (40 ms here: seen with the Python client and 4 MiB bodies).
      const int on = 1;
      ::setsockopt(Tcp(stream_).native_handle(), IPPROTO_TCP, TCP_QUICKACK, &on, sizeof on);
    }
    SetDeadline(TransferMs(length ? *length : server_->options().max_request_bytes),
                "request body");
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = this->shared_from_this()](beast::error_code ec, size_t) {
                        self->reading_ = false;
                        self->OnRead(ec);
                      });
  }

  void OnRead(beast::error_code ec) {
    if (ec == bhttp::error::end_of_stream || ec == net::error::operation_aborted ||
        ec == net::error::connection_reset || ec == net::error::eof ||
        ec == net::error::bad_descriptor) {
      return Close();
    }
    if (ec) {
      keep_alive_ = false;
      if (ec == bhttp::error::body_limit) {
        return Write(BodyTooLargeReply(server_->options().max_request_bytes));
      }
      if (ec == bhttp::error::header_limit) {
        return Write(HeadersTooLargeReply(server_->options().max_header_bytes));
      }
      return Write(ErrorReply(InvalidArgument("malformed HTTP request: " + ec.message())));
    }
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    head_only_ = req.method() == bhttp::verb::head;
    HttpRequestView view;
    if (Status head = ReadRequestHead(req, view, target_, authorization_,
                                      server_->router().traces() ? &traceparent_ : nullptr);
        !head.ok()) {
      return Write(ErrorReply(head));
    }
    view.auth_memo = &auth_memo_;
    view.body = std::make_shared<const std::string>(std::move(req.body()));
    parser_.reset();
    // One Cancellation per connection, reused while nobody else holds it.
    if (cancel_ == nullptr || cancel_.use_count() > 1) {
      cancel_ = std::make_shared<Cancellation>();
    } else {
      cancel_->Reset();
    }
    view.cancellation = cancel_;
    view.infer_slot = &infer_slot_;
    answering_ = true;
    ClearDeadline();  // the server's turn
    answering_self_ = this->shared_from_this();
    // One pointer: std::function keeps it in place (no allocation per request).
    server_->router().Handle(view, [this](HttpReply reply) {
      // On an execution thread this hops back onto the connection's event loop; on
      // the loop's own thread (inline execution, synchronous replies) it writes at once.
      // The reply goes before the session that holds its receipt's room (a
      // pair's members go in reverse order), should the hop be dropped.
      net::dispatch(stream_.get_executor(),
                    [held = std::pair<std::shared_ptr<Session>, HttpReply>(
                         std::move(answering_self_), std::move(reply))]() mutable {
                      held.first->Write(std::move(held.second));
                    });
    });
    if (answering_) WatchForHangUp();
  }

  // The request waits for its answer (queued or running elsewhere): a client
  // that closes its connection meanwhile cancels it, so that it leaves its
  // queue. Bytes the client sends meanwhile (a pipelined request) stay unread.
  void WatchForHangUp() {
    watching_ = true;
    Tcp(stream_).async_wait(
        net::socket_base::wait_read, [self = this->shared_from_this()](beast::error_code ec) {
          self->watching_ = false;
          if (ec || !self->answering_) return;  // answered (the wait was cancelled)
          // Over TLS the byte peeked is ciphertext: only whether the peer closed matters.
          char byte;
          const ssize_t n =
              ::recv(Tcp(self->stream_).native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
          if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            self->keep_alive_ = false;
            self->cancel_->Cancel();
          }
        });
  }

  void Write(HttpReply reply) {
    answering_ = false;
    if (watching_) {
      beast::error_code ec;
      Tcp(stream_).cancel(ec);  // ends WatchForHangUp's wait
    }
    if (reply.events != nullptr) return WriteEventsHead(std::move(reply.events));
    reply_ = std::move(reply);
    head_.clear();
    head_ += "HTTP/1.1 ";
    head_ += std::to_string(reply_.status);
    head_ += ' ';
    head_ += Reason(reply_.status);
    head_ += "\r\nServer: mmserve\r\nContent-Length: ";
    head_ += std::to_string(reply_.content_length());
    if (reply_.content_length() > 0) {
      head_ += "\r\nContent-Type: ";
      head_ += reply_.binary_header          ? "application/octet-stream"
               : reply_.content_type.empty() ? std::string_view("application/json")
                                             : reply_.content_type;
    }
    head_ += reply_.headers;
    if (reply_.binary_header) {
      head_ += "\r\nInference-Header-Content-Length: ";
      head_ += std::to_string(reply_.body.size());
    }
    if (!reply_.allow.empty()) {
      head_ += "\r\nAllow: ";
      head_ += reply_.allow;
    }
    if (reply_.status == 401) head_ += "\r\nWWW-Authenticate: Bearer realm=\"mmserve\"";
    if (reply_.retry_after_s > 0) {
      head_ += "\r\nRetry-After: ";
      head_ += std::to_string(reply_.retry_after_s);
    }
    const bool close = !keep_alive_ || closing_ || server_->stopping();
    if (close) head_ += "\r\nConnection: close";
    head_ += "\r\n\r\n";
    SetDeadline(TransferMs(head_.size() + reply_.content_length()), "reply");
    buffers_.clear();
    buffers_.emplace_back(head_.data(), head_.size());
    if (!head_only_) {
      if (!reply_.body.empty()) buffers_.emplace_back(reply_.body.data(), reply_.body.size());
      for (const auto& chunk : reply_.tail) buffers_.emplace_back(chunk.data(), chunk.size());
    }
    net::async_write(stream_, buffers_,
                     [self = this->shared_from_this(), close](beast::error_code ec, size_t) {
                       self->reply_.receipt.Settle(!ec);
                       self->reply_ = HttpReply();
                       if (ec) return self->Close();
                       if (close) return self->Linger();
                       self->Read();
                     });
  }

  // A /generate_stream reply (router.h, event_stream.h): a 200 head, then the
  // events in chunks as they come, one write in flight; the body ends after
  // the last event. A failed write (the client went away) abandons the
  // stream and cancels the request. While it waits for events no deadline
  // runs (the server's turn); a client that closes then is noticed at the
  // next write.
  void WriteEventsHead(std::shared_ptr<EventStream> events) {
    events_ = std::move(events);
    events_close_ = !keep_alive_ || closing_ || server_->stopping();
    head_.assign(
        "HTTP/1.1 200 OK\r\nServer: mmserve\r\nContent-Type: text/event-stream; "
        "charset=utf-8\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n");
    if (events_close_) head_ += "Connection: close\r\n";
    head_ += "\r\n";
    SetDeadline(TransferMs(head_.size()), "reply");
    net::async_write(stream_, net::buffer(head_.data(), head_.size()),
                     [self = this->shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) return self->EventsFailed();
                       self->WriteEvents();
                     });
  }

  void WriteEvents() {
    bool last = false;
    event_chunk_.clear();
    const bool any = events_->Take(event_chunk_, &last, [self = this->shared_from_this()] {
      net::dispatch(self->stream_.get_executor(), [self] { self->WriteEvents(); });
    });
    if (!any) {
      ClearDeadline();  // the model's turn
      return WatchEventsHangUp();
    }
    if (watching_) {
      beast::error_code ec;
      Tcp(stream_).cancel(ec);  // ends WatchEventsHangUp's wait (no write is in flight)
    }
    head_.clear();
    if (!event_chunk_.empty()) {
      char size[20];
      const int n = std::snprintf(size, sizeof(size), "%zx\r\n", event_chunk_.size());
      head_.assign(size, static_cast<size_t>(n));
      event_chunk_ += "\r\n";
    }
    if (last) event_chunk_ += "0\r\n\r\n";
    SetDeadline(TransferMs(head_.size() + event_chunk_.size()), "reply");
    buffers_.clear();
    buffers_.emplace_back(head_.data(), head_.size());
    buffers_.emplace_back(event_chunk_.data(), event_chunk_.size());
    net::async_write(stream_, buffers_,
                     [self = this->shared_from_this(), last](beast::error_code ec, size_t) {
                       if (ec) return self->EventsFailed();
                       if (!last) return self->WriteEvents();
                       self->events_->Delivered();
                       self->events_.reset();
                       if (self->events_close_) return self->Linger();
                       self->Read();
                     });
  }

  // While the model has sent nothing new: a client that closes its
  // connection cancels the request (as WatchForHangUp does before a reply).
  void WatchEventsHangUp() {
    if (watching_) return;
    watching_ = true;
    Tcp(stream_).async_wait(
        net::socket_base::wait_read, [self = this->shared_from_this()](beast::error_code ec) {
          self->watching_ = false;
          if (ec || self->events_ == nullptr) return;  // writing again, or done
          char byte;
          const ssize_t n =
              ::recv(Tcp(self->stream_).native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
          if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            self->EventsFailed();
          }
        });
  }

  void EventsFailed() {
    if (events_ == nullptr) return;
    events_->Abandon();
    events_.reset();
    if (cancel_ != nullptr) cancel_->Cancel();
    Close();
  }

  // Lingering close: stop sending, then read and drop what the client still
  // sends (say the rest of a body over the limit) until it closes, so that it
  // reads our answer instead of a connection reset. Bounded in bytes. Over TLS
  // the bytes dropped are not decrypted, and no close_notify is sent: the
  // reply's Content-Length tells the client where it ends.
  void Linger() {
    beast::error_code ec;
    Tcp(stream_).shutdown(net::ip::tcp::socket::shutdown_send, ec);
    if (ec || closing_ || server_->stopping()) return Close();
    SetDeadline(server_->options().read_timeout_ms, "lingering close");
    drain_.resize(16 << 10);
    DrainSome();
  }

  void DrainSome() {
    reading_ = true;
    Tcp(stream_).async_read_some(
        net::buffer(drain_), [self = this->shared_from_this()](beast::error_code ec, size_t n) {
          self->reading_ = false;
          self->drained_ += n;
          if (ec || self->drained_ > self->server_->options().max_request_bytes + (1 << 20)) {
            return self->Close();
          }
          self->DrainSome();
        });
  }

  // Over TLS this closes the socket under the TLS layer: no close_notify, and
  // nothing to wait for.
  void Close() {
    if (handed_over_) return;  // (the stream is the Http2Session's)
    beast::error_code ec;
    Tcp(stream_).shutdown(net::ip::tcp::socket::shutdown_send, ec);
    Tcp(stream_).close(ec);
    deadline_ns_ = 0;
    timer_.cancel();
  }

  ConnectionRegistration registration_;  // first: destroyed last (see its type)
  Stream stream_;
  HttpServer::Impl* const server_;
  // The connection's loop (stream_'s, which HandOver may move away).
  const Executor executor_;
  beast::flat_buffer buffer_;
  // Request headers are allocated from a per-connection arena: a typical
  // request's fields fit the inline buffer, so parsing them allocates nothing.
  std::array<std::byte, 2048> header_buffer_;
  std::pmr::monotonic_buffer_resource header_arena_{header_buffer_.data(), header_buffer_.size()};
  std::optional<RequestParser> parser_;
  std::string target_;
  std::string authorization_;       // the request's Authorization header (the view points here)
  std::string traceparent_;         // its traceparent header, when the server traces
  TenantRegistry::Memo auth_memo_;  // the last key this connection presented
  std::string head_;
  // The request being answered keeps its state here (router.h); its reply's
  // receipt settles into infer_slot_.room, so the slot is declared before
  // every member that may hold that reply (members go in reverse order).
  InferSlot infer_slot_;
  // This session, kept alive from handing a request to the router until its
  // reply comes back (the router's callback holds only `this`).
  std::shared_ptr<Session> answering_self_;
  HttpReply reply_;
  std::vector<net::const_buffer> buffers_;
  std::vector<char> drain_;  // lingering close only
  size_t drained_ = 0;
  std::shared_ptr<Cancellation> cancel_;  // the request's; see OnRead
  std::shared_ptr<EventStream> events_;   // a /generate_stream reply being written
  std::string event_chunk_;
  bool events_close_ = false;
  bool answering_ = false;  // a request was handed on and its reply is not written yet
  bool watching_ = false;   // WatchForHangUp's wait is pending
  bool keep_alive_ = true;
  bool head_only_ = false;
  bool reading_ = false;
  bool closing_ = false;
  bool handed_over_ = false;  // the stream went to an Http2Session (HandOver)
  // The deadline of the phase waiting on the client (0: none), and the timer
  // that enforces it (see SetDeadline).
  int64_t deadline_ns_ = 0;
  const char* deadline_phase_ = "";
  SteadyTimer timer_;
  bool timer_armed_ = false;
  int64_t timer_due_ns_ = 0;
  uint64_t timer_generation_ = 0;
};

}  // namespace

void StartSession(HttpServer::Impl* server, Socket socket, net::ssl::context* tls) {
  StartConnection<Session>(server, std::move(socket), tls);
}

}  // namespace mm
