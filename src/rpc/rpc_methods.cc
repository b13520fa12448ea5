#include "rpc/rpc_methods.h"

#include <algorithm>
#include <array>
#include <string>
#include <utility>

namespace mm::rpc {

namespace {

constexpr std::string_view kServicePrefix = "/inference.GRPCInferenceService/";

// Indexed by Method.
constexpr std::array<std::string_view, kMethodCount> kMethodNames = {
    "ServerLive",
    "ServerReady",
    "ModelReady",
    "ServerMetadata",
    "ModelMetadata",
    "ModelInfer",
    "ModelStreamInfer",
    "ModelConfig",
    "ModelStatistics",
    "RepositoryIndex",
    "RepositoryModelLoad",
    "RepositoryModelUnload",
    "SystemSharedMemoryStatus",
    "SystemSharedMemoryRegister",
    "SystemSharedMemoryUnregister",
    "CudaSharedMemoryStatus",
    "CudaSharedMemoryRegister",
    "CudaSharedMemoryUnregister",
    "TraceSetting",
    "LogSettings",
};

Status NotImplemented(const std::string& what) {
  return Unimplemented(what + " is not supported by mmserve");
}

}  // namespace

std::optional<Method> MethodFromPath(std::string_view path) {
  if (!path.starts_with(kServicePrefix)) return std::nullopt;
  const std::string_view name = path.substr(kServicePrefix.size());
  for (size_t i = 0; i < kMethodNames.size(); ++i) {
    if (kMethodNames[i] == name) return static_cast<Method>(i);
  }
  return std::nullopt;
}

std::string_view MethodName(Method m) {
  const auto i = static_cast<size_t>(m);
  return i < kMethodNames.size() ? kMethodNames[i] : std::string_view();
}

bool OpenToAnyone(Method m) { return m == Method::kServerLive || m == Method::kServerReady; }

Status ServerLive(InferenceService& s, const Tenant*, const inference::ServerLiveRequest&,
                  inference::ServerLiveResponse* out) {
  out->set_live(s.Live());
  return OkStatus();
}

Status ServerReady(InferenceService& s, const Tenant*, const inference::ServerReadyRequest&,
                   inference::ServerReadyResponse* out) {
  out->set_ready(s.Ready());
  return OkStatus();
}

Status ModelReady(InferenceService& s, const Tenant* tenant, const inference::ModelReadyRequest& in,
                  inference::ModelReadyResponse* out) {
  out->set_ready(s.ModelReady(*tenant, in.name(), in.version()));
  return OkStatus();
}

Status ServerMetadata(InferenceService& s, const Tenant*, const inference::ServerMetadataRequest&,
                      inference::ServerMetadataResponse* out) {
  const auto& md = s.Metadata();
  out->set_name(md.name);
  out->set_version(md.version);
  for (const auto& e : md.extensions) out->add_extensions(e);
  return OkStatus();
}

Status ModelMetadata(InferenceService& s, const Tenant* tenant,
                     const inference::ModelMetadataRequest& in,
                     inference::ModelMetadataResponse* out) {
  auto md = s.GetModelMetadata(*tenant, in.name(), in.version());
  if (!md.ok()) return md.status();
  out->set_name(md->name);
  for (const auto& v : md->versions) out->add_versions(v);
  out->set_platform(md->platform);
  auto fill = [](const TensorMetadata& t, inference::ModelMetadataResponse::TensorMetadata* o) {
    o->set_name(t.name);
    o->set_datatype(std::string(DataTypeName(t.dtype)));
    for (int64_t d : t.shape) o->add_shape(d);
  };
  for (const auto& t : md->inputs) fill(t, out->add_inputs());
  for (const auto& t : md->outputs) fill(t, out->add_outputs());
  return OkStatus();
}

Status ModelConfig(InferenceService& s, const Tenant* tenant,
                   const inference::ModelConfigRequest& in, inference::ModelConfigResponse* out) {
  auto model = s.GetModel(*tenant, in.name(), in.version());
  if (!model.ok()) return model.status();
  *out->mutable_config() = (*model)->config;
  return OkStatus();
}

Status ModelStatistics(InferenceService& s, const Tenant* tenant,
                       const inference::ModelStatisticsRequest& in,
                       inference::ModelStatisticsResponse* out) {
  auto all = s.ModelStatistics(*tenant, in.name(), in.version());
  if (!all.ok()) return all.status();
  auto fill = [](const DurationStat& d, inference::StatisticDuration* o) {
    o->set_count(d.count);
    o->set_ns(d.ns);
  };
  for (const ModelStatsSnapshot& st : *all) {
    auto* m = out->add_model_stats();
    m->set_name(st.model);
    m->set_version(std::to_string(st.version));
    m->set_last_inference(static_cast<uint64_t>(std::max<int64_t>(st.last_inference_ms, 0)));
    m->set_inference_count(st.inference_count);
    m->set_execution_count(st.execution_count);
    auto* is = m->mutable_inference_stats();
    fill(st.success, is->mutable_success());
    fill(st.fail, is->mutable_fail());
    fill(st.queue, is->mutable_queue());
    fill(st.compute_input, is->mutable_compute_input());
    fill(st.compute_infer, is->mutable_compute_infer());
    fill(st.compute_output, is->mutable_compute_output());
    fill(st.cache_hit, is->mutable_cache_hit());
    fill(st.cache_miss, is->mutable_cache_miss());
    for (const BatchStat& b : st.batches) {
      auto* bs = m->add_batch_stats();
      bs->set_batch_size(static_cast<uint64_t>(b.batch_size));
      fill(b.compute_input, bs->mutable_compute_input());
      fill(b.compute_infer, bs->mutable_compute_infer());
      fill(b.compute_output, bs->mutable_compute_output());
    }
  }
  return OkStatus();
}

Status RepositoryIndex(InferenceService& s, const Tenant* tenant,
                       const inference::RepositoryIndexRequest& in,
                       inference::RepositoryIndexResponse* out) {
  if (!in.repository_name().empty()) {
    return InvalidArgument(
        "repository_name is not supported: mmserve lists every repository it serves; leave it "
        "empty");
  }
  for (const auto& st : s.RepositoryIndex(*tenant, in.ready())) {
    auto* m = out->add_models();
    m->set_name(st.name);
    if (st.version > 0) m->set_version(std::to_string(st.version));
    m->set_state(std::string(ModelStateName(st.state)));
    m->set_reason(st.reason);
  }
  return OkStatus();
}

void RepositoryModelLoad(InferenceService& s, const Tenant& tenant,
                         const inference::RepositoryModelLoadRequest& in,
                         std::function<void(Status)> done) {
  if (!in.repository_name().empty()) {
    return done(InvalidArgument(
        "repository_name is not supported: mmserve loads a model from whichever repository "
        "holds it; leave it empty"));
  }
  std::optional<std::string> config;
  for (const auto& [key, value] : in.parameters()) {
    if (key == "config") {
      if (value.parameter_choice_case() != inference::ModelRepositoryParameter::kStringParam) {
        return done(InvalidArgument(
            "model load request: parameter 'config' must be a string_param holding the model "
            "configuration as JSON"));
      }
      config = value.string_param();
    } else if (key.rfind("file:", 0) == 0) {
      return done(InvalidArgument(
          "model load request: parameter '" + key +
          "': mmserve does not take model files in a load request; put them in the model "
          "repository"));
    }
  }
  s.LoadModel(tenant, in.model_name(), std::move(config), std::move(done));
}

void RepositoryModelUnload(InferenceService& s, const Tenant& tenant,
                           const inference::RepositoryModelUnloadRequest& in,
                           std::function<void(Status)> done) {
  if (!in.repository_name().empty()) {
    return done(InvalidArgument(
        "repository_name is not supported: mmserve unloads a model from whichever repository "
        "holds it; leave it empty"));
  }
  s.UnloadModel(tenant, in.model_name(), std::move(done));
}

Status SystemSharedMemoryStatus(InferenceService& s, const Tenant* tenant,
                                const inference::SystemSharedMemoryStatusRequest& in,
                                inference::SystemSharedMemoryStatusResponse* out) {
  auto regions = s.shared_memory().List(tenant->id, in.name());
  if (!regions.ok()) return regions.status();
  for (const auto& r : *regions) {
    auto& status = (*out->mutable_regions())[r.name];
    status.set_name(r.name);
    status.set_key(r.key);
    status.set_offset(r.offset);
    status.set_byte_size(r.byte_size);
  }
  return OkStatus();
}

Status SystemSharedMemoryRegister(InferenceService& s, const Tenant* tenant,
                                  const inference::SystemSharedMemoryRegisterRequest& in,
                                  inference::SystemSharedMemoryRegisterResponse*) {
  return s.shared_memory().Register(tenant->id, in.name(), in.key(), in.offset(), in.byte_size());
}

Status SystemSharedMemoryUnregister(InferenceService& s, const Tenant* tenant,
                                    const inference::SystemSharedMemoryUnregisterRequest& in,
                                    inference::SystemSharedMemoryUnregisterResponse*) {
  if (in.name().empty()) {
    s.shared_memory().UnregisterAll(tenant->id);
    return OkStatus();
  }
  return s.shared_memory().Unregister(tenant->id, in.name());
}

Status CudaSharedMemoryStatus(InferenceService&, const Tenant*,
                              const inference::CudaSharedMemoryStatusRequest&,
                              inference::CudaSharedMemoryStatusResponse*) {
  return NotImplemented("CUDA shared memory");
}

Status CudaSharedMemoryRegister(InferenceService&, const Tenant*,
                                const inference::CudaSharedMemoryRegisterRequest&,
                                inference::CudaSharedMemoryRegisterResponse*) {
  return NotImplemented("CUDA shared memory");
}

Status CudaSharedMemoryUnregister(InferenceService&, const Tenant*,
                                  const inference::CudaSharedMemoryUnregisterRequest&,
                                  inference::CudaSharedMemoryUnregisterResponse*) {
  return NotImplemented("CUDA shared memory");
}

Status TraceSetting(InferenceService&, const Tenant*, const inference::TraceSettingRequest&,
                    inference::TraceSettingResponse*) {
  return NotImplemented("trace settings");
}

Status LogSettings(InferenceService&, const Tenant*, const inference::LogSettingsRequest&,
                   inference::LogSettingsResponse*) {
  return NotImplemented("log settings");
}

}  // namespace mm::rpc
