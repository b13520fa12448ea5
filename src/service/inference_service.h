// InferenceService: the transport-agnostic front of the core. HTTP and gRPC
// decode their bytes, call these methods, and encode what comes back; no
// protocol logic lives anywhere else.
//
// Thread-safety: every method may be called concurrently from transport
// threads. Infer never blocks: it validates, queues, and returns; the callback
// runs later on an execution thread (or at once, on the caller's thread, when
// the request is rejected before queueing).
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/response_cache.h"
#include "core/infer_request.h"
#include "core/status.h"
#include "lifecycle/model_manager.h"
#include "service/shared_memory.h"
#include "tenancy/tenant_registry.h"

namespace mm {

struct ServerMetadata {
  std::string name;
  std::string version;
  std::vector<std::string> extensions;
};

// What GET /v2/usage reports for one tenant (tenancy/usage.h).
struct TenantUsageReport {
  std::string tenant;
  uint64_t refused = 0;                                      // requests that reached no model
  std::vector<std::pair<std::string, UsageFigures>> models;  // by model name
};

// What /v2/models/{m} reports.
struct TensorMetadata {
  std::string name;
  DataType dtype = DataType::kInvalid;
  Shape shape;  // -1 for variable dims, batch dim included when batched
};
struct ModelMetadata {
  std::string name;
  std::vector<std::string> versions;  // READY versions, ascending
  std::string platform;
  std::vector<TensorMetadata> inputs;
  std::vector<TensorMetadata> outputs;
};

class InferenceService {
 public:
  struct Options {
    ModelManager* models = nullptr;  // not owned; outlives the service
    std::string server_name = "mmserve";
    std::string server_version;
    // Who may ask (not owned; outlives the service). Null: open, as
    // TenantRegistry::Open() says.
    const TenantRegistry* tenants = nullptr;
    // Hard limits on a request's shape, checked before anything else looks
    // at its tensors: inputs plus requested outputs, and elements per input.
    size_t max_tensors_per_request = 1024;
    int64_t max_elements_per_tensor = int64_t{1} << 30;
    // Shared memory regions one tenant may hold (SharedMemoryManager::Options).
    size_t max_shm_regions_per_tenant = 128;
    // The response cache (not owned; outlives the service), for its
    // figures; null: none. Models reach it through their scope
    // (ServableModel::cache).
    const ResponseCache* response_cache = nullptr;
  };
  static StatusOr<std::unique_ptr<InferenceService>> Create(Options options);

  bool Live() const { return true; }
  // Ready once startup loading finished, until shutdown begins.
  bool Ready() const { return ready_.load(std::memory_order_acquire); }
  void SetReady(bool ready) { ready_.store(ready, std::memory_order_release); }

  const ServerMetadata& Metadata() const { return metadata_; }

  // The tenant a request's Authorization value ("Bearer KEY") names; every
  // endpoint but the health checks asks first. UNAUTHENTICATED, saying what
  // is expected, without a valid key (never when the server runs open).
  // `memo`: the connection's (TenantRegistry::Memo), or null.
  StatusOr<std::shared_ptr<const Tenant>> Authenticate(std::string_view authorization,
                                                       TenantRegistry::Memo* memo = nullptr) const;
  // Namespaces. Every method below takes the tenant asking (Authenticate)
  // and resolves model names in that tenant's repositories only (an admin:
  // in every repository; see ModelManager's Names). Two tenants may each
  // have a model of the same name, each served apart. Another tenant's
  // model answers exactly as a model that does not exist (UnknownModel,
  // NotInAnyRepository), and another tenant's repositories never change an
  // answer or show in one. An admin addresses models by their plain name; a
  // name held by several repositories (several tenants') is ambiguous for
  // it: ALREADY_EXISTS naming those repositories.
  StatusOr<ModelMetadata> GetModelMetadata(const Tenant& tenant, std::string_view name,
                                           std::string_view version) const;
  StatusOr<ModelHandle> GetModel(const Tenant& tenant, std::string_view name,
                                 std::string_view version) const;
  // True when the version (or, without one, any version) is READY.
  bool ModelReady(const Tenant& tenant, std::string_view name, std::string_view version) const;
  std::vector<ModelVersionStatus> RepositoryIndex(const Tenant& tenant, bool ready_only);

  // Triton's repository extension (see ModelManager::Load/Unload): `done` is
  // called once, maybe on a loader thread, when the operation has finished.
  void LoadModel(const Tenant& tenant, std::string_view name,
                 std::optional<std::string> config_override, std::function<void(Status)> done);
  void UnloadModel(const Tenant& tenant, std::string_view name, std::function<void(Status)> done);

  // Validates `request` against its model and queues it. `done` is called exactly once.
  // Inputs and requested outputs may refer to shared memory regions that
  // `tenant` registered, with the parameters shared_memory_region,
  // shared_memory_offset (default 0) and shared_memory_byte_size; another
  // tenant's region answers as an unknown one (NOT_FOUND). Such inputs are
  // copied into the request once, as it is admitted; such outputs are written
  // into the region and come back with empty data and those parameters. A
  // region whose object the client shrank fails the request (INVALID_ARGUMENT).
  // A model that is not loaded but may load on demand is loaded first; the
  // request waits for that load without holding a thread.
  //
  // `room` (may be null): where the service keeps what it owes the request
  // once answered (see CallRoom), instead of allocating it.
  class CallRoom;
  void Infer(const Tenant& tenant, std::unique_ptr<InferRequest> request, InferCallback done,
             CallRoom* room = nullptr) {
    Admit(tenant, std::move(request), std::move(done), /*ask_quota=*/true, room);
  }

  // Room a caller lends for what the service keeps while it answers one
  // request: its bill (the model's statistics, the tenant's usage, the
  // quota slot it holds until its response is delivered), so that the
  // request path does not allocate it (issue 27). The caller lends a room to
  // one request at a time and keeps it until that request's callback has run
  // and its response's receipt has been settled or destroyed (the receipt
  // settles into the room). A room still in use when lent again is not used:
  // the service allocates instead, so a caller's slip costs an allocation,
  // never memory in use.
  class CallRoom {
   public:
    static constexpr size_t kBytes = 128;
    CallRoom() = default;
    CallRoom(const CallRoom&) = delete;
    CallRoom& operator=(const CallRoom&) = delete;

    // For the service: the room's bytes, now taken, or null when in use;
    // and their return.
    void* Take() { return in_use_.exchange(true, std::memory_order_acquire) ? nullptr : bytes_; }
    void Return() { in_use_.store(false, std::memory_order_release); }

   private:
    alignas(std::max_align_t) std::byte bytes_[kBytes];
    std::atomic<bool> in_use_{false};
  };
  // Infer for a request that is part of one already admitted (an ensemble's
  // step, ModelHost::InferStep): the tenant's quotas are not asked again;
  // everything else is as Infer.
  void InferAdmitted(const Tenant& tenant, std::unique_ptr<InferRequest> request,
                     InferCallback done) {
    Admit(tenant, std::move(request), std::move(done), /*ask_quota=*/false, nullptr);
  }

  // Triton's statistics extension. With `name`: every version of that model
  // that has statistics (it was loaded at least once, maybe evicted since),
  // or only `version`; NOT_FOUND (as UnknownModel) for a model the tenant
  // does not see, and for a version never loaded. Without: every model
  // version the tenant sees. By name, then version.
  StatusOr<std::vector<ModelStatsSnapshot>> ModelStatistics(const Tenant& tenant,
                                                            std::string_view name,
                                                            std::string_view version) const;

  // Logs the drift alerts of `servable` that changed since the last check.
  // The statistics and the metrics call it as they read the drift, so an
  // alert is logged by the time anyone looks.
  static void CheckDrift(const ServableModel& servable);

  // Usage accounting: an admin gets every tenant's (those a reload removed
  // included), any other tenant its own. By tenant id.
  std::vector<TenantUsageReport> Usage(const Tenant& tenant) const;

  // The shared-memory extension. Every tenant (admins too) registers, lists,
  // unregisters and names in inference only its own regions: the owner is
  // always the asking tenant's id (see shared_memory.h).
  SharedMemoryManager& shared_memory() { return shared_memory_; }

  // For the metrics (service/server_metrics.h): the models and the tenants.
  ModelManager& models() const { return *options_.models; }
  const ResponseCache* response_cache() const { return options_.response_cache; }
  const TenantRegistry& tenants() const { return *tenants_; }

 private:
  explicit InferenceService(Options options);
  // INVALID_ARGUMENT naming the limit when `request` is over one.
  Status CheckLimits(const InferRequest& request) const;
  // The repositories `tenant`'s model names resolve in: its own (an admin:
  // every repository). Points into `tenant`.
  static NameScope ScopeOf(const Tenant& tenant);
  // What a request is charged to: its tenant's usage, and the quota whose
  // concurrency slot it holds (null: none), released once it is answered.
  struct Charge {
    TenantUsage* usage = nullptr;
    std::shared_ptr<TenantQuota> quota;
    CallRoom* room = nullptr;  // where its bill goes; null: allocated
  };
  // Answers a request that reached no model.
  static void Refuse(const Charge& charge, const InferCallback& done, Status status);
  // Bins a sampled request's inputs into the model's drift window.
  static void ObserveDrift(const ServableModel& servable, const InferRequest& request);

  void Admit(const Tenant& tenant, std::unique_ptr<InferRequest> request, InferCallback done,
             bool ask_quota, CallRoom* room);
  // `tenant_id`: the tenant asking, whose shared memory regions the request may name.
  void InferOn(const ServableModel& servable, std::string_view tenant_id,
               std::unique_ptr<InferRequest> request, InferCallback done, Charge charge);

  const Options options_;
  const std::unique_ptr<TenantRegistry> open_tenants_;  // when options_.tenants is null
  const TenantRegistry* const tenants_;
  const ServerMetadata metadata_;
  std::atomic<bool> ready_{false};
  SharedMemoryManager shared_memory_;
};

}  // namespace mm
