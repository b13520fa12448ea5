// A folder that holds one model, served as a model of a given name: how
// KServe's storage initializer leaves an InferenceService's storageUri at
// /mnt/models (docs/kserve.md), whatever the model is called inside it.
//
// Two layouts (HoldsOneModel tells them from a repository of model folders):
//  - a model folder: config.pbtxt and version folders (1/, 2/, ...);
//  - the model's own files, as its version 1: model.onnx, model.pt,
//    model.py, an MLflow model's MLmodel, ... (with a config.pbtxt beside
//    them or not).
// It is read through a LocalRepository over a private folder of symbolic
// links, <tmp>/mmserve-model-XXXXXX/<name> -> the folder (or, for the second
// layout, <name>/1 -> the folder and <name>/config.pbtxt -> its config), so
// that scanning, fingerprints and loading are the local repository's own.
// The links are made at Open and removed with the repository.
//
// key() is the folder's LocalRepositoryKey, as a LocalRepository's would be
// (tenancy names it so); the listed model's `dir` is the link folder. Watch
// is unsupported (inotify would watch the links, not the folder): a poll
// lists the folder each time.
//
// Thread-safety: as LocalRepository; every method may be called
// concurrently.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "repository/local/local_repository.h"
#include "repository/model_repository.h"

namespace mm {

class SingleModelRepository final : public ModelRepository {
 public:
  // Whether `path` holds one model rather than model folders: a version
  // folder (a name of digits only) or, at its top, a config.pbtxt, an
  // MLmodel or a file named model.* .
  static bool HoldsOneModel(const std::filesystem::path& path);

  // `name` must be a model name a repository could list (not empty, not
  // hidden, no '/'): INVALID_ARGUMENT otherwise. LocalRepository::Open's
  // errors for `path`; INTERNAL when the link folder cannot be made.
  static StatusOr<std::unique_ptr<SingleModelRepository>> Open(const std::filesystem::path& path,
                                                               const std::string& name);
  ~SingleModelRepository() override;

  const std::string& key() const override { return key_; }
  StatusOr<std::vector<ModelSource>> List() const override;
  StatusOr<ModelSource> Scan(std::string_view name) const override;
  StatusOr<LocalModelVersion> Fetch(const ModelSource& source, int64_t version,
                                    const FetchProgress& progress) override;

 private:
  SingleModelRepository(std::filesystem::path path, std::filesystem::path links,
                        std::unique_ptr<LocalRepository> inner);
  ModelSource Outer(ModelSource source) const;

  const std::filesystem::path path_;              // the folder as given
  const std::filesystem::path links_;             // the private folder of links
  const std::string key_;                         // LocalRepositoryKey(path_)
  const std::unique_ptr<LocalRepository> inner_;  // over links_
};

}  // namespace mm
