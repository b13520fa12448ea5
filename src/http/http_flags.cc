#include "http/http_flags.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <thread>

namespace mm {

void AddHttpFlags(CLI::App& app, HttpServer::Options& options) {
  options.threads = std::max(1u, std::thread::hardware_concurrency());
  app.add_option("--http-address", options.address, "Address the HTTP server listens on")
      ->capture_default_str();
  app.add_option("--http-port", options.port, "HTTP port (0 picks a free one)")
      ->capture_default_str();
  app.add_option("--http-threads", options.threads, "HTTP I/O threads")
      ->capture_default_str()
      ->check(CLI::Range(kHttpThreadsBounds.min, kHttpThreadsBounds.max));
  app.add_option("--max-request-bytes", options.max_request_bytes,
                 "Largest request body accepted (413 above it)")
      ->capture_default_str()
      ->check(CLI::Range(kMaxRequestBytesBounds.min, kMaxRequestBytesBounds.max));
  app.add_option("--max-header-bytes", options.max_header_bytes,
                 "Largest request head: HTTP header fields (431 above it), gRPC metadata")
      ->capture_default_str()
      ->check(CLI::Range(kMaxHeaderBytesBounds.min, kMaxHeaderBytesBounds.max));
  app.add_option("--read-timeout-ms", options.read_timeout_ms,
                 "Slow and idle clients: an HTTP request's head must arrive within it (keep-alive "
                 "idle time included), its body and reply at 64 KiB/s or more beyond it; a gRPC "
                 "connection must finish its handshake within it and is closed after that long "
                 "without a call")
      ->capture_default_str()
      ->check(CLI::Range(kReadTimeoutMsBounds.min, kReadTimeoutMsBounds.max));
  app.add_option("--max-connections", options.max_connections,
                 "Open HTTP connections at most; one more gets 503 and is closed")
      ->capture_default_str()
      ->check(CLI::Range(kMaxConnectionsBounds.min, kMaxConnectionsBounds.max));
  CLI::Option* tls_cert =
      app.add_option("--tls-cert", options.tls_cert_file,
                     "Server certificate chain (PEM, the server's certificate first): HTTP and "
                     "gRPC then speak TLS (1.2 or 1.3) only")
          ->check(CLI::ExistingFile);
  CLI::Option* tls_key = app.add_option("--tls-key", options.tls_key_file,
                                        "Private key of --tls-cert (PEM, not encrypted)")
                             ->check(CLI::ExistingFile);
  tls_cert->needs(tls_key);
  tls_key->needs(tls_cert);
  app.add_option("--tls-client-ca", options.tls_client_ca_file,
                 "CA certificates (PEM) for mutual TLS: HTTP and gRPC clients must present a "
                 "certificate signed by one of them")
      ->check(CLI::ExistingFile)
      ->needs(tls_cert);
  app.add_option("--tls-handshake-timeout-ms", options.tls_handshake_timeout_ms,
                 "HTTP: a TLS connection whose handshake has not finished by then is closed")
      ->capture_default_str()
      ->check(CLI::Range(kTlsHandshakeTimeoutMsBounds.min, kTlsHandshakeTimeoutMsBounds.max))
      ->group("");
  app.add_option("--http2", options.http2,
                 "The HTTP port also serves the REST API over HTTP/2: h2c with prior knowledge, "
                 "and h2 by ALPN under TLS (false: HTTP/1.1 only)")
      ->capture_default_str();
  app.add_option("--http2-max-concurrent-streams", options.http2_max_concurrent_streams,
                 "HTTP/2 on the HTTP port: requests open at once per connection")
      ->capture_default_str()
      ->check(
          CLI::Range(kHttp2MaxConcurrentStreamsBounds.min, kHttp2MaxConcurrentStreamsBounds.max));
}

Status ValidateHttpOptions(const HttpServer::Options& options) {
  MM_RETURN_IF_ERROR(CheckBounds("--http-threads", options.threads, kHttpThreadsBounds));
  MM_RETURN_IF_ERROR(
      CheckBounds("--max-request-bytes", options.max_request_bytes, kMaxRequestBytesBounds));
  MM_RETURN_IF_ERROR(
      CheckBounds("--max-header-bytes", options.max_header_bytes, kMaxHeaderBytesBounds));
  MM_RETURN_IF_ERROR(
      CheckBounds("--read-timeout-ms", options.read_timeout_ms, kReadTimeoutMsBounds));
  MM_RETURN_IF_ERROR(
      CheckBounds("--max-connections", options.max_connections, kMaxConnectionsBounds));
  MM_RETURN_IF_ERROR(CheckBounds("--http2-max-concurrent-streams",
                                 options.http2_max_concurrent_streams,
                                 kHttp2MaxConcurrentStreamsBounds));
  return CheckBounds("--tls-handshake-timeout-ms", options.tls_handshake_timeout_ms,
                     kTlsHandshakeTimeoutMsBounds);
}

}  // namespace mm
