// The unary RPCs of the gRPC server: UnaryCall, one per call, and a handler
// per method that answers it through the rpc room's method (rpc/rpc_methods.h),
// which the native transport shares (grpc_call.h).
#include <functional>
#include <memory>
#include <type_traits>

#include "core/cancellation.h"
#include "core/delivery.h"
#include "grpc/grpc_call.h"
#include "rpc/grpc_codec.h"
#include "rpc/observe.h"
#include "rpc/rpc_methods.h"

namespace mm::grpc_internal {

namespace {

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
    // The health checks answer anyone (probes carry no key); every other
    // call authenticates first.
    if (!rpc::OpenToAnyone(Handler::kMethod)) {
      auto tenant = shared_->service->Authenticate(AuthorizationOf(ctx_));
      if (!tenant.ok()) return Finish(tenant.status());
      tenant_ = std::move(*tenant);
    }
    Handler::Run(shared_, this);
  }

  // Who asked (set before Run, except for the health checks: null then).
  const Tenant* tenant_or_null() const { return tenant_.get(); }
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

// A method's handler: its messages, the AsyncService call that asks for one,
// its rpc::Method, and Run, which answers it.
#define MM_UNARY_TRAITS(NAME)                                    \
  using Request = inference::NAME##Request;                      \
  using Response = inference::NAME##Response;                    \
  static constexpr auto kRequest = &AsyncService::Request##NAME; \
  static constexpr rpc::Method kMethod = rpc::Method::k##NAME
#define MM_UNARY(NAME)                                 \
  struct NAME {                                        \
    MM_UNARY_TRAITS(NAME);                             \
    static void Run(Shared* s, UnaryCall<NAME>* call); \
  }
// A method that answers at once: its rpc function, answered in place.
#define MM_UNARY_AT_ONCE(NAME)                                                                \
  struct NAME {                                                                               \
    MM_UNARY_TRAITS(NAME);                                                                    \
    static void Run(Shared* s, UnaryCall<NAME>* call) {                                       \
      call->Finish(                                                                           \
          rpc::NAME(*s->service, call->tenant_or_null(), call->request(), call->response())); \
    }                                                                                         \
  }

MM_UNARY_AT_ONCE(ServerLive);
MM_UNARY_AT_ONCE(ServerReady);
MM_UNARY_AT_ONCE(ModelReady);
MM_UNARY_AT_ONCE(ServerMetadata);
MM_UNARY_AT_ONCE(ModelMetadata);
MM_UNARY_AT_ONCE(ModelConfig);
MM_UNARY_AT_ONCE(ModelStatistics);
MM_UNARY_AT_ONCE(RepositoryIndex);
MM_UNARY_AT_ONCE(SystemSharedMemoryStatus);
MM_UNARY_AT_ONCE(SystemSharedMemoryRegister);
MM_UNARY_AT_ONCE(SystemSharedMemoryUnregister);
MM_UNARY_AT_ONCE(CudaSharedMemoryStatus);
MM_UNARY_AT_ONCE(CudaSharedMemoryRegister);
MM_UNARY_AT_ONCE(CudaSharedMemoryUnregister);
MM_UNARY_AT_ONCE(TraceSetting);
MM_UNARY_AT_ONCE(LogSettings);
MM_UNARY(RepositoryModelLoad);
MM_UNARY(RepositoryModelUnload);
MM_UNARY(ModelInfer);
#undef MM_UNARY_AT_ONCE
#undef MM_UNARY
#undef MM_UNARY_TRAITS

// Answers `call` from the thread that finishes a repository operation.
template <class Handler>
std::function<void(Status)> FinishLater(Shared* s, UnaryCall<Handler>* call) {
  rpc::InFlightCalls* in_flight = &s->in_flight;
  in_flight->Add();
  return [call, in_flight](Status status) {
    call->Finish(status);
    in_flight->Done();
  };
}

void RepositoryModelLoad::Run(Shared* s, UnaryCall<RepositoryModelLoad>* call) {
  rpc::RepositoryModelLoad(*s->service, call->tenant(), call->request(), FinishLater(s, call));
}

void RepositoryModelUnload::Run(Shared* s, UnaryCall<RepositoryModelUnload>* call) {
  rpc::RepositoryModelUnload(*s->service, call->tenant(), call->request(), FinishLater(s, call));
}

void ModelInfer::Run(Shared* s, UnaryCall<ModelInfer>* call) {
  const int64_t received_ns = SteadyNowNs();
  auto decoded = DecodeGrpcInferRequest(call->request());
  if (!decoded.ok()) return call->Finish(decoded.status());
  // The call (and the request message the tensors view into) lives until its
  // answer is sent. Its Finish may come from an execution thread: count it.
  rpc::InFlightCalls* in_flight = &s->in_flight;
  in_flight->Add();
  auto request = std::make_unique<InferRequest>(std::move(*decoded));
  request->cancellation = std::make_shared<Cancellation>();
  request->received_ns = received_ns;
  call->set_cancellation(request->cancellation);
  InferCallback done = [call, in_flight](StatusOr<std::unique_ptr<InferResponse>> r) {
    if (r.ok()) {
      EncodeGrpcInferResponse(**r, call->response());
      call->set_receipt(std::move((*r)->receipt));
      call->Finish(grpc::Status::OK);
    } else {
      call->Finish(r.status());
    }
    in_flight->Done();
  };
  if (s->observer != nullptr) {
    done = rpc::Observe(*s->observer, in_flight, TraceparentOf(*s->observer, call->context()),
                        call->tenant(), *request, received_ns, std::move(done));
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
