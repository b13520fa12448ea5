// Per-model request queue feeding the model's instances through the shared
// ThreadPool. This is the simple first scheduler: requests run in arrival
// order, one at a time per instance, and each pool job executes exactly one
// request before yielding its thread, so a flooded model cannot hold every
// execution thread while others wait. (Dynamic batching, priorities, queue
// policies and weighted fairness arrive with the scheduler issue.)
//
// Lifetime: create with Create(); the scheduler keeps the model's instances.
// Pool jobs hold a shared_ptr to it, so it outlives every queued request.
// Thread-safety: Enqueue may be called from any thread.
#pragma once

#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "backends/backend.h"
#include "core/infer_request.h"
#include "scheduler/thread_pool.h"

namespace mm {

class ModelScheduler : public std::enable_shared_from_this<ModelScheduler> {
 public:
  static std::shared_ptr<ModelScheduler> Create(
      std::vector<std::unique_ptr<ModelInstance>> instances, ThreadPool* pool);

  // Queues `request`; `done` is called exactly once, on a pool thread, with the
  // response (model_name, model_version and id are copied from the request).
  void Enqueue(std::unique_ptr<InferRequest> request, InferCallback done);

  // Requests queued or executing right now.
  size_t pending() const;

 private:
  struct Work {
    std::unique_ptr<InferRequest> request;
    InferCallback done;
  };
  ModelScheduler(std::vector<std::unique_ptr<ModelInstance>> instances, ThreadPool* pool);
  void RunOne(ModelInstance* instance);

  ThreadPool* const pool_;
  const std::vector<std::unique_ptr<ModelInstance>> instances_;

  mutable std::mutex mu_;
  std::deque<Work> queue_;            // guarded by mu_
  std::vector<ModelInstance*> idle_;  // guarded by mu_
  size_t executing_ = 0;              // guarded by mu_
};

}  // namespace mm
