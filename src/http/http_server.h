// HttpServer: HTTP/1.1 over Boost.Beast (and, on a port of its own, gRPC
// over HTTP/2: Options::grpc), a fixed set of I/O threads, one
// strand per connection, keep-alive and pipelining (requests on a connection
// are answered in order). No thread per request: inference completes on an
// execution thread and posts its reply back to the connection's strand.
//
// TLS: with a certificate in Options every connection starts with a TLS
// handshake (TLS 1.2 or 1.3), bounded by tls_handshake_timeout_ms; with a
// client CA as well, a client must present a certificate signed by it (mutual
// TLS). A connection whose handshake fails or times out is closed (logged at
// debug); the server goes on. After the handshake a TLS connection runs the
// same HTTP code as a plain one.
//
// Shutdown contract: Stop() stops accepting, closes idle connections (and
// ones still in their handshake), lets every request already received finish
// and be written, then joins the I/O threads. Safe to call once, from any
// thread that is not an I/O thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"
#include "observability/request_observer.h"
#include "service/inference_service.h"

namespace mm {

class HttpServer {
 public:
  struct Options {
    std::string address = "127.0.0.1";
    uint16_t port = 8000;  // 0: pick a free port (see port())
    size_t threads = 2;
    size_t max_request_bytes = 64 << 20;
    size_t max_header_bytes = 16 << 10;
    // Slow clients (see Session's deadlines): a request's head must arrive
    // within read_timeout_ms of the server waiting for it (keep-alive idle
    // time included); its body, and the reply, within read_timeout_ms plus
    // their size at min_transfer_bytes_per_s. Past it, the connection closes.
    uint32_t read_timeout_ms = 60'000;
    uint64_t min_transfer_bytes_per_s = 64 << 10;
    // Open connections at most; one more gets 503 (plain HTTP) and is closed.
    size_t max_connections = 4096;
    // PEM files (--tls-cert, --tls-key, --tls-client-ca). An empty cert means
    // plain HTTP; a key goes with a cert; a client CA asks for mutual TLS.
    std::string tls_cert_file;
    std::string tls_key_file;
    std::string tls_client_ca_file;
    // A TLS connection whose handshake has not finished by then is closed.
    uint32_t tls_handshake_timeout_ms = 10'000;
    // The HTTP port speaks HTTP/2 too (--http2): a client that opens with the
    // HTTP/2 preface (h2c with prior knowledge), or that ALPN agrees h2 with
    // under TLS, gets the same REST API over HTTP/2, with the limits above
    // per request and at most http2_max_concurrent_streams requests open
    // at once per connection (SETTINGS_MAX_CONCURRENT_STREAMS).
    bool http2 = true;
    uint32_t http2_max_concurrent_streams = 128;
    // Tracing and the access log of inference requests (not owned; outlives
    // the server); null: none.
    const RequestObserver* observer = nullptr;
    // The native gRPC transport (--grpc-transport native): gRPC over HTTP/2
    // (nghttp2) on a port of its own, served by these event loops with the
    // limits above (max_request_bytes per message, max_header_bytes of
    // metadata, the read timeout per message and idle connection, the
    // connection limit counting both ports) and the same certificate (ALPN
    // h2). Off unless `enabled`.
    struct Grpc {
      bool enabled = false;
      std::string address = "127.0.0.1";
      uint16_t port = 8001;  // 0: pick a free port (see grpc_port())
      // SETTINGS_MAX_CONCURRENT_STREAMS: calls open at once per connection.
      uint32_t max_concurrent_streams = 1024;
      // Per ModelStreamInfer stream: requests in flight plus responses not
      // yet written, at most; more wait, their bytes unconsumed, so that
      // HTTP/2 flow control holds the client back.
      size_t stream_max_pending = 32;
    } grpc;
  };

  // Binds and listens; fails with a message naming the address when it cannot,
  // and with one naming the flag and the file when a TLS file is missing, not
  // PEM, or the key does not match the certificate.
  static StatusOr<std::unique_ptr<HttpServer>> Create(Options options, InferenceService* service);
  ~HttpServer();

  void Start();
  void Stop();
  uint16_t port() const;
  // The native gRPC port (0 when options.grpc is not enabled).
  uint16_t grpc_port() const;

  class Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mm
