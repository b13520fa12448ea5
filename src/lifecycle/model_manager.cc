#include "lifecycle/model_manager.h"

#include <charconv>

#include <spdlog/spdlog.h>

#include "repository/model_config.h"
#include "repository/repository.h"

namespace mm {

std::string_view ModelStateName(ModelState state) {
  switch (state) {
    case ModelState::kUnavailable:
      return "UNAVAILABLE";
    case ModelState::kLoading:
      return "LOADING";
    case ModelState::kReady:
      return "READY";
    case ModelState::kUnloading:
      return "UNLOADING";
  }
  return "UNAVAILABLE";
}

StatusOr<std::unique_ptr<ModelManager>> ModelManager::Create(Options options) {
  if (options.pool == nullptr) return InvalidArgument("ModelManager needs an execution pool");
  if (options.repositories.empty()) {
    return InvalidArgument("no model repository given: pass --model-repository PATH");
  }
  for (const auto& repo : options.repositories) {
    std::error_code ec;
    if (!std::filesystem::is_directory(repo, ec)) {
      return InvalidArgument("model repository '" + repo.string() +
                             "' does not exist or is not a directory");
    }
  }
  return std::unique_ptr<ModelManager>(new ModelManager(std::move(options)));
}

ModelManager::ModelManager(Options options) : options_(std::move(options)) {}

void ModelManager::LoadAll() {
  auto scanned = ScanRepositories(options_.repositories);
  if (!scanned.ok()) {
    spdlog::error("scanning model repositories failed: {}", scanned.status().message());
    return;
  }
  for (auto& source : *scanned) {
    for (const auto& w : source.warnings) spdlog::warn("{}", w);
    ModelEntry entry;
    auto fail_model = [&](const std::string& reason) {
      spdlog::error("model '{}' is UNAVAILABLE: {}", source.name, reason);
      entry.reason = reason;
    };
    if (!source.status.ok()) {
      fail_model(source.status.message());
    } else {
      std::string platform = PlatformOf(source);
      auto backend_it = options_.backends.find(platform);
      std::vector<int64_t> versions =
          SelectVersions(source.config.version_policy(), source.versions);
      if (platform.empty()) {
        fail_model(
            "cannot tell the model's platform: set platform or backend in config.pbtxt, "
            "or put a model.onnx in a version folder");
      } else if (backend_it == options_.backends.end()) {
        fail_model("platform '" + platform + "' is not supported by this server");
      } else if (versions.empty()) {
        fail_model(source.versions.empty()
                       ? "no version folder (a positive integer such as 1/) in " +
                             source.dir.string()
                       : "the version policy selects none of the versions on disk");
      } else {
        for (int64_t v : versions) {
          VersionSlot slot;
          slot.status = {source.name, v, ModelState::kLoading, ""};
          LoadSpec spec;
          spec.model_name = source.name;
          spec.version = v;
          spec.model_dir = source.dir;
          spec.version_dir = source.dir / std::to_string(v);
          spec.config = source.config;
          spec.has_config = source.has_config;
          auto loaded = backend_it->second->Load(spec);
          if (!loaded.ok()) {
            slot.status.state = ModelState::kUnavailable;
            slot.status.reason = loaded.status().message();
            spdlog::error("model '{}' version {} failed to load: {}", source.name, v,
                          slot.status.reason);
          } else {
            auto servable = std::make_shared<ServableModel>();
            servable->name = source.name;
            servable->version = v;
            servable->version_string = std::to_string(v);
            servable->config = std::move((*loaded)->config);
            servable->scheduler = ModelScheduler::Create(std::move((*loaded)->instances),
                                                         options_.pool, options_.scheduler);
            slot.handle = std::move(servable);
            slot.status.state = ModelState::kReady;
            spdlog::info("model '{}' version {} is READY", source.name, v);
          }
          entry.versions.emplace(v, std::move(slot));
        }
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    models_[source.name] = std::move(entry);
  }
}

StatusOr<ModelHandle> ModelManager::Get(std::string_view name, std::string_view version) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = models_.find(name);
  if (it == models_.end()) return NotFound("unknown model '" + std::string(name) + "'");
  const ModelEntry& entry = it->second;
  if (version.empty()) {
    for (auto v = entry.versions.rbegin(); v != entry.versions.rend(); ++v) {
      if (v->second.handle) return v->second.handle;
    }
    std::string reason = entry.reason;
    if (reason.empty() && !entry.versions.empty()) {
      reason = entry.versions.rbegin()->second.status.reason;
    }
    return Unavailable("model '" + std::string(name) + "' has no ready version" +
                       (reason.empty() ? std::string() : ": " + reason));
  }
  int64_t v = 0;
  auto [end, ec] = std::from_chars(version.data(), version.data() + version.size(), v);
  if (ec != std::errc() || end != version.data() + version.size() || v <= 0) {
    return NotFound("model '" + std::string(name) + "' has no version '" + std::string(version) +
                    "': versions are positive integers");
  }
  auto slot = entry.versions.find(v);
  if (slot == entry.versions.end()) {
    return NotFound("model '" + std::string(name) + "' has no version " + std::string(version));
  }
  if (!slot->second.handle) {
    return Unavailable(
        "model '" + std::string(name) + "' version " + std::string(version) + " is " +
        std::string(ModelStateName(slot->second.status.state)) +
        (slot->second.status.reason.empty() ? std::string() : ": " + slot->second.status.reason));
  }
  return slot->second.handle;
}

std::vector<ModelVersionStatus> ModelManager::Index() const {
  std::vector<ModelVersionStatus> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, entry] : models_) {
    if (entry.versions.empty()) {
      out.push_back({name, 0, ModelState::kUnavailable, entry.reason});
      continue;
    }
    for (const auto& [v, slot] : entry.versions) out.push_back(slot.status);
  }
  return out;
}

StatusOr<std::vector<ModelVersionStatus>> ModelManager::Versions(std::string_view name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = models_.find(name);
  if (it == models_.end()) return NotFound("unknown model '" + std::string(name) + "'");
  std::vector<ModelVersionStatus> out;
  for (const auto& [v, slot] : it->second.versions) out.push_back(slot.status);
  return out;
}

}  // namespace mm
