#include "repository/local/local_repository.h"

#include <algorithm>
#include <system_error>
#include <utility>

#include "repository/local/inotify_watch.h"
#include "repository/repository_key.h"

namespace mm {

namespace fs = std::filesystem;

namespace {

std::string Quoted(const fs::path& p) { return "'" + p.string() + "'"; }

// The checks of Open, repeated by List (the folder may go while the server
// runs). Words as the repository scan has always said them.
Status CheckDirectory(const fs::path& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory) {
    return FailedPrecondition("cannot read model repository " + Quoted(path) + ": " + ec.message() +
                              "; expected a readable directory of model directories");
  }
  if (!fs::exists(st)) {
    return NotFound("model repository " + Quoted(path) +
                    " does not exist; expected a directory of model directories");
  }
  if (!fs::is_directory(st)) {
    return InvalidArgument("model repository " + Quoted(path) +
                           " is not a directory; expected a directory of model directories");
  }
  return OkStatus();
}

// Whether List() would list a folder called `name`: one path component, not
// hidden. Rules out "", ".", "..", "a/b", "/abs" and names with a NUL (which
// the OS would cut short).
bool IsModelFolderName(std::string_view name) {
  return !name.empty() && name[0] != '.' && name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

}  // namespace

StatusOr<std::unique_ptr<LocalRepository>> LocalRepository::Open(const fs::path& path) {
  MM_RETURN_IF_ERROR(CheckDirectory(path));
  return std::unique_ptr<LocalRepository>(new LocalRepository(path));
}

LocalRepository::LocalRepository(fs::path path)
    : path_(std::move(path)), key_(LocalRepositoryKey(path_)) {}

StatusOr<std::vector<ModelSource>> LocalRepository::List() const {
  MM_RETURN_IF_ERROR(CheckDirectory(path_));
  std::vector<ModelSource> sources;
  std::error_code ec;
  for (fs::directory_iterator it(path_, ec), end; !ec && it != end; it.increment(ec)) {
    if (!IsModelFolderName(it->path().filename().string())) continue;
    std::error_code dir_ec;
    if (!it->is_directory(dir_ec)) continue;  // symlinks followed, as ScanModel does
    sources.push_back(ScanModel(it->path()));
    sources.back().repository = key_;
  }
  if (ec) {
    return FailedPrecondition("cannot read model repository " + Quoted(path_) + ": " +
                              ec.message());
  }
  std::sort(sources.begin(), sources.end(),
            [](const ModelSource& a, const ModelSource& b) { return a.name < b.name; });
  return sources;
}

StatusOr<ModelSource> LocalRepository::Scan(std::string_view name) const {
  std::error_code ec;
  if (!IsModelFolderName(name) || !fs::is_directory(path_ / std::string(name), ec)) {
    return NotFound("model repository " + Quoted(path_) + " has no model '" + std::string(name) +
                    "'");
  }
  ModelSource source = ScanModel(path_ / std::string(name));
  source.repository = key_;
  return source;
}

StatusOr<LocalModelVersion> LocalRepository::Fetch(const ModelSource& source, int64_t version,
                                                   const FetchProgress&) {
  if (source.repository != key_) {
    return InvalidArgument("model '" + source.name + "' was listed by repository '" +
                           source.repository + "', not by " + Quoted(path_) +
                           "; expected a ModelSource from this repository's List or Scan");
  }
  if (std::find(source.versions.begin(), source.versions.end(), version) == source.versions.end()) {
    return NotFound("model '" + source.name + "' has no version " + std::to_string(version) +
                    " in repository " + Quoted(path_));
  }
  return LocalModelVersion{source.dir, source.dir / std::to_string(version), nullptr};
}

StatusOr<std::unique_ptr<RepositoryWatch>> LocalRepository::Watch() const {
  MM_ASSIGN_OR_RETURN(auto watch, InotifyWatch::Create(path_));
  return std::unique_ptr<RepositoryWatch>(std::move(watch));
}

}  // namespace mm
