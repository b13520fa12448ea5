// GrpcServer: the KServe v2 gRPC service (inference.GRPCInferenceService)
// with the Triton RPCs tritonclient.grpc calls: no thread per request. Every
// RPC runs on grpc++'s completion-queue API, `threads` queues each polled by
// one thread that decodes, runs (inline when the scheduler allows) and answers
// a call in place; inference that runs on an execution thread answers from
// there, through the InferenceService callback.
//
// Shutdown contract: Stop() stops accepting RPCs, waits for the ones in flight
// to finish, then returns. Call once, from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"
#include "service/inference_service.h"

namespace mm {

class GrpcServer {
 public:
  struct Options {
    std::string address = "127.0.0.1";
    uint16_t port = 8001;  // 0: pick a free port (see port())
    size_t max_message_bytes = 64 << 20;
    size_t threads = 1;  // completion queues, one polling thread each
  };

  // Starts serving; fails with a message naming the address when it cannot listen.
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
