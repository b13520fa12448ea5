// The HTTP transport's flags, beside HttpServer::Options: where it listens,
// its threads, the request and connection limits, and TLS. The limits and the
// TLS files are the server's (--max-request-bytes, --tls-cert, ...): the gRPC
// transport takes the same values (main copies them into its Options).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/bounds.h"
#include "core/status.h"
#include "http/http_server.h"

namespace CLI {
class App;
}

namespace mm {

// Each bound is the flag's check and ValidateHttpOptions' at once.
inline constexpr Bounds<size_t> kHttpThreadsBounds{1, 256};
inline constexpr Bounds<size_t> kMaxRequestBytesBounds{1024, size_t{1} << 40};
inline constexpr Bounds<size_t> kMaxHeaderBytesBounds{1024, size_t{1} << 20};
inline constexpr Bounds<uint32_t> kReadTimeoutMsBounds{100, 3'600'000};
inline constexpr Bounds<size_t> kMaxConnectionsBounds{1, size_t{1} << 24};
inline constexpr Bounds<uint32_t> kTlsHandshakeTimeoutMsBounds{1, 600'000};
inline constexpr Bounds<uint32_t> kHttp2MaxConcurrentStreamsBounds{1, 1u << 20};

// Registers --http-address, --http-port, --http-threads, --max-request-bytes,
// --max-header-bytes, --read-timeout-ms, --max-connections, --tls-cert,
// --tls-key, --tls-client-ca, --tls-handshake-timeout-ms, --http2 and
// --http2-max-concurrent-streams, writing into
// `options` (which must outlive the parse). Sets the server's default of one
// I/O thread per core first.
void AddHttpFlags(CLI::App& app, HttpServer::Options& options);

// INVALID_ARGUMENT naming the flag when a bounded setting is out of its
// bounds above. HttpServer::Create calls it.
Status ValidateHttpOptions(const HttpServer::Options& options);

}  // namespace mm
