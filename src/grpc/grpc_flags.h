// The gRPC transport's own flags, beside GrpcServer::Options: where it
// listens, its threads and its per-connection bounds. The message, metadata,
// timeout and TLS settings are the server's, registered with HTTP's
// (http/http_flags.h); main copies them into these Options.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/bounds.h"
#include "core/status.h"
#include "grpc/grpc_server.h"

namespace CLI {
class App;
}

namespace mm {

// Each bound is the flag's check and ValidateGrpcOptions' at once.
inline constexpr Bounds<size_t> kGrpcThreadsBounds{1, 256};
inline constexpr Bounds<size_t> kGrpcStreamMaxPendingBounds{1, 65536};
inline constexpr Bounds<uint32_t> kGrpcMaxConcurrentStreamsBounds{1, 1u << 20};

// What serves the gRPC port (--grpc-transport): the native transport, gRPC
// over HTTP/2 on the HTTP server's event loops (HttpServer::Options::grpc;
// the default), or grpc++ (GrpcServer), kept as the fallback.
enum class GrpcTransport { kGrpcpp, kNative };

// Registers --grpc-address, --grpc-port, --grpc-threads,
// --grpc-stream-max-pending, --grpc-max-concurrent-streams and
// --grpc-transport, writing into `options` and `transport` (which must
// outlive the parse). Sets the server's default of one completion-queue
// thread per core first.
void AddGrpcFlags(CLI::App& app, GrpcServer::Options& options, GrpcTransport& transport);

// INVALID_ARGUMENT naming the flag when a bounded setting is out of its
// bounds above. GrpcServer::Start calls it.
Status ValidateGrpcOptions(const GrpcServer::Options& options);

}  // namespace mm
