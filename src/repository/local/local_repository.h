// A model repository in a local folder (or a mounted volume): Triton's
// layout read in place. Fetch returns the version folder itself; nothing is
// copied, so a version is on disk for as long as the folder holds it.
//
// The folder is named as given (ModelSource::dir is <path>/<model>, the
// path not resolved) and keyed by LocalRepositoryKey(path)
// (repository_key.h): a symlinked folder has its target's key, taken once at
// Open, so the key stays put if the link is later repointed.
//
// Thread-safety: every method may be called concurrently; it holds no
// mutable state.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "repository/model_repository.h"

namespace mm {

class LocalRepository final : public ModelRepository {
 public:
  // NOT_FOUND when `path` does not exist, INVALID_ARGUMENT when it is not a
  // directory, FAILED_PRECONDITION when it cannot be read (a permission);
  // each names the path and says what was expected.
  static StatusOr<std::unique_ptr<LocalRepository>> Open(const std::filesystem::path& path);

  const std::string& key() const override { return key_; }
  // As ModelRepository says; also fails as Open does when the folder has gone.
  StatusOr<std::vector<ModelSource>> List() const override;
  // NOT_FOUND too for a `name` List() would never give: empty, hidden
  // (".", ".." included), or with a '/' or NUL in it.
  StatusOr<ModelSource> Scan(std::string_view name) const override;
  // INVALID_ARGUMENT for a `source` another repository listed.
  StatusOr<LocalModelVersion> Fetch(const ModelSource& source, int64_t version,
                                    const FetchProgress& progress) override;
  // An inotify watch of the folder (inotify_watch.h says what it sees and
  // where it falls back to scanning); UNAVAILABLE where inotify cannot tell.
  StatusOr<std::unique_ptr<RepositoryWatch>> Watch() const override;

  // The folder as given on the command line.
  const std::filesystem::path& path() const { return path_; }

 private:
  explicit LocalRepository(std::filesystem::path path);

  const std::filesystem::path path_;
  const std::string key_;  // LocalRepositoryKey(path_)
};

}  // namespace mm
