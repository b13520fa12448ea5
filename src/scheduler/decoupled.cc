// The decoupled path of ModelScheduler (model_scheduler.h): executions hand
// their requests to ExecuteDecoupled with a ResponseSender each, and the
// requests complete whenever the model sends their final flag.
#include <algorithm>
#include <exception>

#include <spdlog/spdlog.h>

#include "scheduler/batch_tensors.h"
#include "scheduler/model_scheduler.h"

namespace mm {

// One decoupled request in flight: the backend's handle to answer it
// (backend.h, ResponseSender's contract). Holds the request until its final.
class DecoupledSender final : public ResponseSender {
 public:
  // `keep_timing`: an asynchronous model's (not decoupled): its final
  // response comes with its own timing (ModelSchedulerConfig::asynchronous).
  DecoupledSender(std::weak_ptr<ModelScheduler> scheduler, std::string model_name,
                  ModelQueue::Item work, int64_t start_ns, const Clock* clock, bool keep_timing)
      : scheduler_(std::move(scheduler)),
        keep_timing_(keep_timing),
        model_name_(std::move(model_name)),
        clock_(clock),
        request_(std::move(work.request)),
        cancellation_(request_->cancellation),
        done_(std::move(work.done)),
        queue_ns_(start_ns - work.enqueued_ns),
        start_ns_(start_ns) {}

  ~DecoupledSender() override {
    if (completed_) return;  // (no other reference: no lock needed)
    (void)Send(Internal("model '" + model_name_ + "' released request '" + id_or_empty() +
                        "' without sending its final response (a backend defect)"),
               true);
  }

  // Valid until the final is sent (the contract): read without mu_.
  const InferRequest& request() const override MM_NO_THREAD_SAFETY_ANALYSIS { return *request_; }
  bool cancelled() const override { return cancellation_ != nullptr && cancellation_->cancelled(); }

  Status Send(StatusOr<std::unique_ptr<InferResponse>> response, bool final) override {
    MutexLock lock(mu_);
    if (completed_) {
      return FailedPrecondition("model '" + model_name_ + "': request '" + request_id_ +
                                "' was already completed (its final response was sent); a "
                                "response after the final one is dropped");
    }
    if (!final) {
      if (response.ok() && *response == nullptr) {
        return InvalidArgument("model '" + model_name_ +
                               "': a non-final response needs a response; only the final flag "
                               "may come without one");
      }
      if (response.ok()) Stamp(**response);
      // (A request without a stream reached a decoupled model only through a
      // caller that does not stream: its intermediate responses go nowhere.)
      if (request_->stream != nullptr) request_->stream->Send(*request_, std::move(response));
      return OkStatus();
    }
    completed_ = true;
    request_id_ = request_->id;
    if (response.ok()) {
      if (*response == nullptr) {
        *response = std::make_unique<InferResponse>();
        (*response)->complete_only = true;
      }
      InferResponse& r = **response;
      Stamp(r);
      if (keep_timing_) {
        r.queue_ns += queue_ns_;
        r.timing.start_ns = start_ns_;
      } else {
        r.queue_ns = queue_ns_;
        r.compute_ns = std::max<int64_t>(0, clock_->NowNs() - start_ns_);
        r.timing.start_ns = start_ns_;
        r.timing.infer_ns = r.compute_ns;
      }
      r.timing.batch_size = 1;
    }
    // Release the request (and the transport buffer it pins) before answering.
    request_.reset();
    InferCallback done = std::move(done_);
    lock.Unlock();
    std::vector<std::function<void()>> waiters;
    // Held while answering: the answer records into the model's statistics
    // through a raw pointer, which the scheduler's reference keeps valid
    // (StatsRegistry::Compact folds them once nothing holds them).
    const std::shared_ptr<ModelScheduler> scheduler = scheduler_.lock();
    if (scheduler != nullptr) waiters = scheduler->DecoupledCompleted();
    done(std::move(response));
    for (auto& fn : waiters) fn();
    return OkStatus();
  }

 private:
  void Stamp(InferResponse& r) MM_REQUIRES(mu_) {
    r.model_name = request_->model_name;
    r.model_version = request_->model_version;
    r.id = request_->id;
  }
  std::string id_or_empty() MM_NO_THREAD_SAFETY_ANALYSIS {
    return request_ != nullptr ? request_->id : request_id_;
  }

  const std::weak_ptr<ModelScheduler> scheduler_;
  const bool keep_timing_;
  const std::string model_name_;
  const Clock* const clock_;
  Mutex mu_;
  std::unique_ptr<InferRequest> request_ MM_GUARDED_BY(mu_);  // null once completed
  const std::shared_ptr<Cancellation> cancellation_;
  InferCallback done_ MM_GUARDED_BY(mu_);
  std::string request_id_ MM_GUARDED_BY(mu_);  // once completed
  bool completed_ MM_GUARDED_BY(mu_) = false;
  const int64_t queue_ns_;
  const int64_t start_ns_;
};

int64_t ModelScheduler::RunDecoupled(ModelInstance* instance, std::vector<Work> batch, bool* more) {
  const int64_t start = clock_->NowNs();
  const size_t n = batch.size();
  {
    MutexLock lock(mu_);
    executing_ += n;  // each until its final (DecoupledCompleted)
  }
  // A batching model's request is a batch of its own rows (inference_count).
  int64_t rows = static_cast<int64_t>(n);
  if (stats_ != nullptr && stats_->max_batch_size() > 1) {
    rows = 0;
    for (const Work& w : batch) {
      auto size = RequestBatchSize(*w.request);
      rows += size.ok() ? std::max<int64_t>(*size, 1) : 1;
    }
  }
  std::vector<std::shared_ptr<ResponseSender>> senders;
  senders.reserve(n);
  for (Work& w : batch) {
    senders.push_back(std::make_shared<DecoupledSender>(weak_from_this(), model_name_, std::move(w),
                                                        start, clock_, !decoupled_));
  }
  batch.clear();
  Status status;
  try {
    status = instance->ExecuteDecoupled(senders);
  } catch (const std::exception& e) {
    status = Internal("model '" + model_name_ + "' failed: " + e.what());
  }
  const int64_t ns = std::max<int64_t>(1, clock_->NowNs() - start);
  executions_.fetch_add(1, std::memory_order_relaxed);
  executed_requests_.fetch_add(n, std::memory_order_relaxed);
  if (stats_ != nullptr) stats_->ExecutionFinished(rows, 0, ns, 0);
  if (!status.ok()) {
    // Every request not yet completed fails with it (the others ignore it).
    for (auto& sender : senders) (void)sender->Send(status, true);
  }
  // What the instance did not keep completes now, with an INTERNAL error.
  senders.clear();
  std::vector<std::function<void()>> waiters;
  {
    MutexLock lock(mu_);
    idle_.push_back(instance);
    --executing_;
    *more = ClaimSlotRequestLocked();
    if (executing_ == 0 && queue_.empty()) waiters.swap(idle_waiters_);
  }
  for (auto& fn : waiters) fn();
  return ns;
}

std::vector<std::function<void()>> ModelScheduler::DecoupledCompleted() {
  std::vector<std::function<void()>> waiters;
  MutexLock lock(mu_);
  --executing_;
  if (executing_ == 0 && queue_.empty()) waiters.swap(idle_waiters_);
  return waiters;
}

}  // namespace mm
