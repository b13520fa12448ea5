#include "repository/local/single_model_repository.h"

#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <cctype>
#include <system_error>
#include <utility>

#include "repository/repository_key.h"

namespace mm {

namespace fs = std::filesystem;

namespace {

bool IsVersionName(const std::string& name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

bool SingleModelRepository::HoldsOneModel(const fs::path& path) {
  std::error_code ec;
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code type_ec;
    if (it->is_directory(type_ec)) {
      if (IsVersionName(name)) return true;
    } else if (name == "config.pbtxt" || name == "MLmodel" || name.rfind("model.", 0) == 0) {
      return true;
    }
  }
  return false;
}

StatusOr<std::unique_ptr<SingleModelRepository>> SingleModelRepository::Open(
    const fs::path& path, const std::string& name) {
  if (name.empty() || name[0] == '.' || name.find('/') != std::string::npos ||
      name.find('\0') != std::string::npos) {
    return InvalidArgument("model name '" + name +
                           "' cannot name a model folder; expected a name that is not empty, does "
                           "not start with '.' and has no '/'");
  }
  // The folder's own checks, in a local repository's words.
  MM_RETURN_IF_ERROR(LocalRepository::Open(path).status());
  std::error_code ec;
  const fs::path target = fs::absolute(path, ec);
  if (ec) {
    return Internal("cannot make '" + path.string() + "' an absolute path for model '" + name +
                    "': " + ec.message());
  }
  std::string tmpl = (fs::temp_directory_path(ec) / "mmserve-model-XXXXXX").string();
  if (ec || mkdtemp(tmpl.data()) == nullptr) {
    return Internal("cannot make a folder for model '" + name + "' of '" + path.string() +
                    "' under the temporary directory; expected a writable TMPDIR");
  }
  const fs::path links(tmpl);
  const fs::path model = links / name;
  const bool versioned = [&] {
    std::error_code it_ec;
    for (fs::directory_iterator it(target, it_ec), end; !it_ec && it != end; it.increment(it_ec)) {
      std::error_code type_ec;
      if (it->is_directory(type_ec) && IsVersionName(it->path().filename().string())) return true;
    }
    return false;
  }();
  if (versioned) {
    fs::create_directory_symlink(target, model, ec);
  } else {
    fs::create_directory(model, ec);
    if (!ec) fs::create_directory_symlink(target, model / "1", ec);
    if (!ec && fs::exists(target / "config.pbtxt", ec)) {
      fs::create_symlink(target / "config.pbtxt", model / "config.pbtxt", ec);
    }
  }
  auto inner = ec ? StatusOr<std::unique_ptr<LocalRepository>>(Internal(ec.message()))
                  : LocalRepository::Open(links);
  if (!inner.ok()) {
    fs::remove_all(links, ec);
    return Internal("cannot link model '" + name + "' to '" + path.string() + "' in " +
                    links.string() + ": " + inner.status().message());
  }
  spdlog::info("model repository '{}' holds one model, served as '{}' ({}; through {})",
               path.string(), name, versioned ? "a model folder" : "its files are version 1",
               model.string());
  return std::unique_ptr<SingleModelRepository>(
      new SingleModelRepository(path, links, std::move(*inner)));
}

SingleModelRepository::SingleModelRepository(fs::path path, fs::path links,
                                             std::unique_ptr<LocalRepository> inner)
    : path_(std::move(path)),
      links_(std::move(links)),
      key_(LocalRepositoryKey(path_)),
      inner_(std::move(inner)) {}

SingleModelRepository::~SingleModelRepository() {
  std::error_code ec;
  fs::remove_all(links_, ec);  // the links only: remove_all does not follow them
}

ModelSource SingleModelRepository::Outer(ModelSource source) const {
  source.repository = key_;
  return source;
}

StatusOr<std::vector<ModelSource>> SingleModelRepository::List() const {
  MM_RETURN_IF_ERROR(LocalRepository::Open(path_).status());  // the folder has not gone
  MM_ASSIGN_OR_RETURN(std::vector<ModelSource> sources, inner_->List());
  for (ModelSource& source : sources) source = Outer(std::move(source));
  return sources;
}

StatusOr<ModelSource> SingleModelRepository::Scan(std::string_view name) const {
  MM_ASSIGN_OR_RETURN(ModelSource source, inner_->Scan(name));
  return Outer(std::move(source));
}

StatusOr<LocalModelVersion> SingleModelRepository::Fetch(const ModelSource& source, int64_t version,
                                                         const FetchProgress& progress) {
  if (source.repository != key_) {
    return InvalidArgument("model '" + source.name + "' was listed by repository '" +
                           source.repository + "', not by '" + path_.string() +
                           "'; expected a ModelSource from this repository's List or Scan");
  }
  ModelSource inner = source;
  inner.repository = inner_->key();
  return inner_->Fetch(inner, version, progress);
}

}  // namespace mm
