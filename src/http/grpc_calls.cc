#include "http/grpc_calls.h"

#include <google/protobuf/arena.h>

#include <climits>
#include <span>
#include <utility>

#include "http/grpc_framing.h"
#include "rpc/grpc_codec.h"
#include "rpc/infer_request_wire.h"
#include "rpc/observe.h"
#include "rpc/stream_responses.h"

namespace mm {

namespace {

using rpc::Method;

// `message` as one length-prefixed gRPC message. RESOURCE_EXHAUSTED for one
// protobuf cannot write (2 GiB and over).
template <class Message>
StatusOr<std::string> Frame(const Message& message) {
  const size_t size = message.ByteSizeLong();
  if (size > static_cast<size_t>(INT_MAX)) {
    return ResourceExhausted("the response is " + std::to_string(size) +
                             " bytes, over the 2 GiB a protobuf message can hold; ask for fewer "
                             "outputs or use shared memory for them");
  }
  std::string out;
  out.reserve(kGrpcPrefixBytes + size);
  AppendGrpcMessagePrefix(out, static_cast<uint32_t>(size));
  out.resize(kGrpcPrefixBytes + size);
  message.SerializeWithCachedSizesToArray(
      reinterpret_cast<uint8_t*>(out.data() + kGrpcPrefixBytes));
  return out;
}

template <class Message>
GrpcReply Answer(const Message& message) {
  GrpcReply reply;
  auto framed = Frame(message);
  if (framed.ok()) {
    reply.message = std::move(*framed);
  } else {
    reply.status = framed.status();
  }
  return reply;
}

template <class Request>
Status ParseInto(Request& request, std::string_view bytes, bool& parsed) {
  if (parsed) {
    return InvalidArgument(
        "a unary call carries exactly one request message; this one sent a second");
  }
  if (bytes.size() > static_cast<size_t>(INT_MAX) ||
      !request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return InvalidArgument("the request message is not a valid " + request.GetTypeName() +
                           " (protobuf); expected the message of the method the path names");
  }
  parsed = true;
  return OkStatus();
}

// The methods that answer at once (rpc_methods.h).
template <class Request, class Response,
          Status (*kRun)(InferenceService&, const Tenant*, const Request&, Response*)>
class SyncCall final : public GrpcUnaryCall {
 public:
  Status Parse(std::string_view message) override { return ParseInto(request_, message, parsed_); }
  void Run(const GrpcCallEnv& env, std::shared_ptr<const Tenant> tenant, const GrpcCallMeta&,
           GrpcReplyCallback done) override {
    Response response;
    if (Status s = kRun(*env.service, tenant.get(), request_, &response); !s.ok()) {
      GrpcReply reply;
      reply.status = std::move(s);
      return done(std::move(reply));
    }
    done(Answer(response));
  }

 private:
  Request request_;
};

// Repository load and unload: they answer from the thread that finishes them.
template <class Request, class Response,
          void (*kRun)(InferenceService&, const Tenant&, const Request&,
                       std::function<void(Status)>)>
class RepositoryCall final : public GrpcUnaryCall {
 public:
  Status Parse(std::string_view message) override { return ParseInto(request_, message, parsed_); }
  void Run(const GrpcCallEnv& env, std::shared_ptr<const Tenant> tenant, const GrpcCallMeta& meta,
           GrpcReplyCallback done) override {
    kRun(*env.service, *tenant, request_,
         [done = std::move(done), caller = meta.caller](Status status) {
           if (!status.ok()) {
             GrpcReply reply;
             reply.status = std::move(status);
             return done(std::move(reply));
           }
           done(Answer(Response()));
         });
  }

 private:
  Request request_;
};

// A message of type M in a protobuf arena whose first block is part of this
// object: a message of the usual size (a request's or an answer's tensor
// names, datatypes and shapes) then takes no allocation per field. Big
// (2 KiB): on the stack for an answer, inside InferMessage for a request.
template <class M>
class ArenaMessage {
 public:
  ArenaMessage() = default;
  ArenaMessage(const ArenaMessage&) = delete;
  ArenaMessage& operator=(const ArenaMessage&) = delete;

  M& get() { return message_; }
  const M& get() const { return message_; }

 private:
  static google::protobuf::ArenaOptions FirstBlock(std::span<char> first) {
    google::protobuf::ArenaOptions options;
    options.initial_block = first.data();
    options.initial_block_size = first.size();
    return options;
  }

  // In this order: the arena hands the block back (without freeing it) first.
  alignas(16) char block_[2048];
  google::protobuf::Arena arena_{FirstBlock(block_)};
  M& message_ = *google::protobuf::Arena::CreateMessage<M>(&arena_);
};

// A ModelInferRequest with the bytes it came in: its raw input contents are
// views into them (ParseModelInferRequestInPlace), and its input tensors
// too, so the inference shares it whole.
struct InferMessage {
  Status Parse(std::string bytes) {
    wire = std::move(bytes);
    return ParseModelInferRequestInPlace(wire, &msg.get(), &raw);
  }

  std::string wire;
  ArenaMessage<inference::ModelInferRequest> msg;
  std::vector<std::string_view> raw;
};

// From this many bytes of output tensors on, an answer is written where its
// tensors lie (GrpcResponseParts) instead of copied into one message: below
// it, the copy costs less than the pieces.
constexpr size_t kPartsFromBytes = 64 << 10;

size_t OutputBytes(const InferResponse& response) {
  size_t n = 0;
  for (const Tensor& t : response.outputs) n += t.data.size();
  return n;
}

// ModelInfer. The request message is shared with the inference (its input
// tensors are views into it). The call lends the service a room for the
// request's bill (InferenceService::CallRoom) and answers through a
// callback that is one pointer to it, so that neither allocates; it keeps
// itself alive while the request runs (self_), then hands that to its
// reply (GrpcReply::keep), which keeps it until the receipt that settles
// into its room is gone, even when its stream went first.
class InferCall final : public GrpcUnaryCall {
 public:
  Status Parse(std::string_view message) override { return ParseOwned(std::string(message)); }
  Status ParseOwned(std::string message) override {
    if (parsed_) {
      return InvalidArgument(
          "a unary call carries exactly one request message; this one sent a second");
    }
    MM_RETURN_IF_ERROR(request_->Parse(std::move(message)));
    parsed_ = true;
    return OkStatus();
  }

  void Run(const GrpcCallEnv& env, std::shared_ptr<const Tenant> tenant, const GrpcCallMeta& meta,
           GrpcReplyCallback done) override {
    auto decoded = DecodeGrpcInferRequest(request_->msg.get(), request_->raw);
    if (!decoded.ok()) {
      GrpcReply reply;
      reply.status = decoded.status();
      return done(std::move(reply));
    }
    auto request = std::make_unique<InferRequest>(std::move(*decoded));
    // The request holds the message now: it goes when the request does.
    request->body = std::move(request_);
    request->cancellation = meta.cancellation;
    request->received_ns = meta.received_ns;
    done_ = std::move(done);
    caller_ = meta.caller;
    self_ = shared_from_this();
    // One pointer: std::function keeps it in place.
    InferCallback answered = [this](StatusOr<std::unique_ptr<InferResponse>> r) {
      Answered(std::move(r));
    };
    if (env.observer != nullptr) {
      answered = rpc::Observe(*env.observer, env.in_flight, meta.traceparent, *tenant, *request,
                              meta.received_ns, std::move(answered));
    }
    env.service->Infer(*tenant, std::move(request), std::move(answered), &room_);
  }

 private:
  void Answered(StatusOr<std::unique_ptr<InferResponse>> r) {
    GrpcReply reply;
    reply.keep = std::move(self_);  // from here on the reply keeps this call
    GrpcReplyCallback done = std::move(done_);
    const std::shared_ptr<void> caller = std::move(caller_);  // until `done` returns
    if (!r.ok()) {
      reply.status = r.status();
      return done(std::move(reply));
    }
    // The receipt settles into this call's room: it goes with the reply that
    // keeps the call, whatever the encoding below does (left in the response,
    // it would settle after `done` may have let the call go).
    reply.receipt = std::move((*r)->receipt);
    if (OutputBytes(**r) >= kPartsFromBytes) {
      auto parts = EncodeGrpcInferResponseParts(**r);
      if (!parts.ok()) {
        reply.status = parts.status();
        return done(std::move(reply));
      }
      reply.parts = std::move(*parts);
      reply.owner = std::shared_ptr<const InferResponse>(std::move(*r));
      return done(std::move(reply));
    }
    ArenaMessage<inference::ModelInferResponse> response;
    EncodeGrpcInferResponse(**r, &response.get());
    if (auto framed = Frame(response.get()); framed.ok()) {
      reply.message = std::move(*framed);
    } else {
      reply.status = framed.status();
    }
    done(std::move(reply));
  }

  std::shared_ptr<InferMessage> request_ = std::make_shared<InferMessage>();
  // While the request runs: the session's callback, what it answers into,
  // and this call itself.
  GrpcReplyCallback done_;
  std::shared_ptr<void> caller_;
  std::shared_ptr<GrpcUnaryCall> self_;
  // Where the service keeps the request's bill until its receipt settles.
  InferenceService::CallRoom room_;
};

// A stream's message, length-prefixed; one protobuf cannot hold (2 GiB and
// over) is sent as the request's error instead.
std::string FrameStreamResponse(const inference::ModelStreamInferResponse& response,
                                std::string_view request_id) {
  auto framed = Frame(response);
  if (framed.ok()) return std::move(*framed);
  inference::ModelStreamInferResponse error;
  rpc::SetStreamError(framed.status(), request_id, &error);
  return std::move(*Frame(error));
}

#define MM_SYNC(NAME) SyncCall<inference::NAME##Request, inference::NAME##Response, &rpc::NAME>

}  // namespace

std::shared_ptr<GrpcUnaryCall> GrpcUnaryCall::Create(Method method) {
  switch (method) {
    case Method::kServerLive:
      return std::make_shared<MM_SYNC(ServerLive)>();
    case Method::kServerReady:
      return std::make_shared<MM_SYNC(ServerReady)>();
    case Method::kModelReady:
      return std::make_shared<MM_SYNC(ModelReady)>();
    case Method::kServerMetadata:
      return std::make_shared<MM_SYNC(ServerMetadata)>();
    case Method::kModelMetadata:
      return std::make_shared<MM_SYNC(ModelMetadata)>();
    case Method::kModelInfer:
      return std::make_shared<InferCall>();
    case Method::kModelStreamInfer:
      return nullptr;
    case Method::kModelConfig:
      return std::make_shared<MM_SYNC(ModelConfig)>();
    case Method::kModelStatistics:
      return std::make_shared<MM_SYNC(ModelStatistics)>();
    case Method::kRepositoryIndex:
      return std::make_shared<MM_SYNC(RepositoryIndex)>();
    case Method::kRepositoryModelLoad:
      return std::make_shared<
          RepositoryCall<inference::RepositoryModelLoadRequest,
                         inference::RepositoryModelLoadResponse, &rpc::RepositoryModelLoad>>();
    case Method::kRepositoryModelUnload:
      return std::make_shared<
          RepositoryCall<inference::RepositoryModelUnloadRequest,
                         inference::RepositoryModelUnloadResponse, &rpc::RepositoryModelUnload>>();
    case Method::kSystemSharedMemoryStatus:
      return std::make_shared<MM_SYNC(SystemSharedMemoryStatus)>();
    case Method::kSystemSharedMemoryRegister:
      return std::make_shared<MM_SYNC(SystemSharedMemoryRegister)>();
    case Method::kSystemSharedMemoryUnregister:
      return std::make_shared<MM_SYNC(SystemSharedMemoryUnregister)>();
    case Method::kCudaSharedMemoryStatus:
      return std::make_shared<MM_SYNC(CudaSharedMemoryStatus)>();
    case Method::kCudaSharedMemoryRegister:
      return std::make_shared<MM_SYNC(CudaSharedMemoryRegister)>();
    case Method::kCudaSharedMemoryUnregister:
      return std::make_shared<MM_SYNC(CudaSharedMemoryUnregister)>();
    case Method::kTraceSetting:
      return std::make_shared<MM_SYNC(TraceSetting)>();
    case Method::kLogSettings:
      return std::make_shared<MM_SYNC(LogSettings)>();
  }
  return nullptr;
}

#undef MM_SYNC

Status GrpcStreamCall::OnMessage(std::string bytes, TenantRegistry::Memo* memo,
                                 int64_t received_ns) {
  auto parsed = std::make_shared<InferMessage>();
  MM_RETURN_IF_ERROR(parsed->Parse(std::move(bytes)));
  // (Aliases the parsed message: it keeps the bytes its tensors view.)
  std::shared_ptr<const inference::ModelInferRequest> message(parsed, &parsed->msg.get());
  // The tenants in force now (a reload may have changed or revoked the key).
  auto tenant = env_.service->Authenticate(authorization_, memo);
  if (!tenant.ok()) {
    return Status(StatusCode::kUnauthenticated,
                  tenant.status().message() +
                      " (the key was revoked by a reload of the tenants file while this "
                      "stream was open; open a new stream with a valid key)");
  }
  auto decoded = DecodeGrpcInferRequest(parsed->msg.get(), parsed->raw);
  if (!decoded.ok()) {
    Out out;
    inference::ModelStreamInferResponse response;
    out.write = rpc::StreamAnswer(message->id(), decoded.status(), nullptr,
                                  rpc::EmptyFinalWanted(*message), &response);
    if (out.write) out.message = FrameStreamResponse(response, message->id());
    sink_(std::move(out));
    return OkStatus();
  }
  auto request = std::make_unique<InferRequest>(std::move(*decoded));
  request->body = message;
  request->cancellation = std::make_shared<Cancellation>();
  request->received_ns = received_ns;
  request->stream = shared_from_this();
  if (cancellations_.size() >= 64) {
    std::erase_if(cancellations_, [](const auto& c) { return c.expired(); });
  }
  cancellations_.push_back(request->cancellation);
  InferCallback done = [self = shared_from_this(),
                        message](StatusOr<std::unique_ptr<InferResponse>> r) {
    Out out;
    ArenaMessage<inference::ModelStreamInferResponse> answer;
    auto& response = answer.get();
    const Status status = r.ok() ? OkStatus() : r.status();
    out.write = rpc::StreamAnswer(message->id(), status, r.ok() ? r->get() : nullptr,
                                  rpc::EmptyFinalWanted(*message), &response);
    if (r.ok()) out.receipt = std::move((*r)->receipt);
    if (out.write) {
      out.message = FrameStreamResponse(response, message->id());
    } else {
      out.receipt.Settle(true);  // nothing to deliver
    }
    self->sink_(std::move(out));
  };
  if (env_.observer != nullptr) {
    done = rpc::Observe(*env_.observer, env_.in_flight, traceparent_, **tenant, *request,
                        received_ns, std::move(done));
  }
  env_.service->Infer(**tenant, std::move(request), std::move(done));
  return OkStatus();
}

void GrpcStreamCall::CancelAll() {
  auto live = std::move(cancellations_);
  cancellations_.clear();
  for (auto& weak : live) {
    if (auto c = weak.lock()) c->Cancel();
  }
}

void GrpcStreamCall::Send(const InferRequest& request, StatusOr<std::unique_ptr<InferResponse>> r) {
  ArenaMessage<inference::ModelStreamInferResponse> answer;
  auto& response = answer.get();
  rpc::StreamPartial(request, r, &response);
  Out out;
  out.completes = false;
  out.message = FrameStreamResponse(response, request.id);
  sink_(std::move(out));
}

}  // namespace mm
