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

// One ensemble request under way: its flows of tensors, the steps still to
// run, and how they went. Shared by the callbacks of its steps; a step's
// request keeps it (and so the ensemble's request, whose buffer the first
// tensors view) alive as its `body`.
//
// Flows: flow 0 runs every step but those after a decoupled step (all of
// them when there is none). Each response of the decoupled step starts a
// flow of its own over the steps after it, from a copy of flow 0's tensors
// (views) and that response's outputs; a finished flow is one response of
// the ensemble. Without a decoupled step, flow 0's end is the answer.
class EnsembleRun final : public std::enable_shared_from_this<EnsembleRun> {
 public:
  EnsembleRun(std::shared_ptr<const EnsemblePlan> plan, std::shared_ptr<ModelHost> host,
              std::shared_ptr<ResponseSender> sender)
      : plan_(std::move(plan)),
        host_(std::move(host)),
        sender_(std::move(sender)),
        ensemble_(plan_->ensemble) {
    MutexLock lock(mu_);
    Flow& root = flows_.emplace_back();
    root.tensors.resize(plan_->tensors.size());
    root.have.assign(plan_->tensors.size(), false);
    root.waiting.resize(plan_->steps.size());
    for (size_t i = 0; i < plan_->steps.size(); ++i) {
      root.waiting[i] = plan_->steps[i].waits_for;
      if (!AfterDecoupled(static_cast<int>(i))) ++root.left;
    }
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
        ProducedLocked(0, t, *input, &ready);
      }
    }
    Launch(0, ready);
  }

 private:
  struct Flow {
    std::vector<Tensor> tensors;  // by plan tensor; each set once
    std::vector<bool> have;
    std::vector<int> waiting;  // per step: tensors it still waits for
    size_t left = 0;           // its steps not finished
    bool done = false;         // answered (or failed)
  };

  bool AfterDecoupled(int step) const {
    return plan_->decoupled_step >= 0 && plan_->after_decoupled[step];
  }

  // Tensor `t` exists now in `flow`: the flow's steps it completes join `ready`.
  void ProducedLocked(size_t flow, int t, Tensor tensor, std::vector<int>* ready) MM_REQUIRES(mu_) {
    Flow& f = flows_[flow];
    f.tensors[t] = std::move(tensor);
    f.have[t] = true;
    for (int step : plan_->consumers[t]) {
      // Flow 0 runs the steps before and beside the decoupled one; the
      // others, the steps after it.
      if (AfterDecoupled(step) != (flow != 0)) continue;
      if (--f.waiting[step] == 0) ready->push_back(step);
    }
  }

  // A tensor a ready step reads: written under mu_ before the step became
  // ready (which the launcher learnt under mu_), and never again; flows are
  // never removed (their vector only grows under mu_, so index, not pointer).
  Tensor Produced(size_t flow, int t) MM_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return flows_[flow].tensors[t];
  }

  // The flow's outputs, under the ensemble's names: the requested ones (the
  // service checked their names), else all.
  std::unique_ptr<InferResponse> ResponseLocked(size_t flow) MM_REQUIRES(mu_) {
    const InferRequest& request = sender_->request();
    auto response = std::make_unique<InferResponse>();
    if (request.outputs.empty()) {
      response->outputs.reserve(plan_->outputs.size());
      for (int t : plan_->outputs) AddOutputLocked(*response, flow, t);
    } else {
      response->outputs.reserve(request.outputs.size());
      for (const RequestedOutput& wanted : request.outputs) {
        for (int t : plan_->outputs) {
          if (plan_->tensors[t] == wanted.name) AddOutputLocked(*response, flow, t);
        }
      }
    }
    return response;
  }

  void AddOutputLocked(InferResponse& response, size_t flow, int t) MM_REQUIRES(mu_) {
    Tensor& out = response.outputs.emplace_back(flows_[flow].tensors[t]);
    out.name = plan_->tensors[t];
    out.parameters.clear();
  }

  void Launch(size_t flow, const std::vector<int>& steps) {
    for (int s : steps) {
      if (!LaunchStep(flow, s)) return;
    }
  }

  // Sends step `s` of `flow` to its model; false when the request has failed instead.
  bool LaunchStep(size_t flow, int s) {
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
      Tensor& t = call->inputs.emplace_back(Produced(flow, b.tensor));
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
                     [self = shared_from_this(), flow, s, now](
                         StatusOr<std::unique_ptr<InferResponse>> response, bool final) {
                       self->StepAnswered(flow, s, now, std::move(response), final);
                     });
    return true;
  }

  void StepAnswered(size_t flow, int s, int64_t start_ns,
                    StatusOr<std::unique_ptr<InferResponse>> response, bool final) {
    const EnsemblePlan::Step& step = plan_->steps[s];
    if (s == plan_->decoupled_step) return DecoupledAnswered(std::move(response), final);
    if (!final) return;  // (only the decoupled step streams)
    if (response.ok() && *response == nullptr)
      response = Internal("it answered without a response");
    if (!response.ok()) {
      return FailFlow(
          flow, Status(response.status().code(), Label(s) + ": " + response.status().message()));
    }
    InferResponse& r = **response;
    std::vector<int> ready;
    std::unique_ptr<InferResponse> answer;
    bool finished = false;
    {
      MutexLock lock(mu_);
      if (failed_ || flows_[flow].done) return;
      if (Status taken = TakeOutputsLocked(flow, step, r, &ready); !taken.ok()) {
        lock.Unlock();
        return FailFlow(flow, Internal(Label(s) + ": " + taken.message()));
      }
      // (A decoupled ensemble's responses carry no step timing.)
      if (plan_->decoupled_step < 0) RecordLocked(s, start_ns, r);
      Flow& f = flows_[flow];
      if (--f.left == 0) {
        f.done = true;
        finished = true;
        if (flow != 0 || plan_->decoupled_step < 0) answer = ResponseLocked(flow);
        if (flow != 0) --flows_open_;
        if (flow == 0 && plan_->decoupled_step < 0) finished_ = true;
      }
    }
    if (!finished) return Launch(flow, ready);
    if (flow == 0) {
      if (plan_->decoupled_step < 0) return Answer(std::move(answer), /*final=*/true);
      return MaybeFinish();
    }
    (void)sender_->Send(std::move(answer), /*final=*/false);
    MaybeFinish();
  }

  // "ensemble 'e' step 2 (model 'm')", for an error (never built on success).
  std::string Label(int s) const {
    return "ensemble '" + ensemble_ + "' " + StepLabel(s, plan_->steps[s].model_name);
  }

  // A response (or the final) of the decoupled step: each response starts a
  // flow through the steps after it.
  void DecoupledAnswered(StatusOr<std::unique_ptr<InferResponse>> response, bool final) {
    const int d = plan_->decoupled_step;
    if (!response.ok()) {
      Status failed(response.status().code(), Label(d) + ": " + response.status().message());
      if (final) return Fail(std::move(failed));
      (void)sender_->Send(std::move(failed), /*final=*/false);  // one failed response
      return;
    }
    size_t flow = 0;
    std::vector<int> ready;
    if (*response != nullptr) {
      MutexLock lock(mu_);
      if (failed_) return;
      flow = flows_.size();
      Flow& f = flows_.emplace_back();
      const Flow& root = flows_[0];
      f.tensors = root.tensors;
      f.have = root.have;
      f.waiting.assign(plan_->steps.size(), 0);
      for (size_t i = 0; i < plan_->steps.size(); ++i) {
        if (!AfterDecoupled(static_cast<int>(i))) continue;
        ++f.left;
        std::vector<int> reads;
        for (const auto& b : plan_->steps[i].inputs) {
          if (!f.have[b.tensor] && std::find(reads.begin(), reads.end(), b.tensor) == reads.end()) {
            reads.push_back(b.tensor);
          }
        }
        f.waiting[i] = static_cast<int>(reads.size());
      }
      ++flows_open_;
      Status taken = TakeOutputsLocked(flow, plan_->steps[d], **response, &ready);
      if (!taken.ok()) {
        flows_[flow].done = true;
        --flows_open_;
        lock.Unlock();
        (void)sender_->Send(Internal(Label(d) + ": " + taken.message()), /*final=*/false);
        ready.clear();
      } else if (flows_[flow].left == 0) {  // (no step after it: the response is the flow)
        flows_[flow].done = true;
        --flows_open_;
        auto answer = ResponseLocked(flow);
        lock.Unlock();
        (void)sender_->Send(std::move(answer), /*final=*/false);
        ready.clear();
      }
    }
    if (!ready.empty()) Launch(flow, ready);
    if (final) {
      {
        MutexLock lock(mu_);
        if (failed_) return;
        decoupled_final_ = true;
        --flows_[0].left;
      }
      MaybeFinish();
    }
  }

  // Sends the final flag once flow 0, the decoupled step's final and every
  // flow it started are done.
  void MaybeFinish() {
    {
      MutexLock lock(mu_);
      if (failed_ || finished_ || !decoupled_final_ || flows_[0].left != 0 || flows_open_ != 0) {
        return;
      }
      finished_ = true;
    }
    Answer(nullptr, /*final=*/true);
  }

  // Stores the outputs `step` answered as tensors of `flow`; the steps they
  // complete join `ready`.
  Status TakeOutputsLocked(size_t flow, const EnsemblePlan::Step& step, InferResponse& r,
                           std::vector<int>* ready) MM_REQUIRES(mu_) {
    for (const EnsemblePlan::Binding& b : step.outputs) {
      auto out = std::find_if(r.outputs.begin(), r.outputs.end(),
                              [&](const Tensor& t) { return t.name == b.name; });
      if (out == r.outputs.end())
        return Internal("the model did not return output '" + b.name + "'");
      ProducedLocked(flow, b.tensor, std::move(*out), ready);
    }
    return OkStatus();
  }

  void RecordLocked(int s, int64_t start_ns, InferResponse& r) MM_REQUIRES(mu_) {
    StepTiming& timing = steps_.emplace_back();
    timing.step = s + 1;
    timing.model = plan_->steps[s].model_name;
    timing.version = r.model_version;
    timing.start_ns = start_ns;
    timing.end_ns = SteadyNowNs();
    timing.queue_ns = r.queue_ns;
    timing.timing = r.timing;
    queue_ns_ += r.queue_ns;
    input_ns_ += r.timing.input_ns;
    infer_ns_ += r.timing.infer_ns;
    output_ns_ += r.timing.output_ns;
  }

  // The last answer: the request's one response (with the steps' timing),
  // or a decoupled ensemble's final flag alone.
  void Answer(std::unique_ptr<InferResponse> response, bool final) {
    if (response != nullptr) {
      MutexLock lock(mu_);
      response->queue_ns = queue_ns_;
      response->timing.input_ns = input_ns_;
      response->timing.infer_ns = infer_ns_;
      response->timing.output_ns = output_ns_;
      response->steps = std::move(steps_);
    }
    (void)sender_->Send(std::move(response), final);
  }

  // A step of `flow` failed: a flow of the decoupled step's is one failed
  // response (the request goes on); flow 0's fails the request.
  void FailFlow(size_t flow, Status status) {
    if (flow == 0) return Fail(std::move(status));
    {
      MutexLock lock(mu_);
      if (failed_ || flows_[flow].done) return;
      flows_[flow].done = true;
      --flows_open_;
    }
    (void)sender_->Send(std::move(status), /*final=*/false);
    MaybeFinish();
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
      if (failed_ || finished_) return;
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
  std::vector<Flow> flows_ MM_GUARDED_BY(mu_);  // [0]: the request's own
  size_t flows_open_ MM_GUARDED_BY(mu_) = 0;    // the decoupled step's, not done
  bool decoupled_final_ MM_GUARDED_BY(mu_) = false;
  bool finished_ MM_GUARDED_BY(mu_) = false;
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
