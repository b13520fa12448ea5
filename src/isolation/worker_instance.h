// The per-worker half of ProcessBackend (process_backend.h): one model
// instance served by one worker process, which it starts, feeds batches
// through shared memory, watches and restarts. ProcessBackend::Load makes one
// per instance of a model version; nothing outside src/isolation/ includes
// this header.
//
// Lifetime: a WorkerInstance is created down, Start() brings its worker up
// (blocking for the model's load), and destroying it ends the worker for good
// (waiting for a batch in flight). Restarts after a crash happen on the
// supervisor's threads and never outlive the instance.
//
// Thread-safety: Start is called once, before the instance is shared;
// Execute follows backend.h (one at a time per instance); ResidentBytes may
// run on any thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "core/thread_annotations.h"
#include "isolation/call_hub.h"
#include "isolation/mailbox.h"
#include "isolation/memory_limit.h"
#include "isolation/worker_protocol.h"

namespace mm {

class WorkerSupervisor;

namespace isolation_internal {

// What every worker of one model version is started with (shared, constant).
struct WorkerSettings {
  std::string label;  // "model 'm' version 1"
  std::vector<std::string> argv;
  LoadRequest load;  // memory_limit_bytes set only for RLIMIT_AS
  uint64_t memory_limit = 0;
  MemoryLimitKind limit_kind = MemoryLimitKind::kResidentWatchdog;
  std::chrono::milliseconds execution_timeout{0};
  std::chrono::milliseconds start_timeout{60000};
  std::chrono::milliseconds backoff{1000};
  std::chrono::milliseconds max_backoff{30000};
  uint64_t initial_region_bytes = 1u << 20;
  uint64_t mailbox_bytes = Mailbox::kDefaultBytes;
  int load_nice = 10;
  int serve_nice = 5;
  // The call channel (v4): the hub that serves every worker's call socket,
  // and the server's ModelHost for the model version (LoadSpec::host; null:
  // calls are answered UNAVAILABLE). Without a hub no call socket is made.
  std::shared_ptr<CallHub> hub;
  std::shared_ptr<ModelHost> host;
};

// The instances of one model version: their health, summed for on_health
// (a non-OK status as each goes down, OK once all are up again).
class WorkerGroup {
 public:
  WorkerGroup(size_t instances, std::function<void(const Status&)> on_health)
      : down_(instances, false), on_health_(std::move(on_health)) {}

  void Down(size_t index, const std::string& reason) MM_EXCLUDES(mu_);
  void Up(size_t index) MM_EXCLUDES(mu_);

 private:
  Mutex mu_;
  std::vector<bool> down_ MM_GUARDED_BY(mu_);
  const std::function<void(const Status&)> on_health_;
};

class WorkerCore;

class WorkerInstance final : public ModelInstance {
 public:
  // Instance `index` of the group; down until Start.
  WorkerInstance(std::shared_ptr<WorkerSupervisor> supervisor, std::shared_ptr<WorkerGroup> group,
                 std::shared_ptr<const WorkerSettings> settings, size_t index);
  // Ends the worker for good (after a batch in flight); nothing restarts.
  ~WorkerInstance() override;

  // Starts the worker and loads the model in it; the worker's LoadReply (the
  // model's complete config, serialized, and its batch_as_list). Blocks for the load; a failure
  // names the cause (the start timeout, the worker's death, its load error).
  StatusOr<LoadReply> Start();
  // A list of one request.
  Status Execute(const InferRequest& request, InferResponse& response) override;
  // All the requests' inputs written into one region, one Execute message,
  // a result per request (one request's error fails it alone).
  Status ExecuteList(std::span<const InferRequest* const> requests,
                     std::span<InferResponse* const> responses, std::span<Status> results) override;
  // A decoupled model's batch: the Execute names a token, the worker answers
  // each request with Respond messages on its call socket, routed to the
  // senders; the call returns when the model's execute returned. Senders
  // still open when the worker dies, restarts or unloads complete
  // UNAVAILABLE naming the cause.
  Status ExecuteDecoupled(std::span<const std::shared_ptr<ResponseSender>> senders) override;
  // The worker's resident memory now (0 while it is down).
  uint64_t ResidentBytes();

 private:
  const std::shared_ptr<WorkerCore> core_;
};

}  // namespace isolation_internal
}  // namespace mm
