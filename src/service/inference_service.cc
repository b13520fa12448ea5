#include "service/inference_service.h"

#include "repository/model_config.h"
#include "service/request_validator.h"
#include "service/service_flags.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>
#include <new>
#include <optional>

#include <spdlog/spdlog.h>

namespace mm {

namespace {
TensorMetadata ToMetadata(const inference::ModelConfig& config, const std::string& name,
                          inference::DataType type,
                          const google::protobuf::RepeatedField<int64_t>& dims) {
  TensorMetadata t;
  t.name = name;
  t.dtype = static_cast<DataType>(type);
  if (config.max_batch_size() > 0) t.shape.push_back(-1);
  t.shape.insert(t.shape.end(), dims.begin(), dims.end());
  return t;
}
}  // namespace

StatusOr<std::unique_ptr<InferenceService>> InferenceService::Create(Options options) {
  if (options.models == nullptr) return InvalidArgument("InferenceService needs a ModelManager");
  MM_RETURN_IF_ERROR(ValidateServiceOptions(options));
  return std::unique_ptr<InferenceService>(new InferenceService(std::move(options)));
}

InferenceService::InferenceService(Options options)
    : options_(std::move(options)),
      open_tenants_(options_.tenants == nullptr ? TenantRegistry::Open() : nullptr),
      tenants_(options_.tenants != nullptr ? options_.tenants : open_tenants_.get()),
      metadata_{options_.server_name,
                options_.server_version,
                {"binary_tensor_data", "system_shared_memory"}},
      shared_memory_({.max_regions_per_tenant = options_.max_shm_regions_per_tenant}) {}

StatusOr<std::shared_ptr<const Tenant>> InferenceService::Authenticate(
    std::string_view authorization, TenantRegistry::Memo* memo) const {
  return tenants_->Authenticate(authorization, memo);
}

namespace {

// PERMISSION_DENIED for a user tenant's load override that sets `fields`.
Status AdminOnlyFieldsRefused(const Tenant& tenant, std::string_view model,
                              const std::vector<std::string>& fields) {
  std::string list;
  for (const auto& f : fields) list += (list.empty() ? "" : ", ") + f;
  std::string message = "tenant '" + tenant.id + "' may not set " + list;
  message += " in the 'config' override of model '" + std::string(model) + "': ";
  message += "the mmserve block (accounting, placement and policy) needs the admin role; ";
  message += "leave it out and the model keeps its repository's";
  return Status(StatusCode::kPermissionDenied, std::move(message));
}

}  // namespace

NameScope InferenceService::ScopeOf(const Tenant& tenant) {
  if (tenant.role == TenantRole::kAdmin) return NameScope::All();
  return NameScope::Of(tenant.repository_keys);
}

StatusOr<ModelHandle> InferenceService::GetModel(const Tenant& tenant, std::string_view name,
                                                 std::string_view version) const {
  return options_.models->Get(ScopeOf(tenant), name, version);
}

StatusOr<ModelMetadata> InferenceService::GetModelMetadata(const Tenant& tenant,
                                                           std::string_view name,
                                                           std::string_view version) const {
  MM_ASSIGN_OR_RETURN(ModelHandle model, GetModel(tenant, name, version));
  ModelMetadata md;
  md.name = model->name;
  md.platform = model->config.platform();
  if (version.empty()) {
    MM_ASSIGN_OR_RETURN(auto versions,
                        options_.models->Versions(NameScope::One(model->repository), name));
    for (const auto& v : versions) {
      if (v.state == ModelState::kReady) md.versions.push_back(std::to_string(v.version));
    }
  } else {
    md.versions.push_back(model->version_string);
  }
  const auto& cfg = model->config;
  for (const auto& in : cfg.input()) {
    md.inputs.push_back(ToMetadata(cfg, in.name(), in.data_type(), in.dims()));
  }
  for (const auto& out : cfg.output()) {
    md.outputs.push_back(ToMetadata(cfg, out.name(), out.data_type(), out.dims()));
  }
  return md;
}

bool InferenceService::ModelReady(const Tenant& tenant, std::string_view name,
                                  std::string_view version) const {
  return GetModel(tenant, name, version).ok();
}

std::vector<ModelVersionStatus> InferenceService::RepositoryIndex(const Tenant& tenant,
                                                                  bool ready_only) {
  auto all = options_.models->Index();
  const NameScope scope = ScopeOf(tenant);
  std::vector<ModelVersionStatus> out;
  out.reserve(all.size());
  for (auto& s : all) {
    if (ready_only && s.state != ModelState::kReady) continue;
    if (!scope.Contains(s.repository)) continue;
    out.push_back(std::move(s));
  }
  return out;
}

StatusOr<std::vector<ModelStatsSnapshot>> InferenceService::ModelStatistics(
    const Tenant& tenant, std::string_view name, std::string_view version) const {
  const NameScope scope = ScopeOf(tenant);
  std::string repository;  // with `name`: the one it names for this tenant
  if (!name.empty()) {
    auto found = options_.models->RepositoryOf(scope, name);
    if (!found.ok()) return found.status();
    repository = std::move(*found);
  }
  std::optional<int64_t> wanted;
  if (!version.empty()) {
    int64_t v = 0;
    auto [end, ec] = std::from_chars(version.data(), version.data() + version.size(), v);
    if (ec != std::errc() || end != version.data() + version.size() || v <= 0) {
      return InvalidArgument("model '" + std::string(name) + "': version '" + std::string(version) +
                             "' is not a positive integer");
    }
    wanted = v;
  }
  std::vector<ModelStatsSnapshot> out;
  for (const auto& stats : options_.models->stats().All()) {
    if (!name.empty()) {
      if (stats->model() != name || stats->repository() != repository) continue;
      if (wanted && stats->version() != *wanted) continue;
    } else if (!scope.Contains(stats->repository())) {
      continue;
    }
    out.push_back(stats->Read());
    // A loaded copy's drift (checked against its threshold on the way).
    if (auto servable = options_.models->Get(NameScope::One(stats->repository()), stats->model(),
                                             std::to_string(stats->version()));
        servable.ok() && (*servable)->drift != nullptr) {
      CheckDrift(**servable);
      out.back().drift = (*servable)->drift->Read();
    }
  }
  if (!name.empty() && out.empty()) {
    return NotFound("model '" + std::string(name) + "'" +
                    (wanted ? " version " + std::string(version) : std::string()) +
                    " has no statistics: it has never been loaded");
  }
  return out;
}

std::vector<TenantUsageReport> InferenceService::Usage(const Tenant& tenant) const {
  std::vector<TenantUsageReport> out;
  for (const TenantUsage* usage : tenants_->usage().Tenants()) {
    if (tenant.role != TenantRole::kAdmin && usage->tenant_id() != tenant.id) continue;
    out.push_back({usage->tenant_id(), usage->refused(), usage->Models()});
  }
  return out;
}

namespace {

constexpr std::string_view kShmRegion = "shared_memory_region";
constexpr std::string_view kShmOffset = "shared_memory_offset";
constexpr std::string_view kShmByteSize = "shared_memory_byte_size";

// A tensor's shared-memory reference, if its parameters name a region.
struct ShmRef {
  std::string region;
  uint64_t offset = 0;
  uint64_t byte_size = 0;
};

StatusOr<std::optional<ShmRef>> ParseShmRef(const Parameters& params, const std::string& what) {
  auto region = params.find(kShmRegion);
  if (region == params.end()) {
    if (params.count(kShmOffset) || params.count(kShmByteSize)) {
      return InvalidArgument(what + ": shared_memory_offset/byte_size given without " +
                             "shared_memory_region");
    }
    return std::optional<ShmRef>();
  }
  ShmRef ref;
  const auto* name = std::get_if<std::string>(&region->second);
  if (name == nullptr || name->empty()) {
    return InvalidArgument(what + ": shared_memory_region must be a region name (a string)");
  }
  ref.region = *name;
  auto integer = [&](std::string_view key, bool required, uint64_t& out) -> Status {
    auto it = params.find(key);
    if (it == params.end()) {
      return required ? InvalidArgument(what + ": " + std::string(key) +
                                        " is required with shared_memory_region")
                      : OkStatus();
    }
    const auto* v = std::get_if<int64_t>(&it->second);
    if (v == nullptr || *v < 0) {
      return InvalidArgument(what + ": " + std::string(key) + " must be a non-negative integer");
    }
    out = static_cast<uint64_t>(*v);
    return OkStatus();
  };
  MM_RETURN_IF_ERROR(integer(kShmOffset, false, ref.offset));
  MM_RETURN_IF_ERROR(integer(kShmByteSize, true, ref.byte_size));
  return std::optional<ShmRef>(std::move(ref));
}

// Before a shared-memory input is copied: a fixed-size type's bytes must be
// what its shape needs, so the copy is never larger than the tensor (the
// validator says the same later for inline data).
Status CheckShmInputSize(const Tensor& input, uint64_t byte_size, const std::string& what) {
  const uint64_t elem = DataTypeSize(input.dtype);
  if (input.dtype == DataType::kBytes || elem == 0) return OkStatus();
  MM_ASSIGN_OR_RETURN(int64_t count, ElementCount(input.shape, what));
  const uint64_t n = static_cast<uint64_t>(count);
  if (n <= byte_size / elem && n * elem == byte_size) return OkStatus();
  const std::string need = n > ~uint64_t{0} / elem ? "more than 2^64" : std::to_string(n * elem);
  return InvalidArgument(what + ": shape " + ShapeToString(input.shape) + " of " +
                         std::string(DataTypeName(input.dtype)) + " needs " + need +
                         " bytes, got " + std::to_string(byte_size) + " (shared_memory_byte_size)");
}

// An output to be written into shared memory once the model has run.
struct ShmOutput {
  std::string name;
  ShmRef ref;
  SharedMemoryManager::Window window;
};

// Copies the shared-memory outputs into their regions and empties their data.
Status WriteShmOutputs(const std::vector<ShmOutput>& targets, InferResponse& response) {
  for (Tensor& t : response.outputs) {
    for (const ShmOutput& target : targets) {
      if (target.name != t.name) continue;
      if (t.data.size() > target.window.size()) {
        return InvalidArgument("output '" + t.name + "' needs " + std::to_string(t.data.size()) +
                               " bytes but shared memory region '" + target.ref.region + "' has " +
                               std::to_string(target.window.size()) + " at offset " +
                               std::to_string(target.ref.offset));
      }
      // Guarded: the client may have shrunk the object since the request resolved it.
      MM_RETURN_IF_ERROR(target.window.WriteFrom(t.data, "output '" + t.name + "'"));
      t.parameters[std::string(kShmRegion)] = target.ref.region;
      if (target.ref.offset) {
        t.parameters[std::string(kShmOffset)] = static_cast<int64_t>(target.ref.offset);
      }
      t.parameters[std::string(kShmByteSize)] = static_cast<int64_t>(t.data.size());
      t.data = {};
      t.owner.reset();
    }
  }
  return OkStatus();
}

}  // namespace

void InferenceService::LoadModel(const Tenant& tenant, std::string_view name,
                                 std::optional<std::string> config_override,
                                 std::function<void(Status)> done) {
  // Accounting, placement and policy are the admins' (the mmserve block).
  if (tenant.role != TenantRole::kAdmin && config_override) {
    auto fields = AdminOnlyFieldsIn(*config_override, name);
    if (!fields.ok()) return done(fields.status());
    if (!fields->empty()) return done(AdminOnlyFieldsRefused(tenant, name, *fields));
  }
  // Resolved in the tenant's own repositories: another tenant's models (of
  // this name or any other) change nothing in the answer.
  options_.models->Load(ScopeOf(tenant), name, std::move(config_override), std::move(done));
}

void InferenceService::UnloadModel(const Tenant& tenant, std::string_view name,
                                   std::function<void(Status)> done) {
  options_.models->Unload(ScopeOf(tenant), name, std::move(done));
}

namespace {

int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A tensor's payload bytes: its data, or the shared memory it names.
uint64_t PayloadBytes(const Tensor& t) {
  if (!t.data.empty() || t.parameters.empty()) return t.data.size();
  auto it = t.parameters.find(kShmByteSize);
  if (it == t.parameters.end()) return 0;
  const auto* v = std::get_if<int64_t>(&it->second);
  return v != nullptr && *v > 0 ? static_cast<uint64_t>(*v) : 0;
}

}  // namespace

void InferenceService::Admit(const Tenant& tenant, std::unique_ptr<InferRequest> request,
                             InferCallback done, bool ask_quota, CallRoom* room) {
  if (request->received_ns == 0) request->received_ns = SteadyNowNs();
  Charge charge;
  charge.usage = tenant.usage;
  charge.room = room;
  if (Status s = CheckLimits(*request); !s.ok()) return Refuse(charge, done, std::move(s));
  // Quotas first: a refused request costs nothing more.
  if (TenantQuota* quota = tenant.quota.get(); ask_quota && quota != nullptr && quota->limited()) {
    // (Admitted as of its arrival: no second clock read.)
    bool counted = false;
    if (Status s = quota->Admit(request->received_ns, &counted); !s.ok()) {
      return Refuse(charge, done, std::move(s));
    }
    if (counted) charge.quota = tenant.quota;
  }
  // The request path: the name is looked up in the tenant's own repositories
  // (one hash lookup in the READY snapshot, no lock); a model it may not see
  // is unknown to it, and is never loaded on its behalf.
  const NameScope scope = ScopeOf(tenant);
  auto model = options_.models->Acquire(scope, request->model_name, request->model_version);
  if (model.ok())
    return InferOn(**model, tenant.id, std::move(request), std::move(done), std::move(charge));
  // Not READY: a model that loads on demand is loaded (or its load joined) first.
  const std::string name = request->model_name;
  const std::string version = request->model_version;
  struct Waiting {
    std::string tenant_id;  // owns the shared memory regions the request names
    std::unique_ptr<InferRequest> request;
    InferCallback done;
    Charge charge;
  };
  auto waiting = std::make_shared<Waiting>(
      Waiting{tenant.id, std::move(request), std::move(done), std::move(charge)});
  const bool loads = options_.models->GetAfterLoad(
      scope, name, version, [this, waiting](StatusOr<ModelHandle> loaded) {
        if (!loaded.ok()) return Refuse(waiting->charge, waiting->done, loaded.status());
        InferOn(**loaded, waiting->tenant_id, std::move(waiting->request), std::move(waiting->done),
                std::move(waiting->charge));
      });
  if (!loads) Refuse(waiting->charge, waiting->done, model.status());
}

Status InferenceService::CheckLimits(const InferRequest& request) const {
  const size_t tensors = request.inputs.size() + request.outputs.size();
  if (tensors > options_.max_tensors_per_request) {
    return InvalidArgument("request has " + std::to_string(request.inputs.size()) + " inputs and " +
                           std::to_string(request.outputs.size()) +
                           " requested outputs; the limit is " +
                           std::to_string(options_.max_tensors_per_request) +
                           " tensors per request (--max-tensors-per-request)");
  }
  for (const Tensor& input : request.inputs) {
    auto elements = ElementCount(input.shape, "input");
    if (!elements.ok()) {  // (the name only on this rare path: no string per input)
      return ElementCount(input.shape, "input '" + input.name + "'").status();
    }
    if (*elements > options_.max_elements_per_tensor) {
      return InvalidArgument("input '" + input.name + "' has shape " + ShapeToString(input.shape) +
                             ", " + std::to_string(*elements) + " elements; the limit is " +
                             std::to_string(options_.max_elements_per_tensor) +
                             " per tensor (--max-elements-per-tensor)");
    }
  }
  return OkStatus();
}

void InferenceService::ObserveDrift(const ServableModel& servable, const InferRequest& request) {
  const bool batched = servable.config.max_batch_size() > 0;
  for (const Tensor& input : request.inputs) {
    if (servable.drift->baseline().FindInput(input.name) == nullptr) continue;
    const int64_t rows = batched ? (input.shape.empty() ? 0 : input.shape[0]) : 1;
    servable.drift->Observe(
        input.name, input.dtype, rows,
        {reinterpret_cast<const uint8_t*>(input.data.data()), input.data.size()});
  }
}

void InferenceService::CheckDrift(const ServableModel& servable) {
  if (servable.drift == nullptr) return;
  for (const DriftMonitor::Crossing& c : servable.drift->CheckThreshold()) {
    if (c.above) {
      spdlog::warn(
          "model '{}' version {}: input '{}' feature {} has drifted from its baseline: PSI "
          "{:.3f} is above the alert threshold {}",
          servable.name, servable.version, c.input, c.feature, c.psi,
          servable.drift->options().threshold);
    } else {
      spdlog::info(
          "model '{}' version {}: input '{}' feature {} is back within the drift threshold "
          "(PSI {:.3f}, threshold {})",
          servable.name, servable.version, c.input, c.feature, c.psi,
          servable.drift->options().threshold);
    }
  }
}

// Triton refuses the same case as UNSUPPORTED (gRPC UNIMPLEMENTED, HTTP 501)
// with "... doesn't support models with decoupled transaction policy", a
// phrase clients look for: the same code, and the phrase in the message.
static Status DecoupledNeedsStream(const std::string& model) {
  return Unimplemented(
      "this endpoint doesn't support models with decoupled transaction policy: "
      "model '" +
      model +
      "' is decoupled (model_transaction_policy { decoupled: true }), so it may "
      "answer a request with several responses or none, which an endpoint of "
      "one response per request cannot carry; use gRPC ModelStreamInfer "
      "(tritonclient's start_stream/async_stream_infer) or HTTP POST "
      "/v2/models/" +
      model + "/generate_stream");
}

void InferenceService::Refuse(const Charge& charge, const InferCallback& done, Status status) {
  if (charge.quota != nullptr) charge.quota->Release();
  if (charge.usage != nullptr) charge.usage->RecordRefused();
  done(std::move(status));
}

namespace {

// What a request that reached its model owes once answered, and, for a
// success, once its transport has delivered the response (InferOn): its
// model's statistics, its tenant's usage, and the concurrency slot it holds.
// It lives in the caller's CallRoom when one was lent, else on the heap (one
// allocation per request); the callback that answers it is a bare pointer,
// which std::function stores in place. It ends itself when settled
// (Release).
class RequestBill final : public DeliveryReceipt::Settler {
 public:
  // Made in `room` when it is free, else allocated.
  static RequestBill* Make(InferenceService::CallRoom* room, ModelStats* stats, ModelUsage* usage,
                           std::shared_ptr<TenantQuota> quota, uint64_t bytes_in,
                           int64_t received_ns, InferCallback done) {
    static_assert(sizeof(RequestBill) <= InferenceService::CallRoom::kBytes);
    static_assert(alignof(RequestBill) <= alignof(std::max_align_t));
    void* bytes = room != nullptr ? room->Take() : nullptr;
    if (bytes == nullptr) {
      return new RequestBill(nullptr, stats, usage, std::move(quota), bytes_in, received_ns,
                             std::move(done));
    }
    return new (bytes)
        RequestBill(room, stats, usage, std::move(quota), bytes_in, received_ns, std::move(done));
  }

 private:
  RequestBill(InferenceService::CallRoom* room, ModelStats* stats, ModelUsage* usage,
              std::shared_ptr<TenantQuota> quota, uint64_t bytes_in, int64_t received_ns,
              InferCallback done)
      : room_(room),
        stats_(stats),
        usage_(usage),
        quota_(std::move(quota)),
        bytes_in_(bytes_in),
        received_ns_(received_ns),
        done_(std::move(done)) {}

 public:
  // The request's answer: counted now; a success's output bytes and its
  // slot wait for the transport to settle the receipt it carries.
  void Answer(StatusOr<std::unique_ptr<InferResponse>> result) {
    InferCallback done = std::move(done_);
    if (stats_ != nullptr) {
      const int64_t total_ns = SteadyNowNs() - received_ns_;
      if (result.ok()) {
        const InferResponse& r = **result;
        stats_->RequestSucceeded(total_ns, r.queue_ns, r.timing.input_ns, r.timing.infer_ns,
                                 r.timing.output_ns);
      } else {
        stats_->RequestFailed(result.status().code(), total_ns);
      }
    }
    if (!result.ok()) {
      if (usage_ != nullptr) usage_->RecordFailure();
      Settle(false);  // an error holds no slot while it is written
    } else {
      InferResponse& r = **result;
      if (usage_ != nullptr) {
        for (const Tensor& output : r.outputs) bytes_out_ += PayloadBytes(output);
        usage_->RecordSuccess(static_cast<uint64_t>(std::max<int64_t>(r.queue_ns, 0)),
                              static_cast<uint64_t>(std::max<int64_t>(r.compute_ns, 0)), bytes_in_);
      }
      if (usage_ != nullptr || quota_ != nullptr) {
        r.receipt = DeliveryReceipt(this);  // `this` is the receipt's now
      } else {
        Release();
      }
    }
    done(std::move(result));
  }

  void Settle(bool delivered) override {
    if (delivered && usage_ != nullptr) usage_->RecordDelivered(bytes_out_);
    if (quota_ != nullptr) quota_->Release();
    Release();
  }

 private:
  ~RequestBill() = default;
  // Ends this bill: its room returned, or its allocation freed.
  void Release() {
    InferenceService::CallRoom* room = room_;
    if (room == nullptr) {
      delete this;
      return;
    }
    this->~RequestBill();
    room->Return();
  }

  InferenceService::CallRoom* const room_;    // null: allocated
  ModelStats* const stats_;                   // null: none
  ModelUsage* const usage_;                   // null: not charged
  const std::shared_ptr<TenantQuota> quota_;  // null: holds no slot
  const uint64_t bytes_in_;
  uint64_t bytes_out_ = 0;
  const int64_t received_ns_;
  InferCallback done_;
};

}  // namespace

void InferenceService::InferOn(const ServableModel& servable, std::string_view tenant_id,
                               std::unique_ptr<InferRequest> request, InferCallback done,
                               Charge charge) {
  // A decoupled model may answer with many responses or none: only a caller
  // that streams (request->stream) can carry that (Triton refuses it too).
  if (request->stream == nullptr && servable.scheduler->decoupled()) {
    return Refuse(charge, done, DecoupledNeedsStream(servable.name));
  }
  // From here on the request is the model's: it is counted in its
  // statistics, charged to its tenant, and releases its concurrency slot (if
  // it holds one) when its answer has been delivered (an error: when
  // answered). RequestBill does all three. (The statistics live as long as
  // the servable, which lives until its queue has drained, i.e. past the
  // answer.)
  ModelStats* stats = servable.stats.get();
  if (stats != nullptr) stats->RequestStarted();
  uint64_t bytes_in = 0;
  if (charge.usage != nullptr) {
    for (const Tensor& input : request->inputs) bytes_in += PayloadBytes(input);
  }
  auto* bill = RequestBill::Make(
      charge.room, stats,
      charge.usage != nullptr ? charge.usage->Model(servable.name, &servable) : nullptr,
      std::move(charge.quota), bytes_in, request->received_ns, std::move(done));
  // Called exactly once (the scheduler's contract), which frees or hands on `bill`.
  done = [bill](StatusOr<std::unique_ptr<InferResponse>> result) {
    bill->Answer(std::move(result));
  };
  // Inputs in shared memory are copied into memory the request owns, once,
  // here: the client may shrink its object at any time (a view would fault
  // in whatever reads it next: the validator, the drift sampler, ONNX
  // Runtime, the copy to a worker) and may rewrite it after it was checked.
  // A tenant names only its own regions (SharedMemoryManager).
  for (Tensor& input : request->inputs) {
    if (input.parameters.empty()) continue;
    const std::string what = "input '" + input.name + "'";
    auto ref = ParseShmRef(input.parameters, what);
    if (!ref.ok()) return done(ref.status());
    if (!*ref) continue;
    if (!input.data.empty()) {
      return done(InvalidArgument(what + " has both data and a shared memory reference"));
    }
    auto window =
        shared_memory_.Resolve(tenant_id, (*ref)->region, (*ref)->offset, (*ref)->byte_size, what);
    if (!window.ok()) return done(window.status());
    if (Status s = CheckShmInputSize(input, window->size(), what); !s.ok()) {
      return done(s.WithContext("model '" + servable.name + "'"));
    }
    // 64-byte aligned (as a worker's region lays tensors out): no backend copies it again.
    const size_t n = static_cast<size_t>(window->size());
    std::shared_ptr<std::byte[]> copy(
        static_cast<std::byte*>(::operator new[](n, std::align_val_t{64})),
        [](std::byte* p) { ::operator delete[](p, std::align_val_t{64}); });
    if (Status s = window->ReadInto(copy.get(), what); !s.ok()) return done(std::move(s));
    input.data = {copy.get(), n};
    input.owner = std::move(copy);
  }
  std::vector<ShmOutput> shm_outputs;
  for (const RequestedOutput& output : request->outputs) {
    if (output.parameters.empty()) continue;
    const std::string what = "output '" + output.name + "'";
    auto ref = ParseShmRef(output.parameters, what);
    if (!ref.ok()) return done(ref.status());
    if (!*ref) continue;
    auto window =
        shared_memory_.Resolve(tenant_id, (*ref)->region, (*ref)->offset, (*ref)->byte_size, what);
    if (!window.ok()) return done(window.status());
    shm_outputs.push_back({output.name, std::move(**ref), std::move(*window)});
  }
  if (Status s = ValidateRequest(servable.config, *request); !s.ok()) {
    return done(s.WithContext("model '" + servable.name + "'"));
  }
  request->model_version = servable.version_string;
  if (servable.drift != nullptr && servable.drift->ShouldSample()) ObserveDrift(servable, *request);
  const bool outputs_in_shm = !shm_outputs.empty();
  if (outputs_in_shm) {
    done = [targets = std::move(shm_outputs),
            done = std::move(done)](StatusOr<std::unique_ptr<InferResponse>> result) mutable {
      if (result.ok()) {
        if (Status s = WriteShmOutputs(targets, **result); !s.ok()) return done(s);
      }
      done(std::move(result));
    };
  }
  // The response cache: a hit never reaches the model; a miss keeps its
  // answer. Outputs asked for in shared memory are never cached.
  if (servable.cache != nullptr && !outputs_in_shm) {
    const int64_t lookup_start = SteadyNowNs();
    const bool shared = servable.config.mmserve().share_cached_responses();
    std::string key = servable.cache->Key(*request, shared ? std::string_view() : tenant_id);
    if (auto hit = servable.cache->Lookup(key); hit != nullptr) {
      hit->model_name = request->model_name;
      hit->model_version = servable.version_string;
      hit->id = request->id;
      if (stats != nullptr) stats->CacheHit(SteadyNowNs() - lookup_start);
      request.reset();
      return done(std::move(hit));
    }
    const int64_t lookup_ns = SteadyNowNs() - lookup_start;
    done = [scope = servable.cache, stats, lookup_ns, key = std::move(key),
            done = std::move(done)](StatusOr<std::unique_ptr<InferResponse>> result) mutable {
      if (result.ok()) {
        const int64_t insert_start = SteadyNowNs();
        scope->Insert(std::move(key), **result);
        if (stats != nullptr) stats->CacheMiss(lookup_ns + SteadyNowNs() - insert_start);
      } else if (stats != nullptr) {
        stats->CacheMiss(lookup_ns);
      }
      done(std::move(result));
    };
  }
  // Queued work keeps the scheduler, and so the instances, alive on its own.
  servable.scheduler->Enqueue(std::move(request), std::move(done));
}

}  // namespace mm
