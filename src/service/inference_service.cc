#include "service/inference_service.h"

#include "service/request_validator.h"

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
  return std::unique_ptr<InferenceService>(new InferenceService(std::move(options)));
}

InferenceService::InferenceService(Options options)
    : options_(std::move(options)),
      metadata_{options_.server_name, options_.server_version, {"binary_tensor_data"}} {}

StatusOr<ModelHandle> InferenceService::GetModel(std::string_view name,
                                                 std::string_view version) const {
  return options_.models->Get(name, version);
}

StatusOr<ModelMetadata> InferenceService::GetModelMetadata(std::string_view name,
                                                           std::string_view version) const {
  MM_ASSIGN_OR_RETURN(ModelHandle model, options_.models->Get(name, version));
  ModelMetadata md;
  md.name = model->name;
  md.platform = model->config.platform();
  if (version.empty()) {
    MM_ASSIGN_OR_RETURN(auto versions, options_.models->Versions(name));
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

bool InferenceService::ModelReady(std::string_view name, std::string_view version) const {
  return options_.models->Get(name, version).ok();
}

std::vector<ModelVersionStatus> InferenceService::RepositoryIndex(bool ready_only) const {
  auto all = options_.models->Index();
  if (!ready_only) return all;
  std::vector<ModelVersionStatus> ready;
  for (auto& s : all) {
    if (s.state == ModelState::kReady) ready.push_back(std::move(s));
  }
  return ready;
}

void InferenceService::Infer(std::unique_ptr<InferRequest> request, InferCallback done) {
  auto model = options_.models->Get(request->model_name, request->model_version);
  if (!model.ok()) return done(model.status());
  const ServableModel& servable = **model;
  if (Status s = ValidateRequest(servable.config, *request); !s.ok()) {
    return done(s.WithContext("model '" + servable.name + "'"));
  }
  request->model_version = servable.version_string;
  // Queued work keeps the scheduler, and so the instances, alive on its own.
  servable.scheduler->Enqueue(std::move(request), std::move(done));
}

}  // namespace mm
