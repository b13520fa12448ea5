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
// contract). `service` and `metrics` must outlive every host made.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
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

// The host of one model version. `metrics` may be null: metric calls are
// then UNIMPLEMENTED, saying the server has no metrics endpoint.
std::shared_ptr<ModelHost> MakeServiceModelHost(InferenceService* service, CustomMetrics* metrics,
                                                ModelHostCaller caller);

// What the lifecycle calls per model version (ModelManager::Options::host_factory).
using ModelHostFactoryFn = std::function<std::shared_ptr<ModelHost>(
    std::string_view repository, const std::string& model, int64_t version)>;

// A factory over `*service` (set once the service exists; before, it makes
// no host) and `metrics` (may be null).
ModelHostFactoryFn ModelHostFactory(std::shared_ptr<InferenceService*> service,
                                    CustomMetrics* metrics);

}  // namespace mm
