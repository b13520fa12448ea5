#include "scheduler/model_scheduler.h"

#include <chrono>
#include <exception>

namespace mm {

std::shared_ptr<ModelScheduler> ModelScheduler::Create(
    std::vector<std::unique_ptr<ModelInstance>> instances, ThreadPool* pool, Options options) {
  return std::shared_ptr<ModelScheduler>(new ModelScheduler(std::move(instances), pool, options));
}

ModelScheduler::ModelScheduler(std::vector<std::unique_ptr<ModelInstance>> instances,
                               ThreadPool* pool, Options options)
    : pool_(pool), instances_(std::move(instances)), options_(options) {
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
  ModelInstance* instance = nullptr;
  const bool try_inline = InlineAllowed(*request);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (try_inline && queue_.empty() && !idle_.empty() && pool_->TryAcquireSlot()) {
      instance = idle_.back();
      idle_.pop_back();
      ++executing_;
    } else {
      queue_.push_back(Work{std::move(request), std::move(done)});
      if (idle_.empty()) return;  // a running job picks it up
      instance = idle_.back();
      idle_.pop_back();
      ++executing_;
      request = nullptr;
    }
  }
  if (request) {  // inline fast path
    Execute(instance, Work{std::move(request), std::move(done)});
    pool_->ReleaseSlot();
    Continue(instance);
    return;
  }
  pool_->Submit([self = shared_from_this(), instance] { self->RunOne(instance); });
}

void ModelScheduler::RunOne(ModelInstance* instance) {
  Work work;
  std::vector<std::function<void()>> waiters;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.empty()) {  // another instance took the request this job was scheduled for
      idle_.push_back(instance);
      --executing_;
      if (executing_ == 0) waiters.swap(idle_waiters_);
    } else {
      work = std::move(queue_.front());
      queue_.pop_front();
    }
  }
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
