// Inside the gRPC server (grpc_server.h), shared by its parts: the unary
// calls (unary_calls.cc), the ModelStreamInfer stream (stream_call.cc) and the
// server that owns the completion queues (grpc_server.cc). Not a door:
// nothing outside src/grpc includes it. The protocol logic itself is the rpc
// room's (rpc/rpc_methods.h), shared with the native transport.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>
#include <thread>

#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>

#include "core/infer_request.h"
#include "core/status.h"
#include "core/thread_annotations.h"
#include "grpc_service.grpc.pb.h"
#include "observability/request_observer.h"
#include "rpc/in_flight.h"
#include "service/inference_service.h"

namespace mm::grpc_internal {

// Every RPC runs on grpc++'s completion-queue API: `threads` queues, each
// polled by one thread that takes a call from arrival to answer in place.
// The callback API was measured first: its completion queue runs two extra
// polling threads ("nexting_thread"s) that compete for every socket event,
// 1.3 context switches per add_sub call; here there are ~0.02.
// GRPC_ARG_MINIMAL_STACK would save ~10% more CPU per call but drops the
// message-size and compression filters (tests catch both).
using AsyncService = inference::GRPCInferenceService::AsyncService;

inline grpc::Status ToGrpc(const Status& s) {
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

struct Shared {
  AsyncService grpc_service;
  InferenceService* service = nullptr;
  size_t stream_max_pending = 32;             // Options::stream_max_pending
  const RequestObserver* observer = nullptr;  // null: nothing observes requests
  // Operations that a thread other than a queue's own may still start on
  // that queue (an inference callback finishing its call): Stop() closes the
  // queues only once there are none.
  rpc::InFlightCalls in_flight;
};

inline int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The traceparent metadata of a call (empty: none), looked up only when
// `observer` traces: what rpc::Observe takes.
inline std::string_view TraceparentOf(const RequestObserver& observer,
                                      const grpc::ServerContext& ctx) {
  if (!observer.tracing()) return {};
  const auto& md = ctx.client_metadata();
  auto it = md.find("traceparent");
  if (it == md.end()) return {};
  return {it->second.data(), it->second.size()};
}

// The Authorization value a call carries ("authorization" metadata), if any.
inline std::string_view AuthorizationOf(const grpc::ServerContext& ctx) {
  const auto& md = ctx.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return {};
  return {it->second.data(), it->second.size()};
}

// Asks for one call of every unary method on `queue` (a few of ModelInfer).
void AwaitUnaryCalls(Shared* shared, Queue* queue);
// Asks for one ModelStreamInfer call on `queue`.
void AwaitStreamCall(Shared* shared, Queue* queue);

}  // namespace mm::grpc_internal
