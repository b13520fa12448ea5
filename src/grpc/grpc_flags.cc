#include "grpc/grpc_flags.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <map>
#include <string>
#include <thread>

namespace mm {

void AddGrpcFlags(CLI::App& app, GrpcServer::Options& options, GrpcTransport& transport) {
  options.threads = std::max(1u, std::thread::hardware_concurrency());
  app.add_option("--grpc-address", options.address, "Address the gRPC server listens on")
      ->capture_default_str();
  app.add_option("--grpc-port", options.port, "gRPC port (0 picks a free one)")
      ->capture_default_str();
  app.add_option("--grpc-threads", options.threads,
                 "gRPC completion-queue threads (each decodes, runs and answers ModelInfer calls)")
      ->capture_default_str()
      ->check(CLI::Range(kGrpcThreadsBounds.min, kGrpcThreadsBounds.max));
  app.add_option("--grpc-stream-max-pending", options.stream_max_pending,
                 "Per ModelStreamInfer stream: requests in flight plus responses not yet "
                 "written, at most; at the bound the stream stops reading until a write "
                 "completes")
      ->capture_default_str()
      ->check(CLI::Range(kGrpcStreamMaxPendingBounds.min, kGrpcStreamMaxPendingBounds.max));
  app.add_option("--grpc-max-concurrent-streams", options.max_concurrent_streams,
                 "gRPC calls open at once on one connection (HTTP/2 "
                 "SETTINGS_MAX_CONCURRENT_STREAMS); more wait in the client")
      ->capture_default_str()
      ->check(CLI::Range(kGrpcMaxConcurrentStreamsBounds.min, kGrpcMaxConcurrentStreamsBounds.max));
  app.add_option("--grpc-transport", transport,
                 "What serves the gRPC port: 'native' (the default: HTTP/2 by nghttp2 on the "
                 "HTTP server's event loops, --http-threads, with the HTTP server's limits) or "
                 "'grpcpp' (grpc++, with --grpc-threads completion queues)")
      ->transform(CLI::CheckedTransformer(std::map<std::string, GrpcTransport>{
          {"grpcpp", GrpcTransport::kGrpcpp}, {"native", GrpcTransport::kNative}}));
}

Status ValidateGrpcOptions(const GrpcServer::Options& options) {
  MM_RETURN_IF_ERROR(CheckBounds("--grpc-threads", options.threads, kGrpcThreadsBounds));
  MM_RETURN_IF_ERROR(CheckBounds("--grpc-stream-max-pending", options.stream_max_pending,
                                 kGrpcStreamMaxPendingBounds));
  return CheckBounds("--grpc-max-concurrent-streams", options.max_concurrent_streams,
                     kGrpcMaxConcurrentStreamsBounds);
}

}  // namespace mm
