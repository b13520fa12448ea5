// The unary RPCs of the gRPC server: UnaryCall, one per call, and a handler
// per method that answers it through the InferenceService (grpc_call.h).
#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>

#include "core/cancellation.h"
#include "core/delivery.h"
#include "grpc/grpc_call.h"
#include "grpc/grpc_codec.h"

namespace mm::grpc_internal {

namespace {

struct ServerLive;
struct ServerReady;
// The health checks answer anyone (probes carry no key); every other call
// authenticates first.
template <class Handler>
inline constexpr bool kOpenToAnyone =
    std::is_same_v<Handler, ServerLive> || std::is_same_v<Handler, ServerReady>;

struct ModelInfer;
// Calls whose client may go away while they wait in a model's queue: they
// watch for it (AsyncNotifyWhenDone), which costs one more completion event.
template <class Handler>
inline constexpr bool kWatchesCancellation = std::is_same_v<Handler, ModelInfer>;

// A unary RPC. Its tag comes out of the queue twice: when a call arrives
// (ok = false: the server is shutting down) and when its answer is sent; a
// call that watches for cancellation also gets its done tag once the call is
// over (or the client cancelled it). It deletes itself after the last. All
// three come out of its own queue, so only that queue's thread counts them.
// On arrival it asks for the next call of its method on the same queue, then
// runs Handler::Run, which answers with Finish() exactly once, from any thread.
template <class Handler>
class UnaryCall final : public Tag {
 public:
  using Request = typename Handler::Request;
  using Response = typename Handler::Response;

  static void Await(Shared* shared, Queue* queue) {
    if (queue->closing) return;
    auto* call = new UnaryCall(shared, queue);
    // (The done tag comes only for a call that starts: grpc issue 10136.)
    if constexpr (kWatchesCancellation<Handler>) call->ctx_.AsyncNotifyWhenDone(&call->done_);
    (shared->grpc_service.*Handler::kRequest)(&call->ctx_, &call->request_, &call->responder_,
                                              queue->cq.get(), queue->cq.get(), call);
  }

  void Proceed(bool ok) override {
    if (answered_ || !ok) {
      // After the answer: `ok` says whether it was sent (its bytes billed, its slot freed).
      if (answered_) receipt_.Settle(ok);
      if (--events_left_ == 0 || !answered_) delete this;
      return;
    }
    answered_ = true;
    Await(shared_, queue_);
    if constexpr (!kOpenToAnyone<Handler>) {
      auto tenant = shared_->service->Authenticate(AuthorizationOf(ctx_));
      if (!tenant.ok()) return Finish(tenant.status());
      tenant_ = std::move(*tenant);
    }
    Handler::Run(shared_, this);
  }

  // Who asked (set before Run, except for the health checks).
  const Tenant& tenant() const { return *tenant_; }
  const grpc::ServerContext& context() const { return ctx_; }

  // Set by Handler::Run for a call that watches for its client going away.
  void set_cancellation(std::shared_ptr<Cancellation> c) { cancellation_ = std::move(c); }
  // The answer's delivery receipt, settled once Finish has sent it (or failed to).
  // Set before Finish, from the thread that calls it.
  void set_receipt(DeliveryReceipt receipt) { receipt_ = std::move(receipt); }

  void Finish(const grpc::Status& status) {
    if (status.ok()) {
      responder_.Finish(response_, status, this);
    } else {
      responder_.FinishWithError(status, this);
    }
  }
  void Finish(const Status& status) { Finish(ToGrpc(status)); }

  const Request& request() const { return request_; }
  Response* response() { return &response_; }

 private:
  UnaryCall(Shared* shared, Queue* queue) : shared_(shared), queue_(queue) {}

  // The call is over: cancelled by its client (or its deadline), or answered.
  class DoneTag final : public Tag {
   public:
    explicit DoneTag(UnaryCall* call) : call_(call) {}
    void Proceed(bool) override {
      UnaryCall* call = call_;
      if (call->cancellation_ != nullptr && call->ctx_.IsCancelled()) {
        call->cancellation_->Cancel();  // a request still queued is answered now
      }
      if (--call->events_left_ == 0) delete call;
    }

   private:
    UnaryCall* const call_;
  };

  Shared* const shared_;
  Queue* const queue_;
  grpc::ServerContext ctx_;
  Request request_;
  Response response_;
  grpc::ServerAsyncResponseWriter<Response> responder_{&ctx_};
  bool answered_ = false;
  // After arrival: the answer sent, and the done tag when watched.
  int events_left_ = kWatchesCancellation<Handler> ? 2 : 1;
  DoneTag done_{this};
  std::shared_ptr<Cancellation> cancellation_;
  std::shared_ptr<const Tenant> tenant_;
  DeliveryReceipt receipt_;
};

#define MM_UNARY(NAME)                                             \
  struct NAME {                                                    \
    using Request = inference::NAME##Request;                      \
    using Response = inference::NAME##Response;                    \
    static constexpr auto kRequest = &AsyncService::Request##NAME; \
    static void Run(Shared* s, UnaryCall<NAME>* call);             \
  }

MM_UNARY(ServerLive);
MM_UNARY(ServerReady);
MM_UNARY(ModelReady);
MM_UNARY(ServerMetadata);
MM_UNARY(ModelMetadata);
MM_UNARY(ModelConfig);
MM_UNARY(ModelStatistics);
MM_UNARY(RepositoryIndex);
MM_UNARY(RepositoryModelLoad);
MM_UNARY(RepositoryModelUnload);
MM_UNARY(SystemSharedMemoryStatus);
MM_UNARY(SystemSharedMemoryRegister);
MM_UNARY(SystemSharedMemoryUnregister);
MM_UNARY(CudaSharedMemoryStatus);
MM_UNARY(CudaSharedMemoryRegister);
MM_UNARY(CudaSharedMemoryUnregister);
MM_UNARY(TraceSetting);
MM_UNARY(LogSettings);
MM_UNARY(ModelInfer);
#undef MM_UNARY

void ServerLive::Run(Shared* s, UnaryCall<ServerLive>* call) {
  call->response()->set_live(s->service->Live());
  call->Finish(grpc::Status::OK);
}

void ServerReady::Run(Shared* s, UnaryCall<ServerReady>* call) {
  call->response()->set_ready(s->service->Ready());
  call->Finish(grpc::Status::OK);
}

void ModelReady::Run(Shared* s, UnaryCall<ModelReady>* call) {
  const auto& in = call->request();
  call->response()->set_ready(s->service->ModelReady(call->tenant(), in.name(), in.version()));
  call->Finish(grpc::Status::OK);
}

void ServerMetadata::Run(Shared* s, UnaryCall<ServerMetadata>* call) {
  const auto& md = s->service->Metadata();
  auto* out = call->response();
  out->set_name(md.name);
  out->set_version(md.version);
  for (const auto& e : md.extensions) out->add_extensions(e);
  call->Finish(grpc::Status::OK);
}

void ModelMetadata::Run(Shared* s, UnaryCall<ModelMetadata>* call) {
  const auto& in = call->request();
  auto md = s->service->GetModelMetadata(call->tenant(), in.name(), in.version());
  if (!md.ok()) return call->Finish(md.status());
  auto* out = call->response();
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
  call->Finish(grpc::Status::OK);
}

void ModelConfig::Run(Shared* s, UnaryCall<ModelConfig>* call) {
  const auto& in = call->request();
  auto model = s->service->GetModel(call->tenant(), in.name(), in.version());
  if (!model.ok()) return call->Finish(model.status());
  *call->response()->mutable_config() = (*model)->config;
  call->Finish(grpc::Status::OK);
}

void ModelStatistics::Run(Shared* s, UnaryCall<ModelStatistics>* call) {
  const auto& in = call->request();
  auto all = s->service->ModelStatistics(call->tenant(), in.name(), in.version());
  if (!all.ok()) return call->Finish(all.status());
  auto fill = [](const DurationStat& d, inference::StatisticDuration* out) {
    out->set_count(d.count);
    out->set_ns(d.ns);
  };
  for (const ModelStatsSnapshot& st : *all) {
    auto* m = call->response()->add_model_stats();
    m->set_name(st.model);
    m->set_version(std::to_string(st.version));
    m->set_last_inference(static_cast<uint64_t>(std::max<int64_t>(st.last_inference_ms, 0)));
    m->set_inference_count(st.inference_count);
    m->set_execution_count(st.execution_count);
    auto* is = m->mutable_inference_stats();
    fill(st.success, is->mutable_success());
    fill(st.fail, is->mutable_fail());
    fill(st.queue, is->mutable_queue());
    fill(st.compute_input, is->mutable_compute_input());
    fill(st.compute_infer, is->mutable_compute_infer());
    fill(st.compute_output, is->mutable_compute_output());
    fill(st.cache_hit, is->mutable_cache_hit());
    fill(st.cache_miss, is->mutable_cache_miss());
    for (const BatchStat& b : st.batches) {
      auto* bs = m->add_batch_stats();
      bs->set_batch_size(static_cast<uint64_t>(b.batch_size));
      fill(b.compute_input, bs->mutable_compute_input());
      fill(b.compute_infer, bs->mutable_compute_infer());
      fill(b.compute_output, bs->mutable_compute_output());
    }
  }
  call->Finish(grpc::Status::OK);
}

void RepositoryIndex::Run(Shared* s, UnaryCall<RepositoryIndex>* call) {
  const auto& in = call->request();
  if (!in.repository_name().empty()) {
    return call->Finish(InvalidArgument(
        "repository_name is not supported: mmserve lists every repository it serves; leave it "
        "empty"));
  }
  for (const auto& st : s->service->RepositoryIndex(call->tenant(), in.ready())) {
    auto* m = call->response()->add_models();
    m->set_name(st.name);
    if (st.version > 0) m->set_version(std::to_string(st.version));
    m->set_state(std::string(ModelStateName(st.state)));
    m->set_reason(st.reason);
  }
  call->Finish(grpc::Status::OK);
}

// Answers `call` from the thread that finishes a repository operation.
template <class Handler>
std::function<void(Status)> FinishLater(Shared* s, UnaryCall<Handler>* call) {
  Pending* pending = &s->pending;
  pending->Add();
  return [call, pending](Status status) {
    call->Finish(status);
    pending->Done();
  };
}

void RepositoryModelLoad::Run(Shared* s, UnaryCall<RepositoryModelLoad>* call) {
  const auto& in = call->request();
  if (!in.repository_name().empty()) {
    return call->Finish(InvalidArgument(
        "repository_name is not supported: mmserve loads a model from whichever repository "
        "holds it; leave it empty"));
  }
  std::optional<std::string> config;
  for (const auto& [key, value] : in.parameters()) {
    if (key == "config") {
      if (value.parameter_choice_case() != inference::ModelRepositoryParameter::kStringParam) {
        return call->Finish(InvalidArgument(
            "model load request: parameter 'config' must be a string_param holding the model "
            "configuration as JSON"));
      }
      config = value.string_param();
    } else if (key.rfind("file:", 0) == 0) {
      return call->Finish(InvalidArgument(
          "model load request: parameter '" + key +
          "': mmserve does not take model files in a load request; put them in the model "
          "repository"));
    }
  }
  s->service->LoadModel(call->tenant(), in.model_name(), std::move(config), FinishLater(s, call));
}

void RepositoryModelUnload::Run(Shared* s, UnaryCall<RepositoryModelUnload>* call) {
  const auto& in = call->request();
  if (!in.repository_name().empty()) {
    return call->Finish(InvalidArgument(
        "repository_name is not supported: mmserve unloads a model from whichever repository "
        "holds it; leave it empty"));
  }
  s->service->UnloadModel(call->tenant(), in.model_name(), FinishLater(s, call));
}

// Every tenant registers and sees only its own regions (shared_memory.h): the
// owner is always the caller's tenant.
void SystemSharedMemoryStatus::Run(Shared* s, UnaryCall<SystemSharedMemoryStatus>* call) {
  auto regions = s->service->shared_memory().List(call->tenant().id, call->request().name());
  if (!regions.ok()) return call->Finish(regions.status());
  for (const auto& r : *regions) {
    auto& status = (*call->response()->mutable_regions())[r.name];
    status.set_name(r.name);
    status.set_key(r.key);
    status.set_offset(r.offset);
    status.set_byte_size(r.byte_size);
  }
  call->Finish(grpc::Status::OK);
}

void SystemSharedMemoryRegister::Run(Shared* s, UnaryCall<SystemSharedMemoryRegister>* call) {
  const auto& in = call->request();
  call->Finish(s->service->shared_memory().Register(call->tenant().id, in.name(), in.key(),
                                                    in.offset(), in.byte_size()));
}

void SystemSharedMemoryUnregister::Run(Shared* s, UnaryCall<SystemSharedMemoryUnregister>* call) {
  const auto& name = call->request().name();
  if (name.empty()) {
    s->service->shared_memory().UnregisterAll(call->tenant().id);
    return call->Finish(grpc::Status::OK);
  }
  call->Finish(s->service->shared_memory().Unregister(call->tenant().id, name));
}

grpc::Status NotImplemented(const std::string& what) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, what + " is not supported by mmserve");
}

void CudaSharedMemoryStatus::Run(Shared*, UnaryCall<CudaSharedMemoryStatus>* call) {
  call->Finish(NotImplemented("CUDA shared memory"));
}
void CudaSharedMemoryRegister::Run(Shared*, UnaryCall<CudaSharedMemoryRegister>* call) {
  call->Finish(NotImplemented("CUDA shared memory"));
}
void CudaSharedMemoryUnregister::Run(Shared*, UnaryCall<CudaSharedMemoryUnregister>* call) {
  call->Finish(NotImplemented("CUDA shared memory"));
}
void TraceSetting::Run(Shared*, UnaryCall<TraceSetting>* call) {
  call->Finish(NotImplemented("trace settings"));
}
void LogSettings::Run(Shared*, UnaryCall<LogSettings>* call) {
  call->Finish(NotImplemented("log settings"));
}

void ModelInfer::Run(Shared* s, UnaryCall<ModelInfer>* call) {
  const int64_t received_ns = SteadyNowNs();
  auto decoded = DecodeGrpcInferRequest(call->request());
  if (!decoded.ok()) return call->Finish(decoded.status());
  // The call (and the request message the tensors view into) lives until its
  // answer is sent. Its Finish may come from an execution thread: count it.
  Pending* pending = &s->pending;
  pending->Add();
  auto request = std::make_unique<InferRequest>(std::move(*decoded));
  request->cancellation = std::make_shared<Cancellation>();
  request->received_ns = received_ns;
  call->set_cancellation(request->cancellation);
  InferCallback done = [call, pending](StatusOr<std::unique_ptr<InferResponse>> r) {
    if (r.ok()) {
      EncodeGrpcInferResponse(**r, call->response());
      call->set_receipt(std::move((*r)->receipt));
      call->Finish(grpc::Status::OK);
    } else {
      call->Finish(r.status());
    }
    pending->Done();
  };
  if (s->observer != nullptr) {
    done = Observe(s->observer, pending, call->context(), call->tenant(), *request, received_ns,
                   std::move(done));
  }
  s->service->Infer(call->tenant(), std::move(request), std::move(done));
}

}  // namespace

void AwaitUnaryCalls(Shared* s, Queue* q) {
  UnaryCall<ServerLive>::Await(s, q);
  UnaryCall<ServerReady>::Await(s, q);
  UnaryCall<ModelReady>::Await(s, q);
  UnaryCall<ServerMetadata>::Await(s, q);
  UnaryCall<ModelMetadata>::Await(s, q);
  UnaryCall<ModelConfig>::Await(s, q);
  UnaryCall<ModelStatistics>::Await(s, q);
  UnaryCall<RepositoryIndex>::Await(s, q);
  UnaryCall<RepositoryModelLoad>::Await(s, q);
  UnaryCall<RepositoryModelUnload>::Await(s, q);
  UnaryCall<SystemSharedMemoryStatus>::Await(s, q);
  UnaryCall<SystemSharedMemoryRegister>::Await(s, q);
  UnaryCall<SystemSharedMemoryUnregister>::Await(s, q);
  UnaryCall<CudaSharedMemoryStatus>::Await(s, q);
  UnaryCall<CudaSharedMemoryRegister>::Await(s, q);
  UnaryCall<CudaSharedMemoryUnregister>::Await(s, q);
  UnaryCall<TraceSetting>::Await(s, q);
  UnaryCall<LogSettings>::Await(s, q);
  // A few ModelInfer calls, so that a burst of new calls does not wait for
  // the next request to be posted.
  for (int i = 0; i < 4; ++i) UnaryCall<ModelInfer>::Await(s, q);
}

}  // namespace mm::grpc_internal
