#include "service/model_host_service.h"

#include <utility>

namespace mm {

namespace {

// Forwards a decoupled callee's non-final responses to the caller. Send is
// never concurrent for one request and never after its `done` began
// (ResponseStream's contract), so the callback needs no lock here.
class HostStream final : public ResponseStream {
 public:
  explicit HostStream(std::shared_ptr<HostInferCallback> on_response)
      : on_response_(std::move(on_response)) {}
  void Send(const InferRequest&, StatusOr<std::unique_ptr<InferResponse>> response) override {
    if (response.ok() && *response != nullptr) (*response)->receipt.Settle(true);
    (*on_response_)(std::move(response), /*final=*/false);
  }

 private:
  const std::shared_ptr<HostInferCallback> on_response_;
};

CustomMetricKind KindOf(MetricKind kind) {
  switch (kind) {
    case MetricKind::kGauge:
      return CustomMetricKind::kGauge;
    case MetricKind::kHistogram:
      return CustomMetricKind::kHistogram;
    case MetricKind::kCounter:
    default:
      return CustomMetricKind::kCounter;
  }
}

class ServiceModelHost final : public ModelHost {
 public:
  ServiceModelHost(std::shared_ptr<HostedService> service, CustomMetrics* metrics,
                   ModelHostCaller caller)
      : service_(std::move(service)),
        caller_(std::move(caller)),
        metrics_(metrics != nullptr
                     ? metrics->ForModel(caller_.model, std::to_string(caller_.version))
                     : nullptr) {
    // The caller's scope when no tenant lists its repository.
    unlisted_ = std::make_shared<Tenant>();
    unlisted_->id = "";
    unlisted_->repositories = {caller_.repository};
    unlisted_->repository_keys = {caller_.repository};
    unlisted_->role = TenantRole::kUser;
  }

  void Infer(std::unique_ptr<InferRequest> request, HostInferCallback on_response) override {
    Call(std::move(request), std::move(on_response), /*step=*/false);
  }

  void InferStep(std::unique_ptr<InferRequest> request, HostInferCallback on_response) override {
    Call(std::move(request), std::move(on_response), /*step=*/true);
  }

  // A BLS call, or (`step`) an ensemble's step, admitted with its ensemble's request.
  void Call(std::unique_ptr<InferRequest> request, HostInferCallback on_response, bool step) {
    // A call's tensors travel in the call itself: naming a client's shared
    // memory region would read or write memory the model was never given.
    for (const Tensor& input : request->inputs) {
      if (!input.parameters.empty()) {
        return on_response(InvalidArgument("BLS call to model '" + request->model_name +
                                           "': input '" + input.name +
                                           "' has tensor parameters; a BLS call's tensors "
                                           "carry their data and no parameters"),
                           true);
      }
    }
    for (const RequestedOutput& output : request->outputs) {
      if (!output.parameters.empty()) {
        return on_response(InvalidArgument("BLS call to model '" + request->model_name +
                                           "': requested output '" + output.name +
                                           "' has parameters; a BLS call's outputs come back "
                                           "in its response and take no parameters"),
                           true);
      }
    }
    auto callback = std::make_shared<HostInferCallback>(std::move(on_response));
    // A decoupled callee's responses come as they are sent (an ensemble's
    // decoupled step's too).
    request->stream = std::make_shared<HostStream>(callback);
    const std::string model = request->model_name;
    auto answer = [callback](StatusOr<std::unique_ptr<InferResponse>> result) {
      if (result.ok()) {
        (*result)->receipt.Settle(true);
        // The final flag alone: no response of its own.
        if ((*result)->complete_only) result = std::unique_ptr<InferResponse>();
      }
      (*callback)(std::move(result), /*final=*/true);
    };
    const bool open = service_->With([&](InferenceService& service) {
      if (step) {
        service.InferAdmitted(*Caller(service), std::move(request), std::move(answer));
      } else {
        service.Infer(*Caller(service), std::move(request), std::move(answer));
      }
    });
    if (!open) {
      (*callback)(Unavailable("BLS call to model '" + model +
                              "': the server is not serving (it is starting or stopping)"),
                  true);
    }
  }

  bool ModelReady(std::string_view name, std::string_view version) override {
    bool ready = false;
    service_->With([&](InferenceService& service) {
      ready = service.ModelReady(*Caller(service), name, version);
    });
    return ready;
  }

  StatusOr<uint64_t> CreateMetric(const MetricSpec& spec) override {
    MM_RETURN_IF_ERROR(HasMetrics());
    CustomMetricSpec s;
    s.family = spec.family;
    s.description = spec.description;
    s.kind = KindOf(spec.kind);
    s.labels = spec.labels;
    s.buckets = spec.buckets;
    if (spec.kind != MetricKind::kCounter && spec.kind != MetricKind::kGauge &&
        spec.kind != MetricKind::kHistogram) {
      return InvalidArgument("metric family '" + spec.family + "': unknown kind " +
                             std::to_string(static_cast<int>(spec.kind)) +
                             "; expected COUNTER (0), GAUGE (1) or HISTOGRAM (2)");
    }
    return metrics_->Create(s);
  }

  Status UpdateMetric(uint64_t id, MetricOp op, double value) override {
    MM_RETURN_IF_ERROR(HasMetrics());
    switch (op) {
      case MetricOp::kIncrement:
        return metrics_->Update(id, CustomMetricOp::kIncrement, value);
      case MetricOp::kSet:
        return metrics_->Update(id, CustomMetricOp::kSet, value);
      case MetricOp::kObserve:
        return metrics_->Update(id, CustomMetricOp::kObserve, value);
    }
    return InvalidArgument("unknown metric operation " + std::to_string(static_cast<int>(op)) +
                           "; expected increment (0), set (1) or observe (2)");
  }

  StatusOr<double> MetricValue(uint64_t id) override {
    MM_RETURN_IF_ERROR(HasMetrics());
    return metrics_->Value(id);
  }

  void ReleaseMetric(uint64_t id) override {
    if (metrics_ != nullptr) metrics_->Release(id);
  }

 private:
  // The tenant the calling model's calls act as (see the header).
  std::shared_ptr<const Tenant> Caller(const InferenceService& service) const {
    const TenantRegistry& tenants = service.tenants();
    if (tenants.open()) {
      auto tenant = service.Authenticate("");
      if (tenant.ok()) return *tenant;
    }
    if (auto owner = tenants.OwnerOf(caller_.repository)) return owner;
    return unlisted_;
  }

  Status HasMetrics() const {
    if (metrics_ != nullptr) return OkStatus();
    return Unimplemented(
        "custom metrics are off in this server (it runs with --allow-metrics=false)");
  }

  const std::shared_ptr<HostedService> service_;
  const ModelHostCaller caller_;
  const std::unique_ptr<CustomMetrics::Owner> metrics_;  // null: no metrics endpoint
  std::shared_ptr<Tenant> unlisted_;
};

}  // namespace

void HostedService::Open(InferenceService* service) {
  std::unique_lock lock(mu_);
  service_ = service;
}

void HostedService::Close() {
  std::unique_lock lock(mu_);  // once the calls under way have left
  service_ = nullptr;
}

std::shared_ptr<ModelHost> MakeServiceModelHost(std::shared_ptr<HostedService> service,
                                                CustomMetrics* metrics, ModelHostCaller caller) {
  return std::make_shared<ServiceModelHost>(std::move(service), metrics, std::move(caller));
}

ModelHostFactoryFn ModelHostFactory(std::shared_ptr<HostedService> service,
                                    CustomMetrics* metrics) {
  return
      [service = std::move(service), metrics](std::string_view repository, const std::string& model,
                                              int64_t version) -> std::shared_ptr<ModelHost> {
        return MakeServiceModelHost(service, metrics, {std::string(repository), model, version});
      };
}

}  // namespace mm
