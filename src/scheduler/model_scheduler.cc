#include "scheduler/model_scheduler.h"

#include <exception>

namespace mm {

std::shared_ptr<ModelScheduler> ModelScheduler::Create(
    std::vector<std::unique_ptr<ModelInstance>> instances, ThreadPool* pool) {
  return std::shared_ptr<ModelScheduler>(new ModelScheduler(std::move(instances), pool));
}

ModelScheduler::ModelScheduler(std::vector<std::unique_ptr<ModelInstance>> instances,
                               ThreadPool* pool)
    : pool_(pool), instances_(std::move(instances)) {
  for (const auto& instance : instances_) idle_.push_back(instance.get());
}

size_t ModelScheduler::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size() + executing_;
}

void ModelScheduler::Enqueue(std::unique_ptr<InferRequest> request, InferCallback done) {
  ModelInstance* instance = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(Work{std::move(request), std::move(done)});
    if (idle_.empty()) return;  // a running job picks it up
    instance = idle_.back();
    idle_.pop_back();
    ++executing_;
  }
  pool_->Submit([self = shared_from_this(), instance] { self->RunOne(instance); });
}

void ModelScheduler::RunOne(ModelInstance* instance) {
  Work work;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.empty()) {  // another instance took the request this job was scheduled for
      idle_.push_back(instance);
      --executing_;
      return;
    }
    work = std::move(queue_.front());
    queue_.pop_front();
  }
  auto response = std::make_unique<InferResponse>();
  response->model_name = work.request->model_name;
  response->model_version = work.request->model_version;
  response->id = work.request->id;
  Status status;
  try {
    status = instance->Execute(*work.request, *response);
  } catch (const std::exception& e) {
    status = Internal("model '" + work.request->model_name + "' failed: " + e.what());
  }
  // Release the request (and the transport buffer it pins) before answering.
  work.request.reset();
  if (status.ok()) {
    work.done(std::move(response));
  } else {
    work.done(std::move(status));
  }
  bool more = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.empty()) {
      idle_.push_back(instance);
      --executing_;
    } else {
      more = true;
    }
  }
  // Yield the thread between requests: other models' jobs queued meanwhile run first.
  if (more) pool_->Submit([self = shared_from_this(), instance] { self->RunOne(instance); });
}

}  // namespace mm
