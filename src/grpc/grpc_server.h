// GrpcServer: the KServe v2 gRPC service (inference.GRPCInferenceService)
// with the Triton RPCs tritonclient.grpc calls: no thread per request. Every
// RPC runs on grpc++'s completion-queue API, `threads` queues each polled by
// one thread that decodes, runs (inline when the scheduler allows) and answers
// a call in place; inference that runs on an execution thread answers from
// there, through the InferenceService callback.
//
// TLS: with a certificate in Options the port speaks TLS only (the same PEM
// files as HttpServer, through grpc::SslServerCredentials); with a client CA as
// well, a client must present a certificate signed by it (mutual TLS).
//
// Shutdown contract: Stop() stops accepting RPCs, waits for the ones in flight
// to finish, then returns. Call once, from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"
#include "observability/request_observer.h"
#include "service/inference_service.h"

namespace mm {

class GrpcServer {
 public:
  struct Options {
    std::string address = "127.0.0.1";
    uint16_t port = 8001;  // 0: pick a free port (see port())
    size_t max_message_bytes = 64 << 20;
    size_t threads = 1;  // completion queues, one polling thread each
    // Largest request metadata (all of a call's headers), as HTTP's header limit.
    size_t max_metadata_bytes = 16 << 10;
    // A connection must finish its handshake (TLS, HTTP/2 preface) within
    // this long, and one with no call for this long is closed (GOAWAY).
    uint32_t read_timeout_ms = 60'000;
    // PEM files (--tls-cert, --tls-key, --tls-client-ca). An empty cert means
    // no TLS; a key goes with a cert; a client CA asks for mutual TLS.
    std::string tls_cert_file;
    std::string tls_key_file;
    std::string tls_client_ca_file;
    // Per ModelStreamInfer stream: requests read but not answered plus
    // responses not yet written, at most. At the bound the stream stops
    // reading until a write completes (--grpc-stream-max-pending).
    size_t stream_max_pending = 32;
    // Calls (unary or streams) open at once on one connection; more wait in
    // the client (--grpc-max-concurrent-streams). Each call holds at most one
    // unsent unary answer, or a stream's bound above, so this bounds what a
    // client that never reads can leave in the server per connection.
    uint32_t max_concurrent_streams = 1024;
    // Tracing and the access log of inference requests (not owned; outlives
    // the server); null: none.
    const RequestObserver* observer = nullptr;
  };

  // Starts serving; fails with a message naming the address when it cannot
  // listen, and one naming the flag and the file when a TLS file cannot be read.
  static StatusOr<std::unique_ptr<GrpcServer>> Start(Options options, InferenceService* service);
  ~GrpcServer();

  void Stop();
  uint16_t port() const;

  class Impl;

 private:
  explicit GrpcServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mm
