#include "backends/ensemble/ensemble_backend.h"

#include <algorithm>
#include <variant>

#include "backends/ensemble/ensemble_plan.h"
#include "backends/registry.h"
#include "core/steady_time.h"
#include "core/thread_annotations.h"

namespace mm {

namespace {

// The request's "timeout" (µs), when it carries a positive integer one.
int64_t TimeoutUs(const Parameters& parameters) {
  auto it = parameters.find("timeout");
  if (it == parameters.end()) return 0;
  if (const auto* v = std::get_if<int64_t>(&it->second)) return std::max<int64_t>(*v, 0);
  if (const auto* d = std::get_if<double>(&it->second)) {
    return *d > 0 ? static_cast<int64_t>(*d) : 0;
  }
  return 0;
}

// One ensemble request under way: its tensors, the steps still to run, and
// how they went. Shared by the callbacks of its steps; a step's request
// keeps it (and so the ensemble's request, whose buffer the first tensors
// view) alive as its `body`.
class EnsembleRun final : public std::enable_shared_from_this<EnsembleRun> {
 public:
  EnsembleRun(std::shared_ptr<const EnsemblePlan> plan, std::shared_ptr<ModelHost> host,
              std::shared_ptr<ResponseSender> sender)
      : plan_(std::move(plan)),
        host_(std::move(host)),
        sender_(std::move(sender)),
        ensemble_(plan_->ensemble),
        tensors_(plan_->tensors.size()),
        waiting_(plan_->steps.size()) {
    for (size_t i = 0; i < plan_->steps.size(); ++i) waiting_[i] = plan_->steps[i].waits_for;
    steps_.reserve(plan_->steps.size());
  }

  void Start() {
    const InferRequest& request = sender_->request();
    if (const int64_t us = TimeoutUs(request.parameters); us > 0) {
      deadline_ns_ = (request.received_ns > 0 ? request.received_ns : SteadyNowNs()) + us * 1000;
    }
    // The client going away cancels the steps under way (each has a
    // cancellation of its own: a queue holds one handler per cancellation).
    if (request.cancellation != nullptr) {
      request.cancellation->OnCancel([weak = weak_from_this()] {
        if (auto self = weak.lock()) self->CancelSteps();
      });
    }
    std::vector<int> ready;
    {
      MutexLock lock(mu_);
      for (int t : plan_->inputs) {
        const std::string& name = plan_->tensors[t];
        auto input = std::find_if(request.inputs.begin(), request.inputs.end(),
                                  [&](const Tensor& in) { return in.name == name; });
        if (input == request.inputs.end()) {
          lock.Unlock();
          return Fail(InvalidArgument("ensemble '" + ensemble_ + "': input '" + name +
                                      "' is missing; every step reading it needs it"));
        }
        tensors_[t] = *input;
        ProducedLocked(t, &ready);
      }
    }
    Launch(ready);
  }

 private:
  // Tensor `t` exists now: the steps it completes join `ready`.
  void ProducedLocked(int t, std::vector<int>* ready) MM_REQUIRES(mu_) {
    for (int step : plan_->consumers[t]) {
      if (--waiting_[step] == 0) ready->push_back(step);
    }
  }

  // A tensor a ready step reads: written under mu_ before the step became
  // ready (which the launcher learnt under mu_), and never again.
  const Tensor& Produced(int t) const MM_NO_THREAD_SAFETY_ANALYSIS { return tensors_[t]; }

  // Tensor `t` as an output of `response`, under the ensemble's name. (An
  // output requested twice is copied, not moved, the second time.)
  void AddOutputLocked(InferResponse& response, int t) MM_REQUIRES(mu_) {
    Tensor& out = response.outputs.emplace_back(tensors_[t]);
    out.name = plan_->tensors[t];
    out.parameters.clear();
  }

  void Launch(const std::vector<int>& steps) {
    for (int s : steps) {
      if (!LaunchStep(s)) return;
    }
  }

  // Sends step `s` to its model; false when the request has failed instead.
  bool LaunchStep(int s) {
    const EnsemblePlan::Step& step = plan_->steps[s];
    const InferRequest& request = sender_->request();
    const int64_t now = SteadyNowNs();
    if (sender_->cancelled()) {
      Fail(Cancelled("ensemble '" + ensemble_ + "': the request was cancelled before " +
                     StepLabel(s, step.model_name) + " started"));
      return false;
    }
    if (deadline_ns_ > 0 && now >= deadline_ns_) {
      Fail(DeadlineExceeded("ensemble '" + ensemble_ + "': the request's timeout passed before " +
                            StepLabel(s, step.model_name) + " could start"));
      return false;
    }
    auto call = std::make_unique<InferRequest>();
    call->model_name = step.model_name;
    call->model_version = step.model_version;
    call->id = request.id;
    call->parameters = request.parameters;
    if (deadline_ns_ > 0) {
      call->parameters["timeout"] = std::max<int64_t>(1, (deadline_ns_ - now) / 1000);
    }
    call->inputs.reserve(step.inputs.size());
    for (const EnsemblePlan::Binding& b : step.inputs) {
      Tensor& t = call->inputs.emplace_back(Produced(b.tensor));
      t.name = b.name;
      t.parameters.clear();
    }
    call->outputs.reserve(step.outputs.size());
    for (const EnsemblePlan::Binding& b : step.outputs) call->outputs.push_back({b.name, {}});
    call->body = shared_from_this();
    if (request.cancellation != nullptr) {
      MutexLock lock(mu_);
      call->cancellation = step_cancellations_.emplace_back(std::make_shared<Cancellation>());
    }
    host_->InferStep(std::move(call),
                     [self = shared_from_this(), s, now](
                         StatusOr<std::unique_ptr<InferResponse>> response, bool final) {
                       if (final) self->StepDone(s, now, std::move(response));
                     });
    return true;
  }

  void StepDone(int s, int64_t start_ns, StatusOr<std::unique_ptr<InferResponse>> response) {
    const EnsemblePlan::Step& step = plan_->steps[s];
    if (response.ok() && *response == nullptr) {
      response = Internal("it answered without a response");
    }
    if (!response.ok()) {
      return Fail(Status(response.status().code(), "ensemble '" + ensemble_ + "' " +
                                                       StepLabel(s, step.model_name) + ": " +
                                                       response.status().message()));
    }
    InferResponse& r = **response;
    std::vector<int> ready;
    bool complete = false;
    {
      MutexLock lock(mu_);
      if (failed_) return;
      for (const EnsemblePlan::Binding& b : step.outputs) {
        auto out = std::find_if(r.outputs.begin(), r.outputs.end(),
                                [&](const Tensor& t) { return t.name == b.name; });
        if (out == r.outputs.end()) {
          lock.Unlock();
          return Fail(Internal("ensemble '" + ensemble_ + "' " + StepLabel(s, step.model_name) +
                               ": the model did not return output '" + b.name + "'"));
        }
        tensors_[b.tensor] = std::move(*out);
        ProducedLocked(b.tensor, &ready);
      }
      StepTiming& timing = steps_.emplace_back();
      timing.step = s + 1;
      timing.model = step.model_name;
      timing.version = std::move(r.model_version);
      timing.start_ns = start_ns;
      timing.end_ns = SteadyNowNs();
      timing.queue_ns = r.queue_ns;
      timing.timing = r.timing;
      queue_ns_ += r.queue_ns;
      input_ns_ += r.timing.input_ns;
      infer_ns_ += r.timing.infer_ns;
      output_ns_ += r.timing.output_ns;
      complete = steps_.size() == plan_->steps.size();
    }
    if (complete) return Complete();
    Launch(ready);
  }

  void Complete() {
    const InferRequest& request = sender_->request();
    auto response = std::make_unique<InferResponse>();
    {
      MutexLock lock(mu_);
      if (failed_) return;
      // The requested outputs (the service checked their names), else all,
      // under the ensemble's names.
      if (request.outputs.empty()) {
        response->outputs.reserve(plan_->outputs.size());
        for (int t : plan_->outputs) AddOutputLocked(*response, t);
      } else {
        response->outputs.reserve(request.outputs.size());
        for (const RequestedOutput& wanted : request.outputs) {
          for (int t : plan_->outputs) {
            if (plan_->tensors[t] == wanted.name) AddOutputLocked(*response, t);
          }
        }
      }
      response->queue_ns = queue_ns_;
      response->timing.input_ns = input_ns_;
      response->timing.infer_ns = infer_ns_;
      response->timing.output_ns = output_ns_;
      response->steps = std::move(steps_);
    }
    (void)sender_->Send(std::move(response), /*final=*/true);
  }

  // The client went away: the steps under way are cancelled (those still
  // queued leave their queues and fail the request CANCELLED).
  void CancelSteps() {
    std::vector<std::shared_ptr<Cancellation>> steps;
    {
      MutexLock lock(mu_);
      steps = step_cancellations_;
    }
    for (const auto& c : steps) c->Cancel();
  }

  void Fail(Status status) {
    {
      MutexLock lock(mu_);
      if (failed_) return;
      failed_ = true;
    }
    (void)sender_->Send(std::move(status), /*final=*/true);
  }

  const std::shared_ptr<const EnsemblePlan> plan_;
  const std::shared_ptr<ModelHost> host_;
  const std::shared_ptr<ResponseSender> sender_;
  const std::string& ensemble_;  // the plan's name
  int64_t deadline_ns_ = 0;      // 0: none

  Mutex mu_;
  std::vector<Tensor> tensors_ MM_GUARDED_BY(mu_);  // by plan tensor; each set once
  std::vector<int> waiting_ MM_GUARDED_BY(mu_);     // per step: tensors it still waits for
  std::vector<StepTiming> steps_ MM_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Cancellation>> step_cancellations_ MM_GUARDED_BY(mu_);
  bool failed_ MM_GUARDED_BY(mu_) = false;
  int64_t queue_ns_ MM_GUARDED_BY(mu_) = 0;
  int64_t input_ns_ MM_GUARDED_BY(mu_) = 0;
  int64_t infer_ns_ MM_GUARDED_BY(mu_) = 0;
  int64_t output_ns_ MM_GUARDED_BY(mu_) = 0;
};

class EnsembleInstance final : public ModelInstance {
 public:
  EnsembleInstance(std::shared_ptr<const EnsemblePlan> plan, std::shared_ptr<ModelHost> host,
                   std::string name)
      : plan_(std::move(plan)), host_(std::move(host)), name_(std::move(name)) {}

  Status Execute(const InferRequest&, InferResponse&) override {
    return Internal("ensemble '" + name_ + "' runs only asynchronously (a scheduler defect)");
  }

  Status ExecuteDecoupled(std::span<const std::shared_ptr<ResponseSender>> senders) override {
    for (const auto& sender : senders) {
      std::make_shared<EnsembleRun>(plan_, host_, sender)->Start();
    }
    return OkStatus();
  }

 private:
  const std::shared_ptr<const EnsemblePlan> plan_;
  const std::shared_ptr<ModelHost> host_;
  const std::string name_;
};

}  // namespace

StatusOr<std::unique_ptr<LoadedModel>> EnsembleBackend::Load(const LoadSpec& spec) {
  const inference::ModelConfig& config = spec.config;
  const std::string what = "ensemble '" + spec.model_name + "'";
  if (!config.has_ensemble_scheduling()) {
    return InvalidArgument(what +
                           ": platform \"ensemble\" needs ensemble_scheduling { step [...] }");
  }
  if (config.input().empty() || config.output().empty()) {
    return InvalidArgument(what + ": an ensemble's config must declare its inputs and outputs " +
                           "(nothing is read from a model file)");
  }
  if (config.model_transaction_policy().decoupled()) {
    return InvalidArgument(what + " is decoupled (model_transaction_policy); decoupled " +
                           "ensembles are not supported");
  }
  if (spec.host == nullptr) {
    return FailedPrecondition(what + ": this server gives models no way to call other models, " +
                              "which an ensemble's steps need");
  }
  MM_ASSIGN_OR_RETURN(EnsemblePlan plan, PlanEnsemble(config, spec.composing));
  const size_t steps = plan.steps.size();
  auto loaded = std::make_unique<LoadedModel>();
  loaded->config = config;
  loaded->instances.push_back(std::make_unique<EnsembleInstance>(
      std::make_shared<const EnsemblePlan>(std::move(plan)), spec.host, spec.model_name));
  loaded->asynchronous = true;
  loaded->inline_safe = true;  // an execution only sends its first steps
  const uint32_t inflight = config.ensemble_scheduling().max_inflight_requests();
  loaded->executions_per_instance = inflight > 0 ? inflight : kDefaultEnsembleInflight;
  // Its plan: small, and no model file.
  loaded->model_bytes = sizeof(EnsemblePlan) + 256 * steps;
  return loaded;
}

Status RegisterEnsembleBackend(BackendRegistry& registry) {
  return registry.Register(
      {.name = std::string(kEnsemblePlatform),
       .platforms = {std::string(kEnsemblePlatform)},
       .default_model_file = "",
       .create = [](const BackendSettings& settings) -> StatusOr<std::unique_ptr<Backend>> {
         if (!settings.empty()) {
           return InvalidArgument("backend 'ensemble' takes no settings; got '" +
                                  settings.begin()->first + "'");
         }
         return std::unique_ptr<Backend>(new EnsembleBackend());
       },
       .reports_size = true,
       .in_process_only = true});
}

}  // namespace mm
