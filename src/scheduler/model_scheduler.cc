#include "scheduler/model_scheduler.h"

#include <chrono>
#include <cstdio>
#include <exception>

namespace mm {

std::shared_ptr<ModelScheduler> ModelScheduler::Create(
    std::vector<std::unique_ptr<ModelInstance>> instances, ThreadPool* pool, Options options,
    QueueConfig queue, std::string model_name) {
  if (queue.policies.empty()) queue = QueueConfig::FromModelConfig({});
  return std::shared_ptr<ModelScheduler>(new ModelScheduler(
      std::move(instances), pool, options, std::move(queue), std::move(model_name)));
}

ModelScheduler::ModelScheduler(std::vector<std::unique_ptr<ModelInstance>> instances,
                               ThreadPool* pool, Options options, QueueConfig queue,
                               std::string model_name)
    : pool_(pool),
      instances_(std::move(instances)),
      options_(options),
      model_name_(std::move(model_name)),
      clock_(options.clock != nullptr ? options.clock : SteadyClock::Get()),
      queue_(std::move(queue), model_name_) {
  for (const auto& instance : instances_) idle_.push_back(instance.get());
}

size_t ModelScheduler::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size() + executing_;
}

void ModelScheduler::NotifyWhenIdle(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
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
  int64_t avg = avg_exec_ns_.load(std::memory_order_relaxed);
  if (options_.inline_max_ns <= 0 || avg <= 0 || avg > options_.inline_max_ns) return false;
  size_t bytes = 0;
  for (const Tensor& input : request.inputs) bytes += input.data.size();
  return bytes <= options_.inline_max_input_bytes;
}

void ModelScheduler::Enqueue(std::unique_ptr<InferRequest> request, InferCallback done) {
  const int64_t now = clock_->NowNs();
  // The queue's parameters are checked before anything is queued. (Under
  // mu_ nothing of the config changes: it is const after construction.)
  auto admission = Admit(queue_.config(), *request, now, model_name_);
  if (!admission.ok()) return done(admission.status());
  Work work;
  work.request = std::move(request);
  work.done = std::move(done);
  work.enqueued_ns = now;
  work.level = admission->level;
  work.deadline_ns = admission->deadline_ns;
  ModelInstance* instance = nullptr;
  const bool try_inline = InlineAllowed(*work.request);
  bool queued = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (try_inline && queue_.empty() && !idle_.empty() && pool_->TryAcquireSlot()) {
      instance = idle_.back();
      idle_.pop_back();
      ++executing_;
    } else {
      auto ticket = queue_.Push(work);
      if (!ticket.ok()) {
        // Full: answered below, outside the lock; nothing was queued.
        admission = ticket.status();
      } else {
        queued = true;
        if (!idle_.empty()) {
          instance = idle_.back();
          idle_.pop_back();
          ++executing_;
        }
      }
    }
  }
  if (!admission.ok()) return work.done(admission.status());
  if (queued) {
    if (admission->deadline_ns > 0 && options_.timer != nullptr) {
      options_.timer->At(admission->deadline_ns, [weak = weak_from_this()] {
        if (auto self = weak.lock()) self->ExpireDue();
      });
    }
    if (instance == nullptr) return;  // a running job picks it up
    pool_->Submit([self = shared_from_this(), instance] { self->RunOne(instance); });
    return;
  }
  // Inline fast path.
  Execute(instance, std::move(work));
  pool_->ReleaseSlot();
  Continue(instance);
}

void ModelScheduler::ExpireDue() {
  const int64_t now = clock_->NowNs();
  std::vector<Work> expired;
  {
    std::lock_guard<std::mutex> lock(mu_);
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

void ModelScheduler::RunOne(ModelInstance* instance) {
  Work work;
  std::vector<std::function<void()>> waiters;
  std::vector<Work> expired;
  const int64_t now = clock_->NowNs();
  {
    std::lock_guard<std::mutex> lock(mu_);
    // What waited past its deadline is answered, not run (even without a timer).
    expired = queue_.TakeExpired(now);
    if (queue_.empty()) {  // another instance took the request this job was scheduled for
      idle_.push_back(instance);
      --executing_;
      if (executing_ == 0) waiters.swap(idle_waiters_);
    } else {
      work = queue_.Pop();
    }
  }
  FailExpired(std::move(expired), now);
  if (!work.request) {
    for (auto& fn : waiters) fn();
    return;
  }
  Execute(instance, std::move(work));
  Continue(instance);
}

void ModelScheduler::Execute(ModelInstance* instance, Work work) {
  auto response = std::make_unique<InferResponse>();
  response->model_name = work.request->model_name;
  response->model_version = work.request->model_version;
  response->id = work.request->id;
  Status status;
  const auto start = std::chrono::steady_clock::now();
  try {
    status = instance->Execute(*work.request, *response);
  } catch (const std::exception& e) {
    status = Internal("model '" + work.request->model_name + "' failed: " + e.what());
  }
  const int64_t ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count();
  // Exponential moving average over about the last eight executions.
  int64_t avg = avg_exec_ns_.load(std::memory_order_relaxed);
  avg_exec_ns_.store(avg == 0 ? std::max<int64_t>(ns, 1) : avg + (ns - avg) / 8,
                     std::memory_order_relaxed);
  // Release the request (and the transport buffer it pins) before answering.
  work.request.reset();
  if (status.ok()) {
    work.done(std::move(response));
  } else {
    work.done(std::move(status));
  }
}

void ModelScheduler::Continue(ModelInstance* instance) {
  std::vector<std::function<void()>> waiters;  // empty: no allocation
  bool more = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    more = !queue_.empty();
    if (!more) {
      idle_.push_back(instance);
      --executing_;
      if (executing_ == 0) waiters.swap(idle_waiters_);
    }
  }
  if (more) {
    // Yield the thread between requests: other models' jobs queued meanwhile run first.
    pool_->Submit([self = shared_from_this(), instance] { self->RunOne(instance); });
    return;
  }
  for (auto& fn : waiters) fn();
}

}  // namespace mm
