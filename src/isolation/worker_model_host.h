// WorkerModelHost: the ModelHost (backends/model_host.h) a worker process
// gives its model: every call goes over the worker's call socket
// (worker_calls_protocol.h) to the server, which serves it with its own
// ModelHost for that model version. It also carries a decoupled model's
// responses (Respond) and asks whether their clients are still there
// (IsCancelled).
//
// A reader thread (mm-calls) reads what the server sends and dispatches it
// by call id: a CallReply wakes the caller waiting for it (ModelReady,
// CreateMetric, MetricValue block until it comes), each InferResponse goes to
// its Infer's callback (on the reader thread, so a callback must not block
// on another call's answer). Writes from any
// thread are serialized (one frame at a time, whole).
//
// Bounds: at most kMaxCallsInFlight calls waiting for an answer (more are
// refused RESOURCE_EXHAUSTED here: the server cuts off a worker that goes
// past it). A metric update is checked here (a known id, an op its kind
// takes, no negative increment of a counter): it has no reply.
//
// When the server goes away (the socket closes, or says something
// malformed) every call waiting fails UNAVAILABLE, and so does every later
// one; a decoupled model's Respond too.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <variant>

#include "backends/model_host.h"
#include "core/thread_annotations.h"
#include "isolation/worker_calls_protocol.h"
#include "isolation/worker_channel.h"

namespace mm {

class WorkerModelHost final : public ModelHost {
 public:
  static constexpr size_t kMaxCallsInFlight = 256;

  // Serves `socket` (the worker's end of the call socket, blocking) from
  // now on; `label` names the model in errors ("model 'm'").
  WorkerModelHost(OwnedFd socket, std::string label);
  // Close(), then waits for the reader thread.
  ~WorkerModelHost() override;

  void Infer(std::unique_ptr<InferRequest> request, HostInferCallback on_response) override
      MM_EXCLUDES(mu_);
  bool ModelReady(std::string_view name, std::string_view version) override MM_EXCLUDES(mu_);
  StatusOr<uint64_t> CreateMetric(const MetricSpec& spec) override MM_EXCLUDES(mu_);
  Status UpdateMetric(uint64_t id, MetricOp op, double value) override MM_EXCLUDES(mu_);
  StatusOr<double> MetricValue(uint64_t id) override MM_EXCLUDES(mu_);
  void ReleaseMetric(uint64_t id) override MM_EXCLUDES(mu_);

  // One decoupled response of request `index` of the Execute whose token is
  // `token` (ResponseSender::Send's arguments). UNAVAILABLE when the server
  // is gone; INVALID_ARGUMENT (nothing sent) for a response the channel
  // cannot carry (its error says why: the caller may send that error instead).
  Status Respond(uint64_t token, uint32_t index, bool final,
                 const StatusOr<std::unique_ptr<InferResponse>>& response) MM_EXCLUDES(mu_);

  // Whether the client of request `index` of the Execute with `token` went
  // away (asks the server: a round trip). False when the server is gone.
  bool IsCancelled(uint64_t token, uint32_t index) MM_EXCLUDES(mu_);

  // Stops: the socket is shut down, every call waiting fails UNAVAILABLE.
  void Close() MM_EXCLUDES(mu_);

 private:
  using Waiter = std::shared_ptr<std::promise<CallReply>>;
  using Pending = std::variant<Waiter, HostInferCallback>;

  void ReadLoop();
  // Dispatches one frame from the server; non-OK: the server broke the protocol.
  Status Dispatch(WorkerFrame frame) MM_EXCLUDES(mu_);
  // Sends a frame (whole, serialized with other writers).
  Status Write(WorkerMessageType type, uint32_t id, const WireParts& parts) MM_EXCLUDES(write_mu_);
  // Registers a pending call; its id, or the reason it cannot be made.
  StatusOr<uint32_t> Begin(Pending pending) MM_EXCLUDES(mu_);
  // Takes the pending call `id` out (nullopt: none such).
  std::optional<Pending> Take(uint32_t id, bool final) MM_EXCLUDES(mu_);
  // A synchronous call: sends, waits for its CallReply; the reply's body.
  StatusOr<std::string> Call(WorkerMessageType type, std::string payload) MM_EXCLUDES(mu_);
  // Fails everything pending with `why` and refuses what comes after.
  void Fail(const Status& why) MM_EXCLUDES(mu_);
  Status Gone() const MM_EXCLUDES(mu_);
  Status GoneLocked() const MM_REQUIRES(mu_);

  const OwnedFd socket_;
  const std::string label_;

  Mutex write_mu_ MM_ACQUIRED_AFTER(mu_);

  mutable Mutex mu_;
  bool closed_ MM_GUARDED_BY(mu_) = false;
  std::string closed_why_ MM_GUARDED_BY(mu_);
  uint32_t next_id_ MM_GUARDED_BY(mu_) = 0;
  std::map<uint32_t, Pending> pending_ MM_GUARDED_BY(mu_);
  std::map<uint64_t, MetricKind> metrics_ MM_GUARDED_BY(mu_);  // created, not released

  std::thread reader_;
};

}  // namespace mm
