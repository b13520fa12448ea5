#include "grpc/grpc_server.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <type_traits>
#include <vector>

#include <absl/synchronization/mutex.h>
#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "core/cancellation.h"
#include "core/delivery.h"
#include "grpc/grpc_codec.h"
#include "grpc/grpc_flags.h"
#include "grpc_service.grpc.pb.h"

namespace mm {

namespace {

// Every RPC runs on grpc++'s completion-queue API: `threads` queues, each
// polled by one thread that takes a call from arrival to answer in place.
// The callback API was measured first: its completion queue runs two extra
// polling threads ("nexting_thread"s) that compete for every socket event,
// 1.3 context switches per add_sub call; here there are ~0.02.
// GRPC_ARG_MINIMAL_STACK would save ~10% more CPU per call but drops the
// message-size and compression filters (tests catch both).
using AsyncService = inference::GRPCInferenceService::AsyncService;

grpc::Status ToGrpc(const Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(GrpcCodeFor(s.code())), s.message());
}

// What comes out of a completion queue: every pending operation's tag is a Tag.
class Tag {
 public:
  virtual void Proceed(bool ok) = 0;

 protected:
  ~Tag() = default;
};

// One completion queue and the thread that polls it. Only that thread asks
// for new calls and shuts the queue down (when `close_alarm` fires), so no
// lock orders the two.
struct Queue {
  std::unique_ptr<grpc::ServerCompletionQueue> cq;
  std::thread thread;
  grpc::Alarm close_alarm;
  bool closing = false;  // the queue's thread only
};

// Counts operations that a thread other than a queue's own may still start
// on that queue (an inference callback finishing its call), so that Stop()
// closes the queues only once there are none. Lock-free per call.
class Pending {
 public:
  void Add() { count_.fetch_add(1, std::memory_order_relaxed); }
  void Done() {
    if (count_.fetch_sub(1, std::memory_order_acq_rel) == 1 &&
        stopping_.load(std::memory_order_seq_cst)) {
      std::lock_guard<std::mutex> lock(mu_);
      cv_.notify_all();
    }
  }
  void WaitIdle() {
    stopping_.store(true, std::memory_order_seq_cst);
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return count_.load(std::memory_order_acquire) == 0; });
  }

 private:
  std::atomic<size_t> count_{0};
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;
};

struct Shared {
  AsyncService grpc_service;
  InferenceService* service = nullptr;
  size_t stream_max_pending = 32;             // Options::stream_max_pending
  const RequestObserver* observer = nullptr;  // null: nothing observes requests
  Pending pending;
};

int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// `done` wrapped so that its request is traced and logged (RequestObserver):
// the record is made before `done` encodes and sends the answer, and handed
// over after. It counts in `pending` until then, so that the server does not
// stop (and the observer go) in between. A request that is neither traced
// nor logged keeps `done` as it is.
InferCallback Observe(const RequestObserver* observer, Pending* pending,
                      const grpc::ServerContext& ctx, const Tenant& tenant,
                      const InferRequest& request, int64_t received_ns, InferCallback done) {
  std::string_view traceparent;
  if (observer->tracing()) {
    const auto& md = ctx.client_metadata();
    if (auto it = md.find("traceparent"); it != md.end()) {
      traceparent = {it->second.data(), it->second.size()};
    }
  }
  const RequestObserver::Trace trace = observer->Begin(traceparent);
  if (!observer->Wants(trace)) return done;
  auto seen =
      std::make_shared<ObservedRequest>(*observer, "grpc", trace, tenant.id, request, received_ns);
  pending->Add();
  return [seen, pending, done = std::move(done)](StatusOr<std::unique_ptr<InferResponse>> r) {
    seen->Answered(r);
    done(std::move(r));
    seen->Encoded();
    pending->Done();
  };
}

// The Authorization value a call carries ("authorization" metadata), if any.
std::string_view AuthorizationOf(const grpc::ServerContext& ctx) {
  const auto& md = ctx.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return {};
  return {it->second.data(), it->second.size()};
}

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
    is->mutable_cache_hit();
    is->mutable_cache_miss();
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

// ModelStreamInfer: requests are read one after another and run concurrently;
// each response (or error, with the request's id) is written as it completes.
// A failing request never ends the stream; the stream ends once the client has
// half-closed and every response is written. grpc allows one read and one
// write in flight: reads start on the queue's thread (or where a write's
// completion makes room), writes from whichever thread completes a request,
// both ordered by mu_. A stream its client cancels cancels its requests still
// queued (the done tag, as UnaryCall's). It deletes itself after both its
// Finish and its done tag came back.
//
// Backpressure: a stream holds at most `stream_max_pending` requests read but
// not yet answered plus responses answered but not yet written. At that bound
// it stops reading (HTTP/2 flow control then stops the client) until a write
// completes, so a client that sends and never reads costs a bounded amount of
// memory, and each response holds its tenant's concurrency slot until it is
// written (DeliveryReceipt), so quotas count unsent work too.
//
// Policy: every request read is authenticated again, cheaply (a
// TenantRegistry::Memo: one atomic load while the tenants file is unchanged),
// so a reload's quotas and namespaces apply to open streams. A reload that
// revoked the stream's key ends the stream: the requests already accepted are
// answered, then it finishes with UNAUTHENTICATED (tritonclient's stream
// callback gets that error), and nothing more is read.
class StreamCall {
 public:
  static void Await(Shared* shared, Queue* queue) {
    if (queue->closing) return;
    auto* call = new StreamCall(shared, queue);
    call->ctx_.AsyncNotifyWhenDone(&call->done_);  // (only for a call that starts)
    shared->grpc_service.RequestModelStreamInfer(&call->ctx_, &call->stream_, queue->cq.get(),
                                                 queue->cq.get(), &call->arrived_);
  }

 private:
  // Each kind of operation has its own tag, so a completion says which it was.
  class Op final : public Tag {
   public:
    using Fn = void (StreamCall::*)(bool);
    Op(StreamCall* call, Fn fn) : call_(call), fn_(fn) {}
    void Proceed(bool ok) override { (call_->*fn_)(ok); }

   private:
    StreamCall* const call_;
    const Fn fn_;
  };

  // A response waiting to be written, and what its delivery settles.
  struct Outgoing {
    inference::ModelStreamInferResponse message;
    DeliveryReceipt receipt;
  };

  StreamCall(Shared* shared, Queue* queue)
      : shared_(shared),
        queue_(queue),
        max_pending_(std::max<size_t>(1, shared->stream_max_pending)) {}

  void OnArrived(bool ok) {
    if (!ok) {
      delete this;
      return;
    }
    Await(shared_, queue_);
    authorization_ = AuthorizationOf(ctx_);  // the metadata lives as long as ctx_
    auto tenant = shared_->service->Authenticate(authorization_, &memo_);
    if (!tenant.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      finished_ = true;
      stream_.Finish(ToGrpc(tenant.status()), &finished_op_);
      return;
    }
    stream_.Read(&request_, &read_);
  }

  void OnRead(bool ok) {
    if (!ok) {
      std::lock_guard<std::mutex> lock(mu_);
      reads_done_ = true;
      MaybeFinish();
      return;
    }
    // The decoded request views into its message: keep the message alive with it.
    auto message = std::make_shared<inference::ModelInferRequest>(std::move(request_));
    request_.Clear();
    // The tenants in force now (a reload may have changed or revoked the key).
    auto tenant = shared_->service->Authenticate(authorization_, &memo_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!tenant.ok()) {
        // Revoked: answer what was accepted, then end the stream with the reason.
        reads_done_ = true;
        end_status_ = grpc::Status(
            grpc::StatusCode::UNAUTHENTICATED,
            tenant.status().message() +
                " (the key was revoked by a reload of the tenants file while this stream was "
                "open; open a new stream with a valid key)");
        MaybeFinish();
        return;
      }
      if (write_failed_) {  // nobody to answer: read on until the stream reports its end
        stream_.Read(&request_, &read_);
        return;
      }
      ++in_flight_;
    }
    const int64_t received_ns = SteadyNowNs();
    auto decoded = DecodeGrpcInferRequest(*message);
    if (!decoded.ok()) {
      Complete(message->id(), decoded.status(), nullptr);
    } else {
      auto request = std::make_unique<InferRequest>(std::move(*decoded));
      request->body = message;
      request->cancellation = std::make_shared<Cancellation>();
      request->received_ns = received_ns;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (cancellations_.size() >= 64) {
          std::erase_if(cancellations_, [](const auto& c) { return c.expired(); });
        }
        cancellations_.push_back(request->cancellation);
      }
      Pending* pending = &shared_->pending;
      pending->Add();
      InferCallback done = [this, pending, message](StatusOr<std::unique_ptr<InferResponse>> r) {
        if (r.ok()) {
          Complete(message->id(), OkStatus(), r->get());
        } else {
          Complete(message->id(), r.status(), nullptr);
        }
        pending->Done();
      };
      if (shared_->observer != nullptr) {
        done = Observe(shared_->observer, pending, ctx_, **tenant, *request, received_ns,
                       std::move(done));
      }
      shared_->service->Infer(**tenant, std::move(request), std::move(done));
    }
    std::lock_guard<std::mutex> lock(mu_);
    read_paused_ = true;
    MaybeResumeReading();
  }

  void OnWritten(bool ok) {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (!ok) {
      // The client went away: drop what is queued (undelivered: not billed,
      // slots freed); finish when nothing runs and the reads have ended.
      write_failed_ = true;
      outgoing_.clear();
    } else {
      outgoing_.front().receipt.Settle(true);
      outgoing_.pop_front();
    }
    WriteNext();
    MaybeResumeReading();
    MaybeFinish();
  }

  void OnFinished(bool) {
    // Finish was started under mu_, maybe on another thread: wait until it is released.
    { std::lock_guard<std::mutex> lock(mu_); }
    Release();
  }

  // The stream is over; if its client cancelled it, so are its queued requests.
  void OnDone(bool) {
    if (ctx_.IsCancelled()) {
      std::vector<std::shared_ptr<Cancellation>> live;
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (auto& weak : cancellations_) {
          if (auto c = weak.lock()) live.push_back(std::move(c));
        }
        cancellations_.clear();
      }
      for (auto& c : live) c->Cancel();  // answered through Complete, outside mu_
    }
    Release();
  }

  // Finish and done tags both come out of this call's queue: one thread counts.
  void Release() {
    if (--events_left_ == 0) delete this;
  }

  // `response`: null for an error; its receipt is settled when it is written.
  void Complete(const std::string& id, const Status& status, InferResponse* response) {
    Outgoing out;
    if (status.ok()) {
      EncodeGrpcInferResponse(*response, out.message.mutable_infer_response());
      out.receipt = std::move(response->receipt);
    } else {
      out.message.set_error_message(status.message());
      out.message.mutable_infer_response()->set_id(id);
    }
    std::lock_guard<std::mutex> lock(mu_);
    --in_flight_;
    if (!write_failed_) outgoing_.push_back(std::move(out));  // (else settled undelivered)
    WriteNext();
    MaybeResumeReading();
    MaybeFinish();
  }

  // Requires mu_.
  void WriteNext() {
    if (writing_ || outgoing_.empty()) return;
    writing_ = true;
    stream_.Write(outgoing_.front().message, &written_);
  }

  // Requires mu_. Starts the next read if reading paused at the bound and
  // there is room again (or the stream is broken, so the read reports its end).
  void MaybeResumeReading() {
    if (!read_paused_ || reads_done_) return;
    if (!write_failed_ && in_flight_ + outgoing_.size() >= max_pending_) return;
    read_paused_ = false;
    stream_.Read(&request_, &read_);
  }

  // Requires mu_.
  void MaybeFinish() {
    if (finished_ || !reads_done_ || in_flight_ > 0 || writing_ || !outgoing_.empty()) {
      return;
    }
    finished_ = true;
    stream_.Finish(end_status_, &finished_op_);
  }

  Shared* const shared_;
  Queue* const queue_;
  const size_t max_pending_;
  grpc::ServerContext ctx_;
  grpc::ServerAsyncReaderWriter<inference::ModelStreamInferResponse, inference::ModelInferRequest>
      stream_{&ctx_};
  Op arrived_{this, &StreamCall::OnArrived};
  Op read_{this, &StreamCall::OnRead};
  Op written_{this, &StreamCall::OnWritten};
  Op finished_op_{this, &StreamCall::OnFinished};
  Op done_{this, &StreamCall::OnDone};
  // The read in flight: written by grpc, then taken by OnRead before the next
  // read starts (one read at a time: read_paused_ and reads_done_ say when none is).
  inference::ModelInferRequest request_;
  std::string_view authorization_;  // the stream's Authorization metadata (in ctx_)
  TenantRegistry::Memo memo_;       // whom it named, as of which tenants file; OnRead only
  int events_left_ = 2;             // Finish and done, after arrival; the queue's thread only

  std::mutex mu_;
  // Answered, not yet written; the front is being written while writing_.
  std::deque<Outgoing> outgoing_;  // guarded by mu_
  size_t in_flight_ = 0;           // guarded by mu_; read, handed on, not answered
  bool writing_ = false;           // guarded by mu_
  bool read_paused_ = false;       // guarded by mu_; no read outstanding: at the bound
  bool reads_done_ = false;        // guarded by mu_; no more reads (half-closed or revoked)
  bool write_failed_ = false;      // guarded by mu_
  bool finished_ = false;          // guarded by mu_
  grpc::Status end_status_;        // guarded by mu_; what Finish reports (OK unless revoked)
  // The requests' cancellations (expired ones pruned now and then).
  std::vector<std::weak_ptr<Cancellation>> cancellations_;  // guarded by mu_
};

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
  StreamCall::Await(s, q);
  // A few ModelInfer calls, so that a burst of new calls does not wait for
  // the next request to be posted.
  for (int i = 0; i < 4; ++i) UnaryCall<ModelInfer>::Await(s, q);
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
  impl_->shared.pending.WaitIdle();
  for (size_t i = 0; i < impl_->queues.size(); ++i) {
    impl_->queues[i]->close_alarm.Set(impl_->queues[i]->cq.get(), gpr_now(GPR_CLOCK_MONOTONIC),
                                      impl_->close_tags[i].get());
  }
  for (auto& q : impl_->queues) q->thread.join();
}

uint16_t GrpcServer::port() const { return static_cast<uint16_t>(impl_->port); }

}  // namespace mm
