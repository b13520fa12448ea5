// The backend extension point: how a framework turns a model version on disk
// into instances that execute requests.
//
// Contract:
//  1. Backend::Load is called on a loader thread, never on the request path.
//     On success the caller owns the LoadedModel; on failure nothing is left
//     behind and the Status names the model, the file and what was wrong.
//  2. `config` in LoadSpec is the user's config (possibly empty when the
//     repository has no config.pbtxt). LoadedModel::config is the *complete*
//     config: inputs, outputs and max_batch_size filled in from the model
//     (Triton's auto-complete). A user config that contradicts the model is a
//     load error naming both sides.
//  3. A ModelInstance executes one request at a time; different instances of
//     one model may execute concurrently. Execute receives requests already
//     validated against LoadedModel::config (names, dtypes, shapes, sizes).
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/infer_request.h"
#include "core/status.h"
#include "model_config.pb.h"

namespace mm {

class ModelInstance {
 public:
  virtual ~ModelInstance() = default;
  // Runs `request` and fills `response.outputs` (only the requested outputs,
  // or all when none are requested). Output tensors may point into backend
  // memory kept alive by Tensor::owner.
  virtual Status Execute(const InferRequest& request, InferResponse& response) = 0;

  // For a model whose LoadedModel::batch_as_list is set: executes a batch
  // given as its requests, unmerged (Triton's Python backend hands
  // `execute` the list of queued requests). The three spans have the same
  // size, at least 1; the call fills responses[i] for each request it
  // answers and sets results[i] (OK, or that request's own error). A non-OK
  // return fails every request of the batch (results are then ignored).
  // The default runs Execute on each request in turn.
  virtual Status ExecuteList(std::span<const InferRequest* const> requests,
                             std::span<InferResponse* const> responses, std::span<Status> results) {
    for (size_t i = 0; i < requests.size(); ++i) results[i] = Execute(*requests[i], *responses[i]);
    return OkStatus();
  }
};

struct LoadedModel {
  inference::ModelConfig config;                          // complete, validated
  std::vector<std::unique_ptr<ModelInstance>> instances;  // at least one
  // Memory the model holds outside this process (its worker processes'
  // resident memory), measured after the load; 0 for an in-process model,
  // whose footprint the lifecycle measures itself.
  uint64_t external_bytes = 0;
  // Whether an execution's cost is bounded by its request's size, so the
  // scheduler may run a small request on the caller's (a transport's I/O)
  // thread: its inline fast path. Leave false for anything whose run can take
  // long whatever the request's size: a model in a worker process (the worker
  // may stop or hang), a graph whose cost depends on its inputs' values
  // (loops, data-dependent shapes). A transport thread stuck in one execution
  // stalls every connection it serves.
  bool inline_safe = false;
  // Whether a dynamic batch reaches the instances as a list of requests
  // (ModelInstance::ExecuteList) rather than merged into one request along
  // dim 0 (Execute). The scheduler forms batches the same way either way.
  bool batch_as_list = false;
};

struct LoadSpec {
  std::string model_name;
  int64_t version = 0;
  std::filesystem::path model_dir;    // <repo>/<model>
  std::filesystem::path version_dir;  // <repo>/<model>/<version>
  inference::ModelConfig config;      // user config; name filled in
  bool has_config = false;            // whether config.pbtxt existed
  // Which backend loads the model: ResolvedBackend::platform (registry.h),
  // the name a worker process finds its backend by.
  std::string platform;
  // For models that can fail after loading (one in a worker process): called
  // with a non-OK status naming the cause when the model stops serving, and
  // with OK when it serves again. From any thread, never during Load; it must
  // not block. Empty: nobody listens.
  std::function<void(const Status&)> on_health;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual StatusOr<std::unique_ptr<LoadedModel>> Load(const LoadSpec& spec) = 0;
};

}  // namespace mm
