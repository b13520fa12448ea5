#include "grpc/grpc_server.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include <absl/synchronization/mutex.h>
#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "grpc/grpc_call.h"
#include "grpc/grpc_flags.h"

namespace mm {

namespace {

using grpc_internal::Queue;
using grpc_internal::Shared;
using grpc_internal::Tag;

// The tag of Queue::close_alarm.
class CloseTag final : public Tag {
 public:
  explicit CloseTag(Queue* queue) : queue_(queue) {}
  void Proceed(bool) override {
    queue_->closing = true;
    queue_->cq->Shutdown();  // Next drains what is left, then ends
  }

 private:
  Queue* const queue_;
};

// The whole of a PEM file; fails naming the flag and the path.
StatusOr<std::string> ReadPem(std::string_view flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return InvalidArgument(std::string(flag) + " " + path + ": cannot read the file (" +
                           std::strerror(errno) + ")");
  }
  std::ostringstream text;
  text << in.rdbuf();
  std::string pem = std::move(text).str();
  if (pem.find("-----BEGIN ") == std::string::npos) {
    return InvalidArgument(std::string(flag) + " " + path +
                           ": not a PEM file; expected -----BEGIN ...----- blocks");
  }
  return pem;
}

// TLS credentials when options name a certificate, else plain (insecure) ones.
StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeCredentials(
    const GrpcServer::Options& options) {
  if (options.tls_cert_file.empty()) {
    if (!options.tls_key_file.empty() || !options.tls_client_ca_file.empty()) {
      return InvalidArgument(
          "--tls-key and --tls-client-ca need --tls-cert (the server's certificate)");
    }
    return grpc::InsecureServerCredentials();
  }
  if (options.tls_key_file.empty()) {
    return InvalidArgument("--tls-cert " + options.tls_cert_file +
                           " needs --tls-key (the certificate's private key)");
  }
  grpc::SslServerCredentialsOptions ssl;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  MM_ASSIGN_OR_RETURN(pair.cert_chain, ReadPem("--tls-cert", options.tls_cert_file));
  MM_ASSIGN_OR_RETURN(pair.private_key, ReadPem("--tls-key", options.tls_key_file));
  ssl.pem_key_cert_pairs.push_back(std::move(pair));
  if (!options.tls_client_ca_file.empty()) {
    MM_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadPem("--tls-client-ca", options.tls_client_ca_file));
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

// Asks for one call of every method on `queue`.
void AwaitAll(Shared* s, Queue* q) {
  grpc_internal::AwaitUnaryCalls(s, q);
  grpc_internal::AwaitStreamCall(s, q);
}

}  // namespace

class GrpcServer::Impl {
 public:
  Shared shared;
  std::unique_ptr<grpc::Server> server;
  std::vector<std::unique_ptr<Queue>> queues;
  std::vector<std::unique_ptr<CloseTag>> close_tags;
  int port = 0;
  bool stopped = false;
};

StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(Options options,
                                                        InferenceService* service) {
  MM_RETURN_IF_ERROR(ValidateGrpcOptions(options));
  // Debian's abseil checks every mutex acquisition for lock-order cycles, which
  // costs gRPC ~3% of its CPU per call; our own code does not use absl::Mutex.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  MM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
                      MakeCredentials(options));
  auto impl = std::make_unique<Impl>();
  impl->shared.service = service;
  impl->shared.stream_max_pending = options.stream_max_pending;
  if (options.observer != nullptr && options.observer->enabled()) {
    impl->shared.observer = options.observer;
  }
  grpc::ServerBuilder builder;
  const std::string target = options.address + ":" + std::to_string(options.port);
  builder.AddListeningPort(target, credentials, &impl->port);
  const int limit = static_cast<int>(std::min<size_t>(options.max_message_bytes, INT32_MAX));
  builder.SetMaxReceiveMessageSize(limit);
  builder.SetMaxSendMessageSize(limit);
  // Slow or idle clients cannot hold a connection (or its memory) for long.
  builder.AddChannelArgument(
      GRPC_ARG_MAX_METADATA_SIZE,
      static_cast<int>(std::min<size_t>(options.max_metadata_bytes, INT32_MAX)));
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                             static_cast<int>(options.read_timeout_ms));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                             static_cast<int>(options.read_timeout_ms));
  builder.AddChannelArgument(
      GRPC_ARG_MAX_CONCURRENT_STREAMS,
      static_cast<int>(std::clamp<uint32_t>(options.max_concurrent_streams, 1, INT32_MAX)));
  builder.RegisterService(&impl->shared.grpc_service);
  for (size_t i = 0; i < std::max<size_t>(1, options.threads); ++i) {
    impl->queues.push_back(std::make_unique<Queue>());
    impl->queues.back()->cq = builder.AddCompletionQueue();
    impl->close_tags.push_back(std::make_unique<CloseTag>(impl->queues.back().get()));
  }
  impl->server = builder.BuildAndStart();
  if (!impl->server || impl->port == 0) {
    for (auto& q : impl->queues) {
      q->cq->Shutdown();
      void* tag;
      bool ok;
      while (q->cq->Next(&tag, &ok)) {
      }
    }
    return Unavailable(
        "cannot listen for gRPC on " + target +
        (options.tls_cert_file.empty()
             ? " (address in use, or not an address of this machine)"
             : " (address in use, not an address of this machine, or gRPC refused the "
               "certificate in --tls-cert " +
                   options.tls_cert_file + " or the key in --tls-key " + options.tls_key_file +
                   ")"));
  }
  for (auto& q : impl->queues) {
    Queue* queue = q.get();
    AwaitAll(&impl->shared, queue);
    queue->thread = std::thread([queue] {
      void* tag;
      bool ok;
      while (queue->cq->Next(&tag, &ok)) static_cast<Tag*>(tag)->Proceed(ok);
    });
  }
  return std::unique_ptr<GrpcServer>(new GrpcServer(std::move(impl)));
}

GrpcServer::GrpcServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GrpcServer::~GrpcServer() { Stop(); }

void GrpcServer::Stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  // Waits for RPCs in flight; streams a client keeps open are cancelled after
  // the grace period.
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(30));
  impl_->server->Wait();
  // No inference callback may start an operation on a queue that is shut down.
  impl_->shared.in_flight.WaitIdle();
  for (size_t i = 0; i < impl_->queues.size(); ++i) {
    impl_->queues[i]->close_alarm.Set(impl_->queues[i]->cq.get(), gpr_now(GPR_CLOCK_MONOTONIC),
                                      impl_->close_tags[i].get());
  }
  for (auto& q : impl_->queues) q->thread.join();
}

uint16_t GrpcServer::port() const { return static_cast<uint16_t>(impl_->port); }

}  // namespace mm
