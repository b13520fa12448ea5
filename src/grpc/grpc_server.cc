#include "grpc/grpc_server.h"

#include <chrono>
#include <deque>
#include <mutex>

#include <absl/synchronization/mutex.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "grpc/grpc_codec.h"
#include "grpc_service.grpc.pb.h"

namespace mm {

namespace {

using grpc::CallbackServerContext;
using grpc::ServerUnaryReactor;

grpc::Status ToGrpc(const Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(GrpcCodeFor(s.code())), s.message());
}

ServerUnaryReactor* Done(CallbackServerContext* ctx, const grpc::Status& status) {
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

ServerUnaryReactor* Done(CallbackServerContext* ctx, const Status& status) {
  return Done(ctx, ToGrpc(status));
}

// ModelStreamInfer: requests are read one after another and run concurrently;
// each response (or error, with the request's id) is written as it completes.
// A failing request never ends the stream; the stream ends once the client has
// half-closed and every response is written.
class StreamReactor : public grpc::ServerBidiReactor<inference::ModelInferRequest,
                                                     inference::ModelStreamInferResponse> {
 public:
  explicit StreamReactor(InferenceService* service) : service_(service) { StartRead(&request_); }

  void OnReadDone(bool ok) override {
    if (!ok) {
      std::lock_guard<std::mutex> lock(mu_);
      reads_done_ = true;
      MaybeFinish();
      return;
    }
    // The decoded request views into its message: keep the message alive with it.
    auto message = std::make_shared<inference::ModelInferRequest>(std::move(request_));
    request_.Clear();
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++in_flight_;
    }
    auto decoded = DecodeGrpcInferRequest(*message);
    if (!decoded.ok()) {
      Complete(message->id(), decoded.status(), nullptr);
    } else {
      auto request = std::make_unique<InferRequest>(std::move(*decoded));
      request->body = message;
      std::string id = message->id();
      service_->Infer(std::move(request),
                      [this, id = std::move(id)](StatusOr<std::unique_ptr<InferResponse>> r) {
                        if (r.ok()) {
                          Complete(id, OkStatus(), r->get());
                        } else {
                          Complete(id, r.status(), nullptr);
                        }
                      });
    }
    StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (!ok) {
      // The client went away: drop what is queued; finish when nothing runs.
      write_failed_ = true;
      queue_.clear();
    } else {
      queue_.pop_front();
    }
    WriteNext();
    MaybeFinish();
  }

  void OnDone() override { delete this; }

 private:
  void Complete(const std::string& id, const Status& status, const InferResponse* response) {
    inference::ModelStreamInferResponse out;
    if (status.ok()) {
      EncodeGrpcInferResponse(*response, out.mutable_infer_response());
    } else {
      out.set_error_message(status.message());
      out.mutable_infer_response()->set_id(id);
    }
    std::lock_guard<std::mutex> lock(mu_);
    --in_flight_;
    if (!write_failed_) queue_.push_back(std::move(out));
    WriteNext();
    MaybeFinish();
  }

  // Requires mu_.
  void WriteNext() {
    if (writing_ || queue_.empty()) return;
    writing_ = true;
    StartWrite(&queue_.front());
  }

  // Requires mu_.
  void MaybeFinish() {
    if (finished_ || !reads_done_ || in_flight_ > 0 || writing_ || !queue_.empty()) return;
    finished_ = true;
    Finish(grpc::Status::OK);
  }

  InferenceService* const service_;
  inference::ModelInferRequest request_;  // the read in progress

  std::mutex mu_;
  std::deque<inference::ModelStreamInferResponse> queue_;  // guarded by mu_; front is writing
  size_t in_flight_ = 0;                                   // guarded by mu_
  bool writing_ = false;                                   // guarded by mu_
  bool reads_done_ = false;                                // guarded by mu_
  bool write_failed_ = false;                              // guarded by mu_
  bool finished_ = false;                                  // guarded by mu_
};

class ServiceImpl final : public inference::GRPCInferenceService::CallbackService {
 public:
  explicit ServiceImpl(InferenceService* service) : service_(service) {}

  ServerUnaryReactor* ServerLive(CallbackServerContext* ctx, const inference::ServerLiveRequest*,
                                 inference::ServerLiveResponse* out) override {
    out->set_live(service_->Live());
    return Done(ctx, grpc::Status::OK);
  }

  ServerUnaryReactor* ServerReady(CallbackServerContext* ctx, const inference::ServerReadyRequest*,
                                  inference::ServerReadyResponse* out) override {
    out->set_ready(service_->Ready());
    return Done(ctx, grpc::Status::OK);
  }

  ServerUnaryReactor* ModelReady(CallbackServerContext* ctx, const inference::ModelReadyRequest* in,
                                 inference::ModelReadyResponse* out) override {
    out->set_ready(service_->ModelReady(in->name(), in->version()));
    return Done(ctx, grpc::Status::OK);
  }

  ServerUnaryReactor* ServerMetadata(CallbackServerContext* ctx,
                                     const inference::ServerMetadataRequest*,
                                     inference::ServerMetadataResponse* out) override {
    const auto& md = service_->Metadata();
    out->set_name(md.name);
    out->set_version(md.version);
    for (const auto& e : md.extensions) out->add_extensions(e);
    return Done(ctx, grpc::Status::OK);
  }

  ServerUnaryReactor* ModelMetadata(CallbackServerContext* ctx,
                                    const inference::ModelMetadataRequest* in,
                                    inference::ModelMetadataResponse* out) override {
    auto md = service_->GetModelMetadata(in->name(), in->version());
    if (!md.ok()) return Done(ctx, md.status());
    out->set_name(md->name);
    for (const auto& v : md->versions) out->add_versions(v);
    out->set_platform(md->platform);
    auto fill = [](const TensorMetadata& t, inference::ModelMetadataResponse::TensorMetadata* o) {
      o->set_name(t.name);
      o->set_datatype(std::string(DataTypeName(t.dtype)));
      for (int64_t d : t.shape) o->add_shape(d);
    };
    for (const auto& t : md->inputs) fill(t, out->add_inputs());
    for (const auto& t : md->outputs) fill(t, out->add_outputs());
    return Done(ctx, grpc::Status::OK);
  }

  ServerUnaryReactor* ModelConfig(CallbackServerContext* ctx,
                                  const inference::ModelConfigRequest* in,
                                  inference::ModelConfigResponse* out) override {
    auto model = service_->GetModel(in->name(), in->version());
    if (!model.ok()) return Done(ctx, model.status());
    *out->mutable_config() = (*model)->config;
    return Done(ctx, grpc::Status::OK);
  }

  ServerUnaryReactor* RepositoryIndex(CallbackServerContext* ctx,
                                      const inference::RepositoryIndexRequest* in,
                                      inference::RepositoryIndexResponse* out) override {
    if (!in->repository_name().empty()) {
      return Done(ctx, InvalidArgument("repository_name is not supported: mmserve lists every "
                                       "repository it serves; leave it empty"));
    }
    for (const auto& s : service_->RepositoryIndex(in->ready())) {
      auto* m = out->add_models();
      m->set_name(s.name);
      if (s.version > 0) m->set_version(std::to_string(s.version));
      m->set_state(std::string(ModelStateName(s.state)));
      m->set_reason(s.reason);
    }
    return Done(ctx, grpc::Status::OK);
  }

  ServerUnaryReactor* RepositoryModelLoad(CallbackServerContext* ctx,
                                          const inference::RepositoryModelLoadRequest* in,
                                          inference::RepositoryModelLoadResponse*) override {
    return Done(ctx, Unavailable("cannot load model '" + in->model_name() +
                                 "': this server runs with --model-control-mode none, which "
                                 "loads every model at start"));
  }

  ServerUnaryReactor* RepositoryModelUnload(CallbackServerContext* ctx,
                                            const inference::RepositoryModelUnloadRequest* in,
                                            inference::RepositoryModelUnloadResponse*) override {
    return Done(ctx, Unavailable("cannot unload model '" + in->model_name() +
                                 "': this server runs with --model-control-mode none"));
  }

  ServerUnaryReactor* ModelStatistics(CallbackServerContext* ctx,
                                      const inference::ModelStatisticsRequest*,
                                      inference::ModelStatisticsResponse*) override {
    return Done(ctx, Unavailable("model statistics are not collected by this server yet"));
  }

  ServerUnaryReactor* SystemSharedMemoryStatus(
      CallbackServerContext* ctx, const inference::SystemSharedMemoryStatusRequest* in,
      inference::SystemSharedMemoryStatusResponse* out) override {
    auto regions = service_->shared_memory().List(in->name());
    if (!regions.ok()) return Done(ctx, regions.status());
    for (const auto& r : *regions) {
      auto& status = (*out->mutable_regions())[r.name];
      status.set_name(r.name);
      status.set_key(r.key);
      status.set_offset(r.offset);
      status.set_byte_size(r.byte_size);
    }
    return Done(ctx, grpc::Status::OK);
  }

  ServerUnaryReactor* SystemSharedMemoryRegister(
      CallbackServerContext* ctx, const inference::SystemSharedMemoryRegisterRequest* in,
      inference::SystemSharedMemoryRegisterResponse*) override {
    return Done(ctx, service_->shared_memory().Register(in->name(), in->key(), in->offset(),
                                                        in->byte_size()));
  }

  ServerUnaryReactor* SystemSharedMemoryUnregister(
      CallbackServerContext* ctx, const inference::SystemSharedMemoryUnregisterRequest* in,
      inference::SystemSharedMemoryUnregisterResponse*) override {
    if (in->name().empty()) {
      service_->shared_memory().UnregisterAll();
      return Done(ctx, grpc::Status::OK);
    }
    return Done(ctx, service_->shared_memory().Unregister(in->name()));
  }

  ServerUnaryReactor* ModelInfer(CallbackServerContext* ctx, const inference::ModelInferRequest* in,
                                 inference::ModelInferResponse* out) override {
    ServerUnaryReactor* reactor = ctx->DefaultReactor();
    auto decoded = DecodeGrpcInferRequest(*in);
    if (!decoded.ok()) {
      reactor->Finish(ToGrpc(decoded.status()));
      return reactor;
    }
    // `in` stays valid until Finish: the request's views into it are safe.
    service_->Infer(std::make_unique<InferRequest>(std::move(*decoded)),
                    [reactor, out](StatusOr<std::unique_ptr<InferResponse>> r) {
                      if (!r.ok()) return reactor->Finish(ToGrpc(r.status()));
                      EncodeGrpcInferResponse(**r, out);
                      reactor->Finish(grpc::Status::OK);
                    });
    return reactor;
  }

  grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>*
  ModelStreamInfer(CallbackServerContext*) override {
    return new StreamReactor(service_);
  }

 private:
  InferenceService* const service_;
};

}  // namespace

class GrpcServer::Impl {
 public:
  explicit Impl(InferenceService* service) : service_impl(service) {}
  ServiceImpl service_impl;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  bool stopped = false;
};

StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(Options options,
                                                        InferenceService* service) {
  // Debian's abseil checks every mutex acquisition for lock-order cycles, which
  // costs gRPC ~3% of its CPU per call; our own code does not use absl::Mutex.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  auto impl = std::make_unique<Impl>(service);
  grpc::ServerBuilder builder;
  const std::string target = options.address + ":" + std::to_string(options.port);
  builder.AddListeningPort(target, grpc::InsecureServerCredentials(), &impl->port);
  const int limit = static_cast<int>(std::min<size_t>(options.max_message_bytes, INT32_MAX));
  builder.SetMaxReceiveMessageSize(limit);
  builder.SetMaxSendMessageSize(limit);
  builder.RegisterService(&impl->service_impl);
  impl->server = builder.BuildAndStart();
  if (!impl->server || impl->port == 0) {
    return Unavailable("cannot listen for gRPC on " + target +
                       " (address in use, or not an address of this machine)");
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
}

uint16_t GrpcServer::port() const { return static_cast<uint16_t>(impl_->port); }

}  // namespace mm
