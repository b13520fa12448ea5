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
//  4. A decoupled model (config.model_transaction_policy.decoupled) is run
//     through ExecuteDecoupled, never Execute: it answers each request
//     through its ResponseSender, possibly after the call returned and from
//     any thread. The instance takes its next execution once the call
//     returns (Triton's rule), so a model that answers later must not block
//     in it.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backends/model_host.h"
#include "core/infer_request.h"
#include "core/status.h"
#include "model_config.pb.h"

namespace mm {

// How a decoupled model answers one request (Triton's response factory):
// zero or more responses, then the final flag, exactly once. Made by the
// scheduler, handed to ModelInstance::ExecuteDecoupled; the instance keeps the
// shared_ptr as long as it answers (the request lives in it till then).
//
// Contract:
//  1. Send may be called from any thread; calls for one request are
//     serialized by the sender (one at a time, in call order). It never
//     blocks on the client: a transport queues what it cannot write yet.
//  2. Send(response, false) sends one response (an error StatusOr: one failed
//     response; the request goes on). Send(response, true) sends the last one
//     and completes the request; Send(nullptr, true) completes it without a
//     response (TRITONSERVER_RESPONSE_COMPLETE_FINAL alone); Send(error, true)
//     completes it with that error. After the final, Send returns
//     FAILED_PRECONDITION and sends nothing.
//  3. The request is released (with the transport buffer its inputs view)
//     when the final is sent. Dropping the last reference without a final
//     completes the request with INTERNAL naming the model.
//  4. cancelled(): the client went away (Triton's IsCancelled); the model
//     should stop and send the final (e.g. Send(Cancelled(...), true)).
//     Responses sent after that are dropped by the transport.
//  5. A sender holds no reference to its model's scheduler: the last
//     reference to a model may be dropped while a sender still lives, so an
//     instance must not join, in its destructor, a thread that is the one
//     destroying it (an instance's answering thread may send the final that
//     lets the lifecycle drop the model).
class ResponseSender {
 public:
  virtual ~ResponseSender() = default;
  virtual const InferRequest& request() const = 0;
  virtual Status Send(StatusOr<std::unique_ptr<InferResponse>> response, bool final) = 0;
  virtual bool cancelled() const = 0;
};

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

  // For a decoupled model: starts answering each sender's request (a batch
  // of them when the model batches; one otherwise; at least 1). A non-OK
  // return completes, with that error, every request not yet completed; an
  // OK return means the instance answers each request through its sender,
  // now or later. The default refuses: the backend does not support
  // decoupled models.
  virtual Status ExecuteDecoupled(std::span<const std::shared_ptr<ResponseSender>> senders) {
    return Unimplemented("model '" + senders.front()->request().model_name +
                         "' is configured decoupled (model_transaction_policy), but its backend "
                         "answers one response per request; set decoupled: false");
  }
};

struct LoadedModel {
  inference::ModelConfig config;                          // complete, validated
  std::vector<std::unique_ptr<ModelInstance>> instances;  // at least one
  // Memory the model holds outside this process (its worker processes'
  // resident memory), measured after the load; 0 for an in-process model,
  // whose footprint the lifecycle measures itself.
  uint64_t external_bytes = 0;
  // The model's exact size in this process when its framework's library
  // reports it (a tree ensemble's: the library's own size of its trees,
  // counted once however many instances share it); the lifecycle then
  // charges this instead of the heap growth it measures across the load.
  // 0: unknown, the lifecycle measures.
  uint64_t model_bytes = 0;
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
  // Whether the instances answer through ExecuteDecoupled although the model
  // is not decoupled: an execution only starts its requests' work elsewhere
  // (an ensemble's steps, on their own models), and each request completes
  // later with one final response whose timing (queue_ns, timing's stages)
  // the instance fills in: ModelSchedulerConfig::asynchronous.
  bool asynchronous = false;
  // Executions one instance takes at once: more than 1 only for an
  // asynchronous instance that keeps no state per execution.
  size_t executions_per_instance = 1;
  // Decoupled models: config.model_transaction_policy.decoupled (the config
  // is the one place it is said); the scheduler then runs ExecuteDecoupled.
};

// A model an ensemble's step runs (LoadSpec::composing): as the step names it
// (version -1: the newest) and the complete config of the copy serving it.
struct ComposingModel {
  std::string name;
  int64_t version = -1;
  inference::ModelConfig config;
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
  // What the model may ask of the server (model_host.h: BLS calls, custom
  // metrics), for this model version; null when nothing hosts such calls
  // (a backend then refuses them with UNAVAILABLE saying so). In a worker
  // process, the isolation room's host, which carries each call to the
  // server's.
  std::shared_ptr<ModelHost> host;
  // Triton's names of the instances this load makes, in order
  // (`<group name>_<index in the group>`; a group's name defaults to
  // `<model>_<group index>`). Empty: the backend names them from its
  // config's groups. (A worker loads one instance of many: it names it.)
  std::vector<std::string> instance_names;
  // An ensemble's (config.ensemble_scheduling): the models its steps run,
  // each READY when the load began (the lifecycle loads them first), found
  // where the ensemble's tenant finds models. A step model that is missing
  // here does not exist for that tenant. Empty for every other model.
  std::vector<ComposingModel> composing;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual StatusOr<std::unique_ptr<LoadedModel>> Load(const LoadSpec& spec) = 0;

  // Optional: called in the server on a loader thread before a load (before
  // its worker processes start, so outside their start timeout), to make on
  // local disk what the load needs and may take long to make: the Python
  // backend makes an MLflow model's environment here (--mlflow-create-env).
  // `progress` tells the model's index entry what it is doing. An error
  // fails the load as Load's would. Default: nothing to prepare.
  virtual Status Prepare(const LoadSpec& /*spec*/,
                         const std::function<void(std::string)>& /*progress*/) {
    return OkStatus();
  }
};

}  // namespace mm
