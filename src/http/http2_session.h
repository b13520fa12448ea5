// Inside the HTTP server (not a door: src/http only): its HTTP/2
// connections. HTTP/2 by nghttp2 (framing, HPACK, flow control, the
// protocol's state machine) on the HTTP server's event loops
// (http_server_impl.h), carrying gRPC calls (grpc_calls.h) on the native
// gRPC port, and REST requests to the Router (http2_rest.h) on the HTTP
// port, whose HTTP/1.1 session hands over a client that speaks HTTP/2 (h2c
// with prior knowledge, or h2 chosen by ALPN).
//
// Where it lives: this class; http2_session.cc, the connection (set-up,
// input, nghttp2's callbacks, writes, deadlines, close) and its transport;
// http2_requests.cc, the requests on its streams; http2_output.h, what the
// streams answer and how it is written; http2_stream.h, a stream's state.
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
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "http/grpc_calls.h"
#include "http/http2_output.h"
#include "http/http2_stream.h"
#include "http/http_server_impl.h"
#include "http/router.h"

namespace mm::http2_internal {

// The connection's HTTP/2, above its transport: the socket, or the TLS
// stream over it, which Http2Transport<Stream> (http2_session.cc) adds (the
// one part that depends on the stream's type), starting each read, write
// and handshake and handing its completion back (OnRead, OnWritten,
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
  void TakeOver(std::string received);

  virtual ~Http2Session();

  void Run();

  // GOAWAY naming the last stream taken: the calls open finish and are
  // written (a stream stops taking requests), no new one starts, then the
  // connection closes.
  void Shutdown() override;

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

  void OnHandshake(beast::error_code ec);

  void OnRead(beast::error_code ec, size_t n);

  void OnWritten(beast::error_code ec);

 private:
  // "address:port" of the client, for the log.
  std::string Peer() { return PeerOf(Tcp()); }
  const char* What() const { return rest_ ? "HTTP/2" : "gRPC"; }

  // ------------------------------------------------------------ set-up

  bool Setup();

  // Flow control sized for 4 MiB tensors: a stream's whole message is in
  // flight without waiting for a WINDOW_UPDATE (nghttp2 sends one once half
  // the window is consumed; every byte is consumed as it arrives).
  static constexpr uint32_t kStreamWindow = 8u << 20;
  static constexpr int32_t kConnectionWindow = 64 << 20;

  void Handshake();

  // ------------------------------------------------------------ input
  // (The requests on the streams, from their heads to their answers, are
  // in http2_requests.cc.)

  void Read();
  static constexpr size_t kInputBytes = 64 << 10;

  void Receive(const uint8_t* data, size_t n);

  static H2Stream* Find(nghttp2_session* session, int32_t id);

  static int OnBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame, void* user);

  static int OnHeader(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
                      size_t name_size, const uint8_t* value, size_t value_size, uint8_t,
                      void* user);

  static int OnFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user);

  // The request's headers are all in: refuse it now if they already say so.
  void OnRequestHead(H2Stream* s);

  static int OnDataChunk(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data,
                         size_t size, void* user);

  // ModelStreamInfer's bytes: each message is handed on while the stream
  // has room (--grpc-stream-max-pending), else it waits, and so do the
  // window's bytes it arrived in.
  void OnStreamData(H2Stream* s, std::string_view piece);

  bool HasRoom(const H2Stream* s) const;

  // One request of a stream to the core. Not OK: the stream ends with it.
  Status HandOn(H2Stream* s, std::string message);

  // Hands on the messages that waited, while there is room; once none
  // waits, their bytes are consumed (the client may send more).
  void Pump(H2Stream* s);

  // A stream reads no more (a message that is not a request, or a revoked
  // key): the requests in flight are answered, then it ends with `status`.
  void StopReading(H2Stream* s, Status status);

  // The client half-closed: the request is whole. A unary call runs now.
  void OnRequestDone(H2Stream* s);

  void OnAnswered(int32_t id, GrpcReply reply);

  void OnStreamOut(int32_t id, GrpcStreamCall::Out out);

  // ------------------------------------------------------------ REST

  // A REST request has ended: to the Router, unless its head or body
  // already decided the answer (as HTTP/1.1 answers them).
  void RunRest(H2Stream* s);

  void OnRestReply(int32_t id, HttpReply reply);

  // The reply's head and body, or its head and then its events as they come.
  void ReplyRest(H2Stream* s, HttpReply reply);

  // Takes the events the model has sent since, once those taken before are
  // in the output (one chunk at a time, as HTTP/1.1 writes them): a client
  // that reads slowly holds the events in the EventStream, not here. With
  // none, the stream waits (deferred) until the model's next Push wakes it.
  void PumpEvents(H2Stream* s);

  // ------------------------------------------------------------ output

  static int OnSendData(nghttp2_session*, nghttp2_frame* frame, const uint8_t* frame_head,
                        size_t length, nghttp2_data_source* source, void* user);

  // Our END_STREAM went out while the client is still sending (an answer
  // before its whole request: an error): tell it to stop (RFC 9113 8.1).
  static int OnFrameSend(nghttp2_session* session, const nghttp2_frame* frame, void*);

  static int OnStreamClose(nghttp2_session* session, int32_t id, uint32_t error_code, void* user);

  // Writes whatever nghttp2 has to send, one write at a time; closes the
  // connection once nghttp2 wants neither to read nor to write.
  void Flush();

  // ------------------------------------------------------------ deadlines

  uint64_t TransferMs(uint64_t bytes) const;
  int64_t TransferNs(uint64_t bytes) const;
  void SetIdleDeadline();

  // Makes the timer fire by `due_ns` (it may fire earlier: Check re-arms).
  void Arm(int64_t due_ns);

  // Every deadline that has passed acts; the timer is set for the next one.
  void Check();

  void Close();

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

}  // namespace mm::http2_internal
