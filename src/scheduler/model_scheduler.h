// Per-model scheduler: requests wait in a ModelQueue (priority levels, queue
// policies, timeouts), the dynamic batcher forms batches from its head, and
// each batch runs on one of the model's instances (instance_group count), on
// an execution slot of the server's shared ExecutionSlots. The model asks for
// a slot whenever it has a batch to run and an idle instance; which model gets
// a free slot is the slots' weighted fair share (tenant, then model), so a
// flooded model cannot starve the others. Each slot runs one batch and is
// given back: a model never holds a thread between batches.
//
// Inline fast path: when the model's queue is empty, an instance is idle, a
// slot is idle with no model waiting for one, the request is small
// (inline_max_input_bytes), the model does not batch, and its recent
// executions took at most inline_max_ns on average, Enqueue executes the
// request on the calling thread instead of handing it to a slot thread. For
// tiny models the two thread hops cost far more than the model (see
// docs/benchmarks.md); the caller's thread is held no longer than about that
// bound.
//
// Decoupled and asynchronous models (Config::decoupled, Config::asynchronous;
// decoupled.cc): each execution hands
// its requests to ModelInstance::ExecuteDecoupled with a ResponseSender each;
// the instance is idle again once that call returns, while its requests stay
// in flight (counted as executing, so a drain waits for them) until their
// final response. Non-final responses go to the request's ResponseStream;
// `done` is the final. They never run inline. Statistics: an execution is
// counted when ExecuteDecoupled returns (its duration is the execution's
// infer time); a request's success/failure, queue time and compute time
// (from its execution's start to its final) when it completes.
//
// Lifetime: create with Create(); the scheduler keeps the model's instances.
// A slot request holds a shared_ptr to it, so it outlives every request that
// waits for a slot. Thread-safety: Enqueue may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "backends/backend.h"
#include "core/infer_request.h"
#include "core/thread_annotations.h"
#include "observability/model_stats.h"
#include "scheduler/clock.h"
#include "scheduler/execution_slots.h"
#include "scheduler/model_queue.h"
#include "scheduler/timer.h"

namespace mm {

class SequenceBatcher;
struct SequenceConfig;

struct ModelSchedulerOptions {
  // Largest average execution time (ns) for which a request may run inline on
  // the caller's thread; 0 disables the fast path.
  int64_t inline_max_ns = 0;
  // Largest request (sum of input bytes) that may run inline: the model's
  // average says little about a request far larger than usual.
  size_t inline_max_input_bytes = 64 << 10;
  // Where time comes from (default: SteadyClock) and what answers a request
  // at its queue deadline (default none: an expired request is then answered
  // when the queue next moves, still never executed).
  const Clock* clock = nullptr;
  Timer* timer = nullptr;
};

// Dynamic batching (Triton's dynamic_batching): requests that can share a
// batch (same inputs, dtypes and dims after the batch dimension) are
// concatenated along dim 0 into one execution of up to max_batch_size rows,
// preferring a preferred_batch_size that the queue can fill exactly, and
// waiting at most max_queue_delay for more requests when neither a preferred
// size nor the maximum is reached. Requests are taken in queue order; the
// first one that cannot join ends the batch.
//
// preserve_ordering: responses are answered in the order their requests were
// queued, whichever instance finishes first (a response that is ready early
// waits for those before it); refusals and timeouts take their turn too.
struct BatchingConfig {
  bool enabled = false;
  int64_t max_batch_size = 0;
  std::vector<int64_t> preferred;  // ascending
  int64_t max_delay_ns = 0;
  bool preserve_ordering = false;
  static BatchingConfig FromModelConfig(const inference::ModelConfig& config);
};

// What the scheduler takes from the model's config.pbtxt.
struct ModelSchedulerConfig {
  std::string model_name;  // for messages and the fair share
  // The fair share's tenant (mmserve.tenant; empty: the shared tenant
  // kSharedTenant) and the model's weight within it (mmserve.weight; unset: 1).
  std::string tenant;
  double weight = 1;
  QueueConfig queue;
  BatchingConfig batching;
  // Whether requests may run inline at all (LoadedModel::inline_safe): false
  // for a model whose execution time is not bounded by its request's size.
  bool inline_safe = false;
  // config.model_transaction_policy.decoupled: run through ExecuteDecoupled.
  bool decoupled = false;
  // LoadedModel::asynchronous: run through ExecuteDecoupled although the
  // model answers one response per request (an ensemble). The final
  // response's timing is the instance's (the sums of its steps'), plus the
  // time the request waited in this queue. With inline_safe, a request that
  // finds the queue empty and an instance free starts on the caller's thread
  // without an execution slot: its execution only starts other work.
  bool asynchronous = false;
  // Executions one instance takes at once (LoadedModel::executions_per_instance).
  size_t executions_per_instance = 1;
  // A sequence model's (config.sequence_batching, SequenceConfig's
  // FromModelConfig): its requests go through a SequenceBatcher whose lanes
  // are a scheduler per instance (sequence_batcher.h). Unset: none.
  std::shared_ptr<const SequenceConfig> sequence;
  // Whether a batch of several requests reaches an instance as the list of
  // its requests, unmerged (LoadedModel::batch_as_list:
  // ModelInstance::ExecuteList), rather than merged along dim 0 into one
  // request (Execute). Batches form the same way either way; a batch of one
  // request runs Execute either way.
  bool batch_as_list = false;
  // Where each execution is recorded (ModelStats::ExecutionFinished); null: nowhere.
  std::shared_ptr<ModelStats> stats;
  static ModelSchedulerConfig FromModelConfig(const inference::ModelConfig& config,
                                              std::string model_name);
};
// The priority levels an ensemble's queue accepts (ConfigBounds'
// kMaxPriorityLevels): a request's "priority" is meant for its steps.
inline constexpr uint32_t kEnsemblePriorityLevels = 1000;
// Models without mmserve.tenant share this tenant.
inline constexpr std::string_view kSharedTenant = "shared";

class ModelScheduler final : public SlotUser, public std::enable_shared_from_this<ModelScheduler> {
 public:
  using Options = ModelSchedulerOptions;
  using Config = ModelSchedulerConfig;

  // `slots`: the shared execution slots, not owned; they outlive the
  // scheduler. INVALID_ARGUMENT for a bad weight.
  static StatusOr<std::shared_ptr<ModelScheduler>> Create(
      std::vector<std::unique_ptr<ModelInstance>> instances, ExecutionSlots* slots,
      Options options = {}, Config config = {});

  // Queues `request`; `done` is called exactly once, with the response
  // (model_name, model_version and id are copied from the request): on a slot
  // thread, or on the calling thread (inline fast path, or a request refused
  // before queueing: a bad "priority"/"timeout" parameter is INVALID_ARGUMENT,
  // a full queue RESOURCE_EXHAUSTED). A request that waits past its queue
  // timeout gets DEADLINE_EXCEEDED and never executes.
  void Enqueue(std::unique_ptr<InferRequest> request, InferCallback done);

  // Requests queued or executing right now.
  size_t pending() const;
  // Requests queued, and executing, right now (for metrics).
  std::pair<size_t, size_t> queued_and_executing() const;
  // Calls `fn` once nothing is queued or executing: at once (on this thread)
  // when that is so now, else on the thread that finishes the last request.
  // The lifecycle drains a version with it before dropping it. One waiter at
  // a time; a second call replaces nothing and is queued behind the first.
  void NotifyWhenIdle(std::function<void()> fn);
  // Moving average of execution time, ns (0 until the first execution).
  int64_t average_execution_ns() const { return avg_exec_ns_.load(std::memory_order_relaxed); }
  // Executions so far and the requests they served (a batch serves several).
  uint64_t executions() const;
  uint64_t executed_requests() const;
  // A sequence model's: ends every sequence under way (SequenceBatcher's
  // EndAll); nothing for any other model.
  void EndSequences(const std::string& reason);
  // A sequence model's batcher (Config::sequence); null for any other.
  const SequenceBatcher* sequences() const { return sequences_.get(); }
  // Whether the model is decoupled (its requests need a ResponseStream).
  bool decoupled() const { return decoupled_; }
  // The fair share's tenant this model's executions are charged to.
  const std::string& fair_share_tenant() const { return tenant_; }
  // Logs those counts (the mean batch), once, when the model is dropped.
  ~ModelScheduler() override;

  // SlotUser: runs the next batch on an idle instance. Called by the slots.
  int64_t RunOnSlot() override;

 private:
  using Work = ModelQueue::Item;
  ModelScheduler(std::vector<std::unique_ptr<ModelInstance>> instances, ExecutionSlots* slots,
                 ExecutionSlots::Flow flow, Options options, Config config);
  // Requires a non-empty queue. Takes the next batch (one request
  // without batching), or nothing when it should wait for more; then
  // *wake_at says when to look again.
  std::vector<Work> TakeBatchLocked(int64_t now_ns, int64_t* wake_at) MM_REQUIRES(mu_);
  // Whether another slot should be asked for: work waits that
  // no outstanding request covers, an instance is idle for it, and the
  // batcher is not waiting for more. Counts the request when it says yes.
  bool ClaimSlotRequestLocked() MM_REQUIRES(mu_);
  // Asks the slots for a slot (one claimed by ClaimSlotRequestLocked). After
  // the slots shut down, runs the work here instead.
  void RequestSlot();
  // Runs the next batch, if any; *more says a further slot was claimed.
  // Returns the execution's cost in ns (0: nothing ran).
  int64_t RunBatch(bool* more);
  // Runs one execution, timing it (for the inline decision and the
  // response's compute_ns): *start_ns when it began, *ns how long it took.
  Status RunTimed(ModelInstance* instance, const InferRequest& request, InferResponse& response,
                  int64_t* start_ns, int64_t* ns);
  // A request's answer, made by an execution and delivered only once the
  // instance is idle again: a client that sends its next request the moment
  // it has its answer must find the model no longer executing (an eviction,
  // a quota's eviction, the inline path all look). Idle waiters run after
  // the answers (a drained version is dropped only once nobody is answered).
  struct Answer {
    InferCallback done;
    StatusOr<std::unique_ptr<InferResponse>> result;
    void Deliver() { done(std::move(result)); }
  };
  // Executes a batch of more than one request as one; the answers, in order.
  std::vector<Answer> ExecuteBatch(ModelInstance* instance, std::vector<Work> works);
  // batch_as_list: executes a batch of more than one request as the list of
  // its requests (ExecuteList), each answered with its own response or
  // error; the answers, in order.
  std::vector<Answer> ExecuteAsList(ModelInstance* instance, std::vector<Work> works);
  // Counts an execution of `ns` and updates the moving average.
  void RecordExecution(int64_t ns);
  // The batching delay is over: asks for a slot if work waits.
  void Dispatch();
  // The client of `ticket` went away: answers it CANCELLED if it still waits.
  void CancelQueued(uint64_t ticket);
  // Answers the requests whose queue deadline has passed.
  void ExpireDue();
  void FailExpired(std::vector<Work> expired, int64_t now_ns);
  // Executes `work` on `instance`; its answer, to deliver.
  Answer Execute(ModelInstance* instance, Work work);
  // The inline execution on `instance` ended: marks it idle, asks for the
  // next slot, delivers `answer`, then wakes idle waiters.
  void Finished(ModelInstance* instance, Answer answer);
  bool InlineAllowed(const InferRequest& request) const;
  // Decoupled models (decoupled.cc): runs `batch` on `instance` through
  // ExecuteDecoupled, then does RunBatch's tail; returns the cost.
  int64_t RunDecoupled(ModelInstance* instance, std::vector<Work> batch, bool* more);
  // A decoupled request completed: it no longer counts as executing. Returns
  // the idle waiters to run after its answer.
  std::vector<std::function<void()>> DecoupledCompleted() MM_EXCLUDES(mu_);
  friend class DecoupledSender;
  // The queue's config is const after construction: read without mu_.
  const QueueConfig& queue_config() const MM_NO_THREAD_SAFETY_ANALYSIS { return queue_.config(); }

  ExecutionSlots* const slots_;
  const ExecutionSlots::Flow flow_;
  const std::vector<std::unique_ptr<ModelInstance>> instances_;
  const Options options_;
  std::atomic<int64_t> avg_exec_ns_{0};
  std::atomic<uint64_t> executions_{0};
  std::atomic<uint64_t> executed_requests_{0};

  const std::string model_name_;
  const std::string tenant_;
  const bool inline_safe_;
  const bool decoupled_;
  const bool asynchronous_;  // decoupled_, or Config::asynchronous
  const bool start_inline_;  // Config::asynchronous with inline_safe
  const bool batch_as_list_;
  const std::shared_ptr<ModelStats> stats_;  // may be null
  const Clock* const clock_;
  const BatchingConfig batching_;
  // A sequence model's: every request goes through it (const after Create).
  std::shared_ptr<SequenceBatcher> sequences_;

  // preserve_ordering: answers in queueing order. Sequence numbers are taken
  // under the scheduler's mu_ (next_seq_ below); delivery has its own lock and
  // one delivering thread at a time.
  class InOrder {
   public:
    InferCallback Wrap(uint64_t seq, InferCallback done);

   private:
    void Complete(uint64_t seq, InferCallback done, StatusOr<std::unique_ptr<InferResponse>> r)
        MM_EXCLUDES(mu_);
    Mutex mu_;
    uint64_t next_out_ MM_GUARDED_BY(mu_) = 0;
    bool delivering_ MM_GUARDED_BY(mu_) = false;
    std::map<uint64_t, std::pair<InferCallback, StatusOr<std::unique_ptr<InferResponse>>>> held_
        MM_GUARDED_BY(mu_);
  };

  mutable Mutex mu_;
  std::unique_ptr<InOrder> in_order_;  // set when preserve_ordering; const after construction
  uint64_t next_seq_ MM_GUARDED_BY(mu_) = 0;  // in_order_'s next sequence number
  ModelQueue queue_ MM_GUARDED_BY(mu_);
  std::vector<ModelInstance*> idle_ MM_GUARDED_BY(mu_);
  size_t executing_ MM_GUARDED_BY(mu_) = 0;
  size_t slot_requests_ MM_GUARDED_BY(mu_) = 0;  // outstanding
  bool batch_waits_ MM_GUARDED_BY(mu_) = false;  // until more come or the delay ends
  std::vector<std::function<void()>> idle_waiters_ MM_GUARDED_BY(mu_);
};

}  // namespace mm
