#include "fake_backend.h"

#include <fstream>
#include <utility>

namespace mm::fakes {

namespace fs = std::filesystem;

FakeBackend::FakeBackend()
    : FakeBackend([](const LoadSpec& spec, size_t) {
        FakeInstance::Options o;
        o.handler = AddToInput("y", static_cast<float>(spec.version));
        return std::make_unique<FakeInstance>(std::move(o));
      }) {}

FakeBackend::FakeBackend(InstanceFactory factory) : factory_(std::move(factory)) {}

StatusOr<std::unique_ptr<LoadedModel>> FakeBackend::Load(const LoadSpec& spec) {
  ++loads_;
  {
    MutexLock lock(mu_);
    auto it = fail_.find(spec.model_name);
    if (it != fail_.end() && !it->second.ok()) return it->second;
  }
  if (!fs::exists(spec.version_dir / "model.bin")) {
    return NotFound("model '" + spec.model_name + "': no model.bin in " +
                    spec.version_dir.string());
  }
  auto loaded = std::make_unique<LoadedModel>();
  loaded->config = spec.config;
  auto as_list = spec.config.parameters().find("batch_as_list");
  loaded->batch_as_list =
      as_list != spec.config.parameters().end() && as_list->second.string_value() == "true";
  size_t count = 0;
  for (const auto& group : spec.config.instance_group()) {
    count += group.count() <= 0 ? 1 : static_cast<size_t>(group.count());
  }
  if (count == 0) count = 1;
  for (size_t i = 0; i < count; ++i) loaded->instances.push_back(factory_(spec, i));
  return loaded;
}

void FakeBackend::FailLoads(const std::string& model, Status status) {
  MutexLock lock(mu_);
  fail_[model] = std::move(status);
}

Status RegisterFakeBackend(BackendRegistry& registry, FakeBackend* backend) {
  return registry.Register({.name = kFakePlatform,
                            .platforms = {kFakePlatform},
                            .default_model_file = "model.bin",
                            .create = BorrowBackend(backend)});
}

void WriteFakeModel(const fs::path& repo, const std::string& name,
                    const std::vector<int64_t>& versions, const std::string& extra_config) {
  fs::create_directories(repo / name);
  std::ofstream(repo / name / "config.pbtxt")
      << "name: \"" << name << "\"\nplatform: \"" << kFakePlatform << "\"\n"
      << "input { name: \"x\" data_type: TYPE_FP32 dims: [ 4 ] }\n"
      << "output { name: \"y\" data_type: TYPE_FP32 dims: [ 4 ] }\n"
      << extra_config;
  for (int64_t v : versions) {
    fs::create_directories(repo / name / std::to_string(v));
    std::ofstream(repo / name / std::to_string(v) / "model.bin") << "weights";
  }
}

}  // namespace mm::fakes
