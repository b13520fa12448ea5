// WorkerCallServer: the server's side of one worker's call socket (one per
// worker process: a restarted worker gets a new one). It serves what the
// worker asks (worker_calls_protocol.h) with the server's ModelHost for the
// model version (LoadSpec::host), and routes a decoupled model's Respond
// messages to the scheduler's ResponseSenders. Handlers run on the CallHub's
// thread (call_hub.h) and never block; BLS responses come back on any
// thread and are written back through the connection (which they hold
// weakly: once the worker is gone they do nothing).
//
// The worker is untrusted: every message is decoded strictly; more than
// kMaxCallsInFlight unanswered Infer calls, a Respond naming a token the
// server never issued, a malformed frame: the handler refuses, the hub cuts
// the connection, and `on_cut` hears why (the worker is then killed and
// restarts: its model alone notices). Metric ids are the worker's own: a
// worker may touch only metrics it created; they are released when the
// worker goes.
//
// Without a host (null: nothing hosts BLS calls or custom metrics), every
// call is answered UNAVAILABLE saying so.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/model_host.h"
#include "core/thread_annotations.h"
#include "isolation/call_hub.h"

namespace mm {

class WorkerCallServer final : public CallHandler,
                               public std::enable_shared_from_this<WorkerCallServer> {
 public:
  static constexpr size_t kMaxCallsInFlight = 256;

  // `label`: "model 'm' version 1"; `model`: the model's name (in errors).
  // `on_cut`: the connection ended other than by Shutdown (the worker closed
  // it, or broke the protocol): any thread, once.
  WorkerCallServer(std::string label, std::string model, std::shared_ptr<ModelHost> host,
                   std::function<void(const Status&)> on_cut);
  ~WorkerCallServer() override;

  // A call socket for a worker: a socketpair whose server end `hub` serves
  // with a new WorkerCallServer (the arguments as the constructor's), whose
  // worker end goes to the worker in a Calls frame (request `id`) on its
  // control socket; the caller reads the worker's reply.
  static StatusOr<std::shared_ptr<WorkerCallServer>> Open(
      CallHub& hub, int control_socket, uint32_t id, std::string label, std::string model,
      std::shared_ptr<ModelHost> host, std::function<void(const Status&)> on_cut);

  // The connection this serves (after CallHub::Add).
  void Attach(std::shared_ptr<CallConnection> connection) MM_EXCLUDES(mu_);

  Status OnFrame(const FrameHeader& header, std::shared_ptr<const std::string> payload) override
      MM_EXCLUDES(mu_);
  void OnClosed(const Status& why) override MM_EXCLUDES(mu_);

  // A decoupled batch: its senders, by index; the token its Execute names
  // (0 when the worker is gone: then the senders are left to the caller).
  uint64_t BeginDecoupled(std::span<const std::shared_ptr<ResponseSender>> senders)
      MM_EXCLUDES(mu_);
  // The batch's Execute failed (`why`, non-OK): its senders still open are
  // completed with it, and the worker's later Responds for it are dropped.
  void FailDecoupled(uint64_t token, const Status& why) MM_EXCLUDES(mu_);

  // The worker process exited (`why`: how). What it wrote before it died is
  // still read (its last responses reach their clients): once the socket's
  // end is reached, Shutdown(why) follows. Idempotent.
  void WorkerGone(const Status& why) MM_EXCLUDES(mu_);

  // The worker is gone (died, restarts, unloads): every open sender is
  // completed with `why`, the connection closed, the worker's metrics
  // released; calls in flight find the connection gone. Idempotent.
  void Shutdown(const Status& why) MM_EXCLUDES(mu_);

  // Unanswered Infer calls, open senders (tests).
  size_t calls_in_flight() const MM_EXCLUDES(mu_);
  size_t open_senders() const MM_EXCLUDES(mu_);

 private:
  Status OnInfer(uint32_t id, std::shared_ptr<const std::string> payload) MM_EXCLUDES(mu_);
  Status OnRespond(std::shared_ptr<const std::string> payload) MM_EXCLUDES(mu_);
  Status Reply(uint32_t id, const Status& status, std::string body) MM_EXCLUDES(mu_);
  void CallDone() MM_EXCLUDES(mu_);
  std::shared_ptr<CallConnection> connection() const MM_EXCLUDES(mu_);
  Status NoHost() const;

  const std::string label_;
  const std::string model_;
  const std::shared_ptr<ModelHost> host_;
  const std::function<void(const Status&)> on_cut_;

  mutable Mutex mu_;
  std::shared_ptr<CallConnection> connection_ MM_GUARDED_BY(mu_);
  bool shut_ MM_GUARDED_BY(mu_) = false;
  bool ended_ MM_GUARDED_BY(mu_) = false;          // the connection ended (OnClosed)
  std::optional<Status> gone_ MM_GUARDED_BY(mu_);  // WorkerGone's cause
  size_t calls_in_flight_ MM_GUARDED_BY(mu_) = 0;
  std::set<uint64_t> metrics_ MM_GUARDED_BY(mu_);
  struct Batch {
    std::vector<std::shared_ptr<ResponseSender>> senders;  // null once completed
    size_t open = 0;
  };
  uint64_t next_token_ MM_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, Batch> batches_ MM_GUARDED_BY(mu_);
  size_t open_senders_ MM_GUARDED_BY(mu_) = 0;
};

}  // namespace mm
