#include "backends/registry.h"

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <utility>

namespace mm {
namespace {

namespace fs = std::filesystem;

std::string Quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

// For a test, or a backend shared by two registries: Load goes to the
// borrowed one (a load-time call; nothing here is on the request path).
class BorrowedBackend final : public Backend {
 public:
  explicit BorrowedBackend(Backend* backend) : backend_(backend) {}
  StatusOr<std::unique_ptr<LoadedModel>> Load(const LoadSpec& spec) override {
    return backend_->Load(spec);
  }

 private:
  Backend* const backend_;
};

// Whether `file` (a file or a folder) is in one of the model's version
// folders: on disk, or in a remote repository's listing.
bool InAVersionFolder(const ModelSource& source, const std::string& file) {
  for (int64_t version : source.versions) {
    if (source.dir.empty()) {
      const std::string path = std::to_string(version) + "/" + file;
      for (const RemoteFile& remote : source.remote_files) {
        if (remote.path == path || remote.path.rfind(path + "/", 0) == 0) return true;
      }
      continue;
    }
    std::error_code ec;
    if (fs::exists(source.dir / std::to_string(version) / file, ec)) return true;
  }
  return false;
}

}  // namespace

std::function<StatusOr<std::unique_ptr<Backend>>(const BackendSettings&)> BorrowBackend(
    Backend* backend) {
  return [backend](const BackendSettings&) -> StatusOr<std::unique_ptr<Backend>> {
    return std::unique_ptr<Backend>(new BorrowedBackend(backend));
  };
}

Status BackendRegistry::Register(BackendRegistration registration) {
  if (registration.name.empty()) return InvalidArgument("a backend registered without a name");
  const std::string label = "backend " + Quoted(registration.name);
  if (!registration.create) return InvalidArgument(label + " registered without a factory");
  std::vector<std::string> names = registration.platforms;
  names.push_back(registration.name);
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    if (name.empty()) return InvalidArgument(label + " registers an empty platform name");
    const bool repeated = std::find(names.begin(), names.begin() + i, name) != names.begin() + i;
    // Its own name may also be one of its platforms ("mmserve_chaos").
    if (repeated && i + 1 != names.size()) {
      return InvalidArgument(label + " lists platform " + Quoted(name) + " twice");
    }
    for (const auto* taken : {&by_name_, &by_platform_}) {
      if (auto it = taken->find(name); it != taken->end()) {
        return InvalidArgument(label + ": the name " + Quoted(name) + " is taken by backend " +
                               Quoted(it->second->registration.name) +
                               "; expected names no other backend uses");
      }
    }
  }
  auto entry = std::make_unique<Entry>(std::move(registration));
  by_name_.emplace(entry->registration.name, entry.get());
  for (const std::string& platform : entry->registration.platforms) {
    by_platform_.emplace(platform, entry.get());
  }
  entries_.push_back(std::move(entry));
  return OkStatus();
}

Status BackendRegistry::Configure(std::string_view backend, BackendSettings settings) {
  auto it = by_name_.find(backend);
  if (it == by_name_.end()) {
    return InvalidArgument("backend settings for " + Quoted(backend) +
                           ", a backend this server does not have; its backends: " + Available());
  }
  it->second->settings = std::move(settings);
  return OkStatus();
}

StatusOr<std::string> BackendRegistry::EnableTestBackends() {
  std::string summaries;
  for (const auto& entry : entries_) {
    if (!entry->registration.test_only) continue;
    if (!summaries.empty()) summaries += "; ";
    summaries += entry->registration.summary.empty() ? "backend " + Quoted(entry->registration.name)
                                                     : entry->registration.summary;
  }
  if (summaries.empty()) {
    return FailedPrecondition(
        "this build has no test backends; expected a build configured with "
        "-DMMSERVE_TEST_BACKENDS=ON");
  }
  test_backends_enabled_ = true;
  return summaries;
}

BackendRegistry::Entry* BackendRegistry::Lookup(
    const std::map<std::string, Entry*, std::less<>>& names, std::string_view name) const {
  auto it = names.find(name);
  if (it == names.end()) return nullptr;
  if (it->second->registration.test_only && !test_backends_enabled_) return nullptr;
  return it->second;
}

std::string BackendRegistry::Available() const {
  std::string out;
  for (const auto& entry : entries_) {
    const BackendRegistration& r = entry->registration;
    if (r.test_only && !test_backends_enabled_) continue;
    if (!out.empty()) out += ", ";
    out += r.name;
    if (!r.platforms.empty()) {
      out += r.platforms.size() == 1 ? " (platform " : " (platforms ";
      for (size_t i = 0; i < r.platforms.size(); ++i) out += (i ? ", " : "") + r.platforms[i];
      out += ")";
    }
  }
  return out.empty() ? "none" : out;
}

Status BackendRegistry::Unsupported(std::string_view kind, std::string_view name) const {
  return InvalidArgument(std::string(kind) + " " + Quoted(name) +
                         " is not supported by this server; its backends: " + Available());
}

StatusOr<BackendRegistry::Entry*> BackendRegistry::ByFiles(const ModelSource& source) const {
  const std::string& custom = source.config.default_model_filename();
  std::vector<Entry*> file_based;
  for (const auto& entry : entries_) {
    if (entry->registration.default_model_file.empty()) continue;
    if (Lookup(by_name_, entry->registration.name) == nullptr) continue;  // hidden
    file_based.push_back(entry.get());
  }
  std::vector<Entry*> found;
  if (custom.empty()) {
    for (Entry* entry : file_based) {
      if (InAVersionFolder(source, entry->registration.default_model_file)) found.push_back(entry);
    }
  } else if (InAVersionFolder(source, custom)) {
    // The file's extension says whose it is ("net.onnx"); with one backend
    // that loads files, any name is that backend's ("custom.bin").
    const fs::path extension = fs::path(custom).extension();
    for (Entry* entry : file_based) {
      if (fs::path(entry->registration.default_model_file).extension() == extension) {
        found.push_back(entry);
      }
    }
    if (found.empty() && file_based.size() == 1) found = file_based;
  }
  if (found.size() == 1) return found.front();

  if (found.empty()) {
    std::string files;
    if (!custom.empty()) {
      files = "its default_model_filename " + Quoted(custom);
    } else {
      for (size_t i = 0; i < file_based.size(); ++i) {
        const BackendRegistration& r = file_based[i]->registration;
        files += i == 0 ? "a " : i + 1 == file_based.size() ? " or a " : ", a ";
        files += r.default_model_file;
        if (file_based.size() > 1) files += " (" + r.name + ")";
      }
    }
    return InvalidArgument(
        "cannot tell the model's platform: set platform or backend in config.pbtxt" +
        (files.empty() ? "; this server's backends: " + Available()
                       : ", or put " + files + " in a version folder"));
  }
  std::string which;
  for (size_t i = 0; i < found.size(); ++i) {
    const BackendRegistration& r = found[i]->registration;
    which += (i ? ", " : "") + (custom.empty() ? r.default_model_file : custom) + " for " + r.name;
  }
  return InvalidArgument("cannot tell the model's platform: its version folders hold files of " +
                         std::to_string(found.size()) + " backends (" + which +
                         "); set backend in config.pbtxt to choose one");
}

StatusOr<ResolvedBackend> BackendRegistry::Resolve(const ModelSource& source) {
  const std::string& backend = source.config.backend();
  const std::string& platform = source.config.platform();
  if (backend.empty() && platform.empty()) {
    MM_ASSIGN_OR_RETURN(Entry * entry, ByFiles(source));
    return Ready(*entry);
  }
  Entry* by_platform = platform.empty() ? nullptr : Lookup(by_platform_, platform);
  if (backend.empty()) {
    if (by_platform == nullptr) return Unsupported("platform", platform);
    return Ready(*by_platform);
  }
  Entry* by_backend = Lookup(by_name_, backend);
  if (by_backend == nullptr) return Unsupported("backend", backend);
  if (!platform.empty() && by_platform != by_backend) {
    std::string expected;
    for (const std::string& own : by_backend->registration.platforms) {
      expected += (expected.empty() ? "platform " : " or ") + Quoted(own);
    }
    expected += expected.empty() ? "no platform" : ", or no platform,";
    return InvalidArgument("the config's backend " + Quoted(backend) + " and platform " +
                           Quoted(platform) + " contradict: platform " + Quoted(platform) +
                           (by_platform == nullptr ? " is not supported by this server"
                                                   : " is served by backend " +
                                                         Quoted(by_platform->registration.name)) +
                           "; expected " + expected + " with backend " + Quoted(backend));
  }
  return Ready(*by_backend);
}

StatusOr<ResolvedBackend> BackendRegistry::Find(std::string_view name) {
  Entry* entry = Lookup(by_name_, name);
  if (entry == nullptr) entry = Lookup(by_platform_, name);
  if (entry == nullptr) return Unsupported("platform", name);
  return Ready(*entry);
}

Status BackendRegistry::CreateAll() {
  for (const auto& entry : entries_) {
    if (Lookup(by_name_, entry->registration.name) == nullptr) continue;  // hidden
    if (entry->registration.lazy) continue;
    MM_RETURN_IF_ERROR(Ready(*entry).status());
  }
  return OkStatus();
}

StatusOr<ResolvedBackend> BackendRegistry::Ready(Entry& entry) {
  const BackendRegistration& r = entry.registration;
  MutexLock lock(entry.mu);
  if (entry.backend == nullptr) {
    auto created = r.create(entry.settings);
    if (!created.ok()) return created.status().WithContext("backend " + Quoted(r.name));
    if (*created == nullptr) return Internal("backend " + Quoted(r.name) + ": created nothing");
    entry.backend = std::move(*created);
  }
  return ResolvedBackend{.registration = &r,
                         .platform = r.platforms.empty() ? r.name : r.platforms.front(),
                         .backend = entry.backend.get()};
}

}  // namespace mm
