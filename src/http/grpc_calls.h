// The native transport's gRPC calls, above HTTP/2 (http2_session.cc
// carries them): a unary call's request message parsed into its type, run
// through the rpc room's methods (the same code the grpc++ transport runs,
// so answers are identical), and its answer as one length-prefixed message
// plus the status its trailers carry. Nothing here knows about frames or
// sockets, so a unit test drives a call with bytes.
//
// Lifetime: a GrpcUnaryCall belongs to its HTTP/2 stream and may go with it
// (a client's RST_STREAM) while its inference runs: what the inference needs
// (the request message its tensors view) is shared with it, never borrowed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/cancellation.h"
#include "core/delivery.h"
#include "core/status.h"
#include "observability/request_observer.h"
#include "rpc/grpc_codec.h"
#include "rpc/in_flight.h"
#include "rpc/rpc_methods.h"
#include "service/inference_service.h"

namespace mm {

// A call's answer: its status (the grpc-status and grpc-message trailers)
// and, when OK, the response as a length-prefixed message.
struct GrpcReply {
  Status status;
  std::string message;
  // A big ModelInfer answer's message, written where its tensors lie
  // instead (rpc/grpc_codec.h): `message` is then empty, and `owner` keeps
  // the tensors alive until written.
  std::optional<GrpcResponseParts> parts;
  std::shared_ptr<const void> owner;
  // What the receipt settles into (ModelInfer's call, which lends the
  // service a room for the request's bill): kept until the receipt is
  // settled. Declared before it, so that a reply destroyed unsettled lets
  // it go after the receipt (a move-assignment would not: none is made).
  std::shared_ptr<const void> keep;
  // An inference answer's (core/delivery.h): settled once `message` is
  // written, or not.
  DeliveryReceipt receipt;
};
using GrpcReplyCallback = std::function<void(GrpcReply)>;

// What every call of a server reaches the core through (not owned; they
// outlive the server's connections).
struct GrpcCallEnv {
  InferenceService* service = nullptr;
  const RequestObserver* observer = nullptr;  // null: nothing observes requests
  rpc::InFlightCalls* in_flight = nullptr;    // counts observed calls (rpc::Observe)
};

// One call's facts from its headers (for ModelInfer), and its caller.
struct GrpcCallMeta {
  std::string_view traceparent;                // (when the server traces)
  std::shared_ptr<Cancellation> cancellation;  // cancelled when the client goes away
  int64_t received_ns = 0;                     // steady clock: its HEADERS arrived
  // What `done` answers into (the connection): a call that answers later
  // keeps it until `done` has returned, so `done` may hold a plain pointer
  // to it (a callable std::function keeps in place, with no allocation).
  std::shared_ptr<void> caller;
};

// A ModelStreamInfer call's requests, one message at a time, each run as it
// comes and answered as it completes (Triton's stream conventions:
// rpc/stream_responses.h). The connection hands the messages over on its
// loop; answers come back through `sink`, from whichever thread has them.
//
// It is every request's ResponseStream (a decoupled model's responses
// before the last), so it is shared with the requests it ran and outlives
// its HTTP/2 stream when they do.
class GrpcStreamCall final : public ResponseStream,
                             public std::enable_shared_from_this<GrpcStreamCall> {
 public:
  // One message for the stream: a length-prefixed ModelStreamInferResponse,
  // unless `write` is false (a decoupled model's final flag alone, which
  // nobody asked to see). `completes`: it is its request's last (the
  // connection counts requests in flight); `receipt`: settled once written.
  struct Out {
    std::string message;
    DeliveryReceipt receipt;
    bool write = true;
    bool completes = true;
  };
  using Sink = std::function<void(Out)>;

  GrpcStreamCall(const GrpcCallEnv& env, std::string authorization, std::string traceparent,
                 Sink sink)
      : env_(env),
        authorization_(std::move(authorization)),
        traceparent_(std::move(traceparent)),
        sink_(std::move(sink)) {}

  // One request message (its bytes, which the request keeps: its tensors
  // view them), on the connection's loop (`memo`: its memory of keys). OK: it was handed on, and
  // its answer comes through the sink (completes = true) — a request that fails (does not decode,
  // an unknown model) is answered there too, as an error response. Not OK: the stream must end with
  // this status after the requests in flight are answered (the key was revoked by a tenants reload,
  // or the bytes are not a ModelInferRequest); nothing was handed on.
  Status OnMessage(std::string bytes, TenantRegistry::Memo* memo, int64_t received_ns);

  // The client went away: every request still queued or running is cancelled.
  void CancelAll();

  // ResponseStream: a decoupled request's response before its last.
  void Send(const InferRequest& request, StatusOr<std::unique_ptr<InferResponse>> r) override;

 private:
  const GrpcCallEnv env_;
  const std::string authorization_;
  const std::string traceparent_;
  const Sink sink_;
  // The requests' cancellations (expired ones pruned now and then); the loop only.
  std::vector<std::weak_ptr<Cancellation>> cancellations_;
};

class GrpcUnaryCall : public std::enable_shared_from_this<GrpcUnaryCall> {
 public:
  // The call of `method`; null for ModelStreamInfer (not unary). Shared:
  // ModelInfer's call may outlive its stream (a client's reset drops the
  // stream while the request runs), as it keeps itself until its reply,
  // and the reply's receipt, are gone (GrpcReply::keep).
  static std::shared_ptr<GrpcUnaryCall> Create(rpc::Method method);
  virtual ~GrpcUnaryCall() = default;

  // Takes the call's request message (its bytes, without the prefix):
  // INVALID_ARGUMENT when a second message comes or when the bytes are not
  // the method's request message.
  virtual Status Parse(std::string_view message) = 0;
  // The same, taking the bytes: ModelInfer keeps them, and its input
  // tensors view them where they lie (no copy of a big tensor).
  virtual Status ParseOwned(std::string message) { return Parse(message); }
  // Whether Parse has taken the message.
  bool parsed() const { return parsed_; }

  // Runs the call for `tenant` (null only for rpc::OpenToAnyone methods)
  // and answers through `done` exactly once: at once, or later from the
  // thread that finishes the work, holding meta.caller meanwhile. Call
  // once, after Parse.
  virtual void Run(const GrpcCallEnv& env, std::shared_ptr<const Tenant> tenant,
                   const GrpcCallMeta& meta, GrpcReplyCallback done) = 0;

 protected:
  bool parsed_ = false;
};

}  // namespace mm
