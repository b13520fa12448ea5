// The server's ModelHost (backends/model_host.h): what a loaded model version
// may ask of this server. One per model version, made by the lifecycle
// through ModelManager::Options::host_factory (main.cc sets it to
// ModelHostFactory below).
//
// BLS calls (Infer, ModelReady) run through InferenceService as a client of
// the calling model's tenant: the tenant whose repositories hold the calling
// model (TenantRegistry::OwnerOf, asked at each call, so a SIGHUP reload
// applies). Names resolve in that tenant's scope, exactly as for its clients:
// another tenant's model answers NOT_FOUND as an unknown one; the callee's
// scheduler, batching, priorities ("priority"), queue timeout ("timeout", µs,
// as the queue policy allows), on-demand loading, quotas and usage apply and
// are charged to that tenant. Two cases have no such tenant:
//  - an open server (no tenants file): the one default tenant, which sees
//    every repository, as every client of that server does;
//  - a repository no tenant lists: the call sees only the calling model's
//    own repository, and is charged to no tenant.
// A call's tensors carry their data: tensor parameters (shared memory
// regions) are refused (INVALID_ARGUMENT). A decoupled callee's responses are
// forwarded as they come (the host
// attaches a ResponseStream to every call; ordinary models never touch it).
// A response is settled as delivered (core/delivery.h) when it is handed to
// the caller.
//
// Custom metrics go to the server's CustomMetrics under the calling model's
// name and version; destroying the host (the version unloaded and its
// instances gone) removes them.
//
// Thread-safety: every method may be called concurrently (ModelHost's
// contract). `metrics` must outlive every host made; the service is reached
// through a HostedService, which the server closes before destroying it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>

#include "backends/model_host.h"
#include "observability/custom_metrics.h"
#include "service/inference_service.h"

namespace mm {

// Who is calling: the calling model version and the repository that holds it.
struct ModelHostCaller {
  std::string repository;  // ModelRepository::key()
  std::string model;
  int64_t version = 0;
};

// The service hosts call into, between Open (once it exists) and Close
// (before it is destroyed): a worker may ask at any time, even while the
// server stops. A call outside that span is answered UNAVAILABLE (a
// ModelReady: false); Close waits for the calls under way to have been
// handed to the service (Infer never blocks: not for their answers).
// Thread-safety: every method may be called concurrently.
class HostedService {
 public:
  void Open(InferenceService* service);
  void Close();

  // Runs `f(service)` while the service is open (a shared lock: calls run
  // side by side); false, without running it, otherwise.
  template <class F>
  bool With(F&& f) {
    std::shared_lock lock(mu_);
    if (service_ == nullptr) return false;
    f(*service_);
    return true;
  }

 private:
  std::shared_mutex mu_;
  InferenceService* service_ = nullptr;  // guarded by mu_
};

// The host of one model version. `metrics` may be null: metric calls are
// then UNIMPLEMENTED, saying the server has no metrics endpoint.
std::shared_ptr<ModelHost> MakeServiceModelHost(std::shared_ptr<HostedService> service,
                                                CustomMetrics* metrics, ModelHostCaller caller);

// What the lifecycle calls per model version (ModelManager::Options::host_factory).
using ModelHostFactoryFn = std::function<std::shared_ptr<ModelHost>(
    std::string_view repository, const std::string& model, int64_t version)>;

// A factory of hosts over `service` and `metrics` (may be null).
ModelHostFactoryFn ModelHostFactory(std::shared_ptr<HostedService> service, CustomMetrics* metrics);

}  // namespace mm
