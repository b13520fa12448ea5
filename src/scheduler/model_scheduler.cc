#include "scheduler/model_scheduler.h"

#include "scheduler/batch_tensors.h"
#include "scheduler/sequence_batcher.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <numeric>
#include <optional>

#include <spdlog/spdlog.h>

namespace mm {

BatchingConfig BatchingConfig::FromModelConfig(const inference::ModelConfig& config) {
  BatchingConfig b;
  if (!config.has_dynamic_batching() || config.max_batch_size() <= 0) return b;
  b.enabled = true;
  b.max_batch_size = config.max_batch_size();
  for (int32_t p : config.dynamic_batching().preferred_batch_size()) {
    if (p > 0 && p <= b.max_batch_size) b.preferred.push_back(p);
  }
  std::sort(b.preferred.begin(), b.preferred.end());
  b.preferred.erase(std::unique(b.preferred.begin(), b.preferred.end()), b.preferred.end());
  b.preserve_ordering = config.dynamic_batching().preserve_ordering();
  b.max_delay_ns = static_cast<int64_t>(
      std::min<uint64_t>(config.dynamic_batching().max_queue_delay_microseconds(), 60'000'000) *
      1000);
  return b;
}

ModelSchedulerConfig ModelSchedulerConfig::FromModelConfig(const inference::ModelConfig& config,
                                                           std::string model_name) {
  ModelSchedulerConfig c;
  c.model_name = std::move(model_name);
  c.tenant = config.mmserve().tenant();
  c.weight = config.mmserve().weight() > 0 ? config.mmserve().weight() : 1.0;
  c.queue = QueueConfig::FromModelConfig(config);
  c.batching = BatchingConfig::FromModelConfig(config);
  c.decoupled = config.model_transaction_policy().decoupled();
  if (config.has_ensemble_scheduling()) {
    // An ensemble's "priority" is its steps': any level passes its own queue
    // (its steps' queues check theirs).
    c.queue.levels = kEnsemblePriorityLevels;
  }
  return c;
}

StatusOr<std::shared_ptr<ModelScheduler>> ModelScheduler::Create(
    std::vector<std::unique_ptr<ModelInstance>> instances, ExecutionSlots* slots, Options options,
    Config config) {
  if (config.tenant.empty()) config.tenant = kSharedTenant;
  if (config.sequence) {
    // A lane per instance, each a scheduler of its own whose dynamic batcher
    // forms the batches; the batcher in front keeps sequences on their lane.
    SequenceConfig sequence = *config.sequence;
    config.sequence.reset();
    std::vector<std::shared_ptr<ModelScheduler>> lanes;
    for (auto& instance : instances) {
      Config lane = config;
      lane.queue = QueueConfig();
      lane.batching = BatchingConfig();
      if (sequence.max_batch_size > 0) {
        lane.batching.enabled = true;
        lane.batching.max_batch_size = sequence.max_batch_size;
        lane.batching.preferred = sequence.preferred;
        lane.batching.max_delay_ns = sequence.max_delay_ns;
      }
      std::vector<std::unique_ptr<ModelInstance>> one;
      one.push_back(std::move(instance));
      MM_ASSIGN_OR_RETURN(auto scheduler, Create(std::move(one), slots, options, std::move(lane)));
      lanes.push_back(std::move(scheduler));
    }
    auto flow = slots->Register(config.tenant, config.model_name, config.weight);
    if (!flow.ok()) return flow.status().WithContext("model '" + config.model_name + "'");
    const std::string name = config.model_name;
    std::shared_ptr<ModelScheduler> front(
        new ModelScheduler({}, slots, *flow, options, std::move(config)));
    front->sequences_ = std::make_shared<SequenceBatcher>(
        name, std::move(sequence), std::move(lanes), front->clock_, options.timer);
    return front;
  }
  auto flow = slots->Register(config.tenant, config.model_name, config.weight);
  if (!flow.ok()) return flow.status().WithContext("model '" + config.model_name + "'");
  return std::shared_ptr<ModelScheduler>(
      new ModelScheduler(std::move(instances), slots, *flow, options, std::move(config)));
}

ModelScheduler::ModelScheduler(std::vector<std::unique_ptr<ModelInstance>> instances,
                               ExecutionSlots* slots, ExecutionSlots::Flow flow, Options options,
                               Config config)
    : slots_(slots),
      flow_(flow),
      instances_(std::move(instances)),
      options_(options),
      model_name_(std::move(config.model_name)),
      tenant_(config.tenant),
      // (An answer may come later.)
      inline_safe_(config.inline_safe && !config.decoupled && !config.asynchronous),
      decoupled_(config.decoupled),
      asynchronous_(config.decoupled || config.asynchronous),
      start_inline_(config.asynchronous && !config.decoupled && config.inline_safe),
      batch_as_list_(config.batch_as_list),
      stats_(std::move(config.stats)),
      clock_(options.clock != nullptr ? options.clock : SteadyClock::Get()),
      batching_(std::move(config.batching)),
      queue_(std::move(config.queue), model_name_) {
  const size_t each = std::max<size_t>(1, config.executions_per_instance);
  for (const auto& instance : instances_) idle_.insert(idle_.end(), each, instance.get());
  if (batching_.enabled && batching_.preserve_ordering && instances_.size() > 1) {
    in_order_ = std::make_unique<InOrder>();  // (one instance answers in order anyway)
  }
}

InferCallback ModelScheduler::InOrder::Wrap(uint64_t seq, InferCallback done) {
  return [this, seq, done = std::move(done)](StatusOr<std::unique_ptr<InferResponse>> r) mutable {
    Complete(seq, std::move(done), std::move(r));
  };
}

void ModelScheduler::InOrder::Complete(uint64_t seq, InferCallback done,
                                       StatusOr<std::unique_ptr<InferResponse>> r) {
  MutexLock lock(mu_);
  held_.emplace(seq, std::make_pair(std::move(done), std::move(r)));
  if (delivering_) return;  // the thread delivering takes it in turn
  delivering_ = true;
  for (;;) {
    auto it = held_.begin();
    if (it == held_.end() || it->first != next_out_) break;
    auto [fn, result] = std::move(it->second);
    held_.erase(it);
    ++next_out_;
    lock.Unlock();
    fn(std::move(result));
    lock.Lock();
  }
  delivering_ = false;
}

ModelScheduler::~ModelScheduler() {
  slots_->Unregister(flow_);
  const uint64_t runs = executions();
  if (runs == 0 || !batching_.enabled) return;
  spdlog::info("model '{}': {} requests in {} executions (mean batch {:.2f} requests)", model_name_,
               executed_requests(), runs,
               static_cast<double>(executed_requests()) / static_cast<double>(runs));
}

uint64_t ModelScheduler::executions() const {
  return sequences_ ? sequences_->executions() : executions_.load(std::memory_order_relaxed);
}

uint64_t ModelScheduler::executed_requests() const {
  return sequences_ ? sequences_->executed_requests()
                    : executed_requests_.load(std::memory_order_relaxed);
}

void ModelScheduler::EndSequences(const std::string& reason) {
  if (sequences_) sequences_->EndAll(reason);
}

size_t ModelScheduler::pending() const {
  if (sequences_) return sequences_->pending();
  MutexLock lock(mu_);
  return queue_.size() + executing_;
}

std::pair<size_t, size_t> ModelScheduler::queued_and_executing() const {
  if (sequences_) return sequences_->queued_and_executing();
  MutexLock lock(mu_);
  return {queue_.size(), executing_};
}

namespace {

// The execution's stages: what the backend told apart (`backend`'s input and
// output) within its run, plus the batch's merge before it and split after it.
ExecutionTiming StageTimes(const ExecutionTiming& backend, int64_t start_ns, int64_t merge_ns,
                           int64_t run_ns, int64_t split_ns, int64_t batch_size) {
  ExecutionTiming t;
  t.start_ns = start_ns;
  const int64_t in = std::clamp<int64_t>(backend.input_ns, 0, run_ns);
  const int64_t out = std::clamp<int64_t>(backend.output_ns, 0, run_ns - in);
  t.input_ns = merge_ns + in;
  t.infer_ns = run_ns - in - out;
  t.output_ns = out + split_ns;
  t.batch_size = batch_size;
  return t;
}

}  // namespace

void ModelScheduler::NotifyWhenIdle(std::function<void()> fn) {
  if (sequences_) return sequences_->NotifyWhenIdle(std::move(fn));
  {
    MutexLock lock(mu_);
    if (!queue_.empty() || executing_ > 0) {
      idle_waiters_.push_back(std::move(fn));
      return;
    }
  }
  fn();
}

bool ModelScheduler::InlineAllowed(const InferRequest& request) const {
  // Unknown cost (no execution yet) never runs inline: the first request of a
  // model may be its slowest.
  if (!inline_safe_) return false;
  int64_t avg = avg_exec_ns_.load(std::memory_order_relaxed);
  if (options_.inline_max_ns <= 0 || avg <= 0 || avg > options_.inline_max_ns) return false;
  size_t bytes = 0;
  for (const Tensor& input : request.inputs) bytes += input.data.size();
  return bytes <= options_.inline_max_input_bytes;
}

void ModelScheduler::Enqueue(std::unique_ptr<InferRequest> request, InferCallback done) {
  if (sequences_) return sequences_->Enqueue(std::move(request), std::move(done));
  const int64_t now = clock_->NowNs();
  // The queue's parameters are checked before anything is queued, without mu_.
  auto admission = Admit(queue_config(), *request, now, model_name_);
  if (!admission.ok()) return done(admission.status());
  Work work;
  work.request = std::move(request);
  work.done = std::move(done);
  work.enqueued_ns = now;
  work.level = admission->level;
  work.deadline_ns = admission->deadline_ns;
  ModelInstance* instance = nullptr;
  bool start_here = false;  // an asynchronous model's start, on this thread
  // A batching model never skips its queue: run inline, requests would reach
  // it one by one (the I/O thread busy executing is what lets a queue form).
  const bool try_inline = !batching_.enabled && InlineAllowed(*work.request);
  bool need_slot = false;
  uint64_t ticket = 0;
  std::shared_ptr<Cancellation> cancellation;  // only for a request that queues
  {
    MutexLock lock(mu_);
    if (start_inline_ && queue_.empty() && !idle_.empty()) {
      instance = idle_.back();
      idle_.pop_back();
      ++executing_;
      start_here = true;
    } else if (try_inline && queue_.empty() && !idle_.empty() && slots_->TryAcquireInline()) {
      instance = idle_.back();
      idle_.pop_back();
      ++executing_;
    } else {
      if (work.request->cancellation != nullptr) cancellation = work.request->cancellation;
      if (in_order_ != nullptr) work.done = in_order_->Wrap(next_seq_++, std::move(work.done));
      auto pushed = queue_.Push(work);
      if (!pushed.ok()) {
        // Full: answered below, outside the lock; nothing was queued.
        admission = pushed.status();
      } else {
        ticket = *pushed;
        batch_waits_ = false;  // this one may complete a batch
        need_slot = ClaimSlotRequestLocked();
      }
    }
  }
  if (!admission.ok()) return work.done(admission.status());
  if (instance == nullptr) {  // queued
    if (admission->deadline_ns > 0 && options_.timer != nullptr) {
      options_.timer->At(admission->deadline_ns, [weak = weak_from_this()] {
        if (auto self = weak.lock()) self->ExpireDue();
      });
    }
    if (cancellation != nullptr) {
      // The client going away takes the request out of the queue. (Set after
      // the push: the request may even have run already; then it finds nothing.)
      cancellation->OnCancel([weak = weak_from_this(), ticket] {
        if (auto self = weak.lock()) self->CancelQueued(ticket);
      });
    }
    if (need_slot) RequestSlot();
    return;
  }
  if (start_here) {
    std::vector<Work> one;
    one.push_back(std::move(work));
    bool more = false;
    RunDecoupled(instance, std::move(one), &more);
    if (more) RequestSlot();
    return;
  }
  // Inline fast path.
  Answer answer = Execute(instance, std::move(work));
  slots_->ReleaseInline();
  Finished(instance, std::move(answer));
}

bool ModelScheduler::ClaimSlotRequestLocked() {
  if (queue_.empty() || batch_waits_) return false;
  // Batches the queue needs at least (a request has at least one row), each
  // on its own idle instance.
  size_t batches = queue_.size();
  if (batching_.enabled) {
    const auto max = static_cast<size_t>(batching_.max_batch_size);
    batches = (batches + max - 1) / max;
  }
  if (slot_requests_ >= std::min(idle_.size(), batches)) return false;
  ++slot_requests_;
  return true;
}

void ModelScheduler::RequestSlot() {
  // After the slots shut down, the work runs here; RunBatch claims the next
  // request itself, so this loops instead of recursing.
  while (!slots_->Request(flow_, shared_from_this())) {
    bool more = false;
    RunBatch(&more);
    if (!more) return;
  }
}

int64_t ModelScheduler::RunOnSlot() {
  bool more = false;
  const int64_t cost = RunBatch(&more);
  if (more) RequestSlot();
  return cost;
}

int64_t ModelScheduler::RunBatch(bool* more) {
  std::vector<Work> batch;
  std::vector<Work> expired;
  std::vector<std::function<void()>> waiters;
  ModelInstance* instance = nullptr;
  int64_t wake_at = 0;
  const int64_t now = clock_->NowNs();
  {
    MutexLock lock(mu_);
    --slot_requests_;
    // What waited past its deadline is answered, not run (even without a timer).
    expired = queue_.TakeExpired(now);
    if (!queue_.empty() && !idle_.empty()) {
      batch = TakeBatchLocked(now, &wake_at);
      if (batch.empty()) {
        batch_waits_ = wake_at > 0;
      } else {
        instance = idle_.back();
        idle_.pop_back();
        ++executing_;
      }
    }
    *more = ClaimSlotRequestLocked();
    if (batch.empty() && executing_ == 0 && queue_.empty()) waiters.swap(idle_waiters_);
  }
  FailExpired(std::move(expired), now);
  if (batch.empty()) {
    // Nothing to run (another slot took it, or the batcher waits for more).
    if (wake_at > 0) {
      options_.timer->At(wake_at, [weak = weak_from_this()] {
        if (auto self = weak.lock()) self->Dispatch();
      });
    }
    for (auto& fn : waiters) fn();
    return 0;
  }
  if (*more) {
    // Another instance can start now, in parallel with this batch.
    *more = false;
    RequestSlot();
  }
  if (asynchronous_) return RunDecoupled(instance, std::move(batch), more);
  const int64_t start = clock_->NowNs();
  // One request (no allocation for its answer) or a batch.
  std::optional<Answer> one;
  std::vector<Answer> many;
  if (batch.size() == 1) {
    one.emplace(Execute(instance, std::move(batch[0])));
  } else if (batch_as_list_) {
    many = ExecuteAsList(instance, std::move(batch));
  } else {
    many = ExecuteBatch(instance, std::move(batch));
  }
  const int64_t cost = std::max<int64_t>(1, clock_->NowNs() - start);
  {
    MutexLock lock(mu_);
    idle_.push_back(instance);
    --executing_;
    *more = ClaimSlotRequestLocked();
    if (executing_ == 0 && queue_.empty()) waiters.swap(idle_waiters_);
  }
  if (one) one->Deliver();
  for (Answer& a : many) a.Deliver();
  for (auto& fn : waiters) fn();
  return cost;
}

void ModelScheduler::ExpireDue() {
  const int64_t now = clock_->NowNs();
  std::vector<Work> expired;
  {
    MutexLock lock(mu_);
    expired = queue_.TakeExpired(now);
  }
  FailExpired(std::move(expired), now);
}

void ModelScheduler::FailExpired(std::vector<Work> expired, int64_t now_ns) {
  for (Work& w : expired) {
    const double waited_ms = static_cast<double>(now_ns - w.enqueued_ns) / 1e6;
    const double limit_ms = static_cast<double>(w.deadline_ns - w.enqueued_ns) / 1e6;
    char text[128];
    std::snprintf(text, sizeof(text),
                  "waited %.3f ms in the queue, past its timeout of %.3f ms; not executed",
                  waited_ms, limit_ms);
    auto done = std::move(w.done);
    w.request.reset();
    done(DeadlineExceeded("model '" + model_name_ + "': request " + text));
  }
}

void ModelScheduler::CancelQueued(uint64_t ticket) {
  std::optional<Work> work;
  std::vector<std::function<void()>> waiters;
  {
    MutexLock lock(mu_);
    work = queue_.Cancel(ticket);
    if (!work) return;  // it ran, or is running
    if (executing_ == 0 && queue_.empty()) waiters.swap(idle_waiters_);
  }
  spdlog::debug("model '{}': request '{}' cancelled by its client while queued; not executed",
                model_name_, work->request->id);
  auto done = std::move(work->done);
  work->request.reset();
  done(Cancelled("model '" + model_name_ +
                 "': the client went away while the request waited; not executed"));
  for (auto& fn : waiters) fn();
}

void ModelScheduler::Dispatch() {
  bool need_slot = false;
  {
    MutexLock lock(mu_);
    batch_waits_ = false;
    need_slot = ClaimSlotRequestLocked();
  }
  if (need_slot) RequestSlot();
}

std::vector<ModelScheduler::Work> ModelScheduler::TakeBatchLocked(int64_t now_ns,
                                                                  int64_t* wake_at) {
  std::vector<Work> out;
  if (!batching_.enabled) {
    out.push_back(queue_.Pop());
    return out;
  }
  const int64_t max = batching_.max_batch_size;
  // The longest prefix of the queue that can share a batch of at most max rows.
  std::vector<ModelQueue::Item*> items = queue_.InOrder(static_cast<size_t>(max));
  std::vector<int64_t> rows;  // rows[k]: rows in the first k + 1 requests
  int64_t total = 0;
  for (ModelQueue::Item* item : items) {
    auto size = RequestBatchSize(*item->request);
    if (!size.ok() || *size > max ||
        (!rows.empty() &&
         (total + *size > max || !CanBatchTogether(*items[0]->request, *item->request)))) {
      break;
    }
    total += *size;
    rows.push_back(total);
  }
  if (rows.empty()) {  // the first cannot be batched: it runs alone (and fails there)
    out.push_back(queue_.Pop());
    return out;
  }
  size_t take = rows.size();
  bool ready = total >= max || batching_.max_delay_ns == 0 || options_.timer == nullptr;
  // The largest preferred size the queue fills exactly goes at once.
  for (auto p = batching_.preferred.rbegin(); p != batching_.preferred.rend(); ++p) {
    auto k = std::find(rows.begin(), rows.end(), *p);
    if (k != rows.end()) {
      take = static_cast<size_t>(k - rows.begin()) + 1;
      ready = true;
      break;
    }
  }
  const int64_t due = items[0]->enqueued_ns + batching_.max_delay_ns;
  if (!ready && now_ns >= due) ready = true;
  if (!ready) {
    *wake_at = due;
    return out;
  }
  out.reserve(take);
  for (size_t i = 0; i < take; ++i) out.push_back(queue_.Pop());
  return out;
}

Status ModelScheduler::RunTimed(ModelInstance* instance, const InferRequest& request,
                                InferResponse& response, int64_t* start_ns, int64_t* ns_out) {
  Status status;
  const int64_t start = clock_->NowNs();
  *start_ns = start;
  try {
    status = instance->Execute(request, response);
  } catch (const std::exception& e) {
    status = Internal("model '" + request.model_name + "' failed: " + e.what());
  }
  const int64_t ns = clock_->NowNs() - start;
  *ns_out = ns;
  RecordExecution(ns);
  return status;
}

void ModelScheduler::RecordExecution(int64_t ns) {
  executions_.fetch_add(1, std::memory_order_relaxed);
  // Exponential moving average over about the last eight executions.
  int64_t avg = avg_exec_ns_.load(std::memory_order_relaxed);
  avg_exec_ns_.store(avg == 0 ? std::max<int64_t>(ns, 1) : avg + (ns - avg) / 8,
                     std::memory_order_relaxed);
}

std::vector<ModelScheduler::Answer> ModelScheduler::ExecuteBatch(ModelInstance* instance,
                                                                 std::vector<Work> works) {
  std::vector<Answer> answers;
  answers.reserve(works.size());
  auto fail_all = [&works, &answers](const Status& s) {
    for (Work& w : works) {
      w.request.reset();
      answers.push_back({std::move(w.done), s});
    }
    return std::move(answers);
  };
  const int64_t begin_ns = clock_->NowNs();
  std::vector<InferRequest*> requests;
  std::vector<int64_t> sizes;
  requests.reserve(works.size());
  sizes.reserve(works.size());
  for (Work& w : works) {
    requests.push_back(w.request.get());
    sizes.push_back(*RequestBatchSize(*w.request));  // checked when the batch formed
  }
  auto merged = MergeBatch(requests);
  if (!merged.ok()) return fail_all(merged.status());
  const int64_t rows = std::accumulate(sizes.begin(), sizes.end(), int64_t{0});
  if (spdlog::should_log(spdlog::level::debug)) {
    spdlog::debug("model '{}': one execution of {} rows for {} requests", model_name_, rows,
                  works.size());
  }
  auto batched = std::make_shared<InferResponse>();
  batched->model_name = (*merged)->model_name;
  batched->model_version = (*merged)->model_version;
  int64_t start_ns = 0;
  int64_t ns = 0;
  Status status = RunTimed(instance, **merged, *batched, &start_ns, &ns);
  executed_requests_.fetch_add(works.size(), std::memory_order_relaxed);
  merged->reset();  // the batch buffer is not needed any more
  if (!status.ok()) return fail_all(status);
  const ExecutionTiming backend = batched->timing;
  auto split = SplitBatch(std::move(batched), requests, sizes);
  if (!split.ok()) return fail_all(split.status());
  const ExecutionTiming timing =
      StageTimes(backend, begin_ns, start_ns - begin_ns, ns, clock_->NowNs() - start_ns - ns, rows);
  if (stats_ != nullptr) {
    stats_->ExecutionFinished(rows, timing.input_ns, timing.infer_ns, timing.output_ns);
  }
  // Each request is charged its rows' share of the execution's time; the
  // shares add up to the whole (the last takes the rounding).
  const int64_t total = timing.input_ns + timing.infer_ns + timing.output_ns;
  int64_t charged = 0;
  for (size_t i = 0; i < works.size(); ++i) {
    InferResponse& r = *(*split)[i];
    r.queue_ns = begin_ns - works[i].enqueued_ns;
    r.compute_ns = i + 1 == works.size() || rows <= 0 ? total - charged : total * sizes[i] / rows;
    charged += r.compute_ns;
    r.timing = timing;
    works[i].request.reset();
    answers.push_back({std::move(works[i].done), std::move((*split)[i])});
  }
  return answers;
}

std::vector<ModelScheduler::Answer> ModelScheduler::ExecuteAsList(ModelInstance* instance,
                                                                  std::vector<Work> works) {
  const size_t n = works.size();
  const int64_t begin_ns = clock_->NowNs();
  std::vector<const InferRequest*> requests;
  std::vector<std::unique_ptr<InferResponse>> responses;
  std::vector<InferResponse*> response_ptrs;
  std::vector<Status> results(n);
  std::vector<int64_t> sizes;
  requests.reserve(n);
  responses.reserve(n);
  response_ptrs.reserve(n);
  sizes.reserve(n);
  for (Work& w : works) {
    requests.push_back(w.request.get());
    auto response = std::make_unique<InferResponse>();
    response->model_name = w.request->model_name;
    response->model_version = w.request->model_version;
    response->id = w.request->id;
    response_ptrs.push_back(response.get());
    responses.push_back(std::move(response));
    sizes.push_back(*RequestBatchSize(*w.request));  // checked when the batch formed
  }
  const int64_t rows = std::accumulate(sizes.begin(), sizes.end(), int64_t{0});
  if (spdlog::should_log(spdlog::level::debug)) {
    spdlog::debug("model '{}': one execution of {} rows for a list of {} requests", model_name_,
                  rows, n);
  }
  const int64_t start_ns = clock_->NowNs();
  Status status;
  try {
    status = instance->ExecuteList(requests, response_ptrs, results);
  } catch (const std::exception& e) {
    status = Internal("model '" + model_name_ + "' failed: " + e.what());
  }
  const int64_t ns = clock_->NowNs() - start_ns;
  RecordExecution(ns);
  executed_requests_.fetch_add(n, std::memory_order_relaxed);
  std::vector<Answer> answers;
  answers.reserve(n);
  if (!status.ok()) {
    for (Work& w : works) {
      w.request.reset();
      answers.push_back({std::move(w.done), status});
    }
    return answers;
  }
  // The backend's own input/output times: the first request's (a list
  // backend times the whole execution).
  const ExecutionTiming timing = StageTimes(responses[0]->timing, begin_ns, start_ns - begin_ns, ns,
                                            clock_->NowNs() - start_ns - ns, rows);
  if (stats_ != nullptr) {
    stats_->ExecutionFinished(rows, timing.input_ns, timing.infer_ns, timing.output_ns);
  }
  // Each request is charged its rows' share, as for a merged batch.
  const int64_t total = timing.input_ns + timing.infer_ns + timing.output_ns;
  int64_t charged = 0;
  for (size_t i = 0; i < n; ++i) {
    InferResponse& r = *responses[i];
    r.queue_ns = begin_ns - works[i].enqueued_ns;
    r.compute_ns = i + 1 == n || rows <= 0 ? total - charged : total * sizes[i] / rows;
    charged += r.compute_ns;
    r.timing = timing;
    works[i].request.reset();
    if (results[i].ok()) {
      answers.push_back({std::move(works[i].done), std::move(responses[i])});
    } else {
      answers.push_back({std::move(works[i].done), std::move(results[i])});
    }
  }
  return answers;
}

ModelScheduler::Answer ModelScheduler::Execute(ModelInstance* instance, Work work) {
  auto response = std::make_unique<InferResponse>();
  response->model_name = work.request->model_name;
  response->model_version = work.request->model_version;
  response->id = work.request->id;
  int64_t start_ns = 0;
  Status status = RunTimed(instance, *work.request, *response, &start_ns, &response->compute_ns);
  response->queue_ns = start_ns - work.enqueued_ns;
  executed_requests_.fetch_add(1, std::memory_order_relaxed);
  if (status.ok()) {
    // A batching model's request is a batch of its own rows.
    int64_t rows = 1;
    if (stats_ != nullptr && stats_->max_batch_size() > 1) {
      auto size = RequestBatchSize(*work.request);
      rows = size.ok() ? std::max<int64_t>(*size, 1) : 1;
    }
    response->timing = StageTimes(response->timing, start_ns, 0, response->compute_ns, 0, rows);
    if (stats_ != nullptr) {
      stats_->ExecutionFinished(rows, response->timing.input_ns, response->timing.infer_ns,
                                response->timing.output_ns);
    }
  }
  // Release the request (and the transport buffer it pins) before answering.
  work.request.reset();
  if (status.ok()) return {std::move(work.done), std::move(response)};
  return {std::move(work.done), std::move(status)};
}

void ModelScheduler::Finished(ModelInstance* instance, Answer answer) {
  std::vector<std::function<void()>> waiters;  // empty: no allocation
  bool need_slot = false;
  {
    MutexLock lock(mu_);
    idle_.push_back(instance);
    --executing_;
    need_slot = ClaimSlotRequestLocked();
    if (executing_ == 0 && queue_.empty()) waiters.swap(idle_waiters_);
  }
  answer.Deliver();
  if (need_slot) RequestSlot();
  for (auto& fn : waiters) fn();
}

}  // namespace mm
