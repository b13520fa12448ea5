// A model repository in a local folder (or a mounted volume): Triton's
// layout read in place. Fetch returns the version folder itself; nothing is
// copied.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "repository/model_repository.h"

namespace mm {

class LocalRepository final : public ModelRepository {
 public:
  // NOT_FOUND when `path` does not exist, INVALID_ARGUMENT when it is not a
  // directory; both name the path and say what was expected.
  static StatusOr<std::unique_ptr<LocalRepository>> Open(const std::filesystem::path& path);

  const std::string& key() const override { return key_; }
  StatusOr<std::vector<ModelSource>> List() const override;
  StatusOr<ModelSource> Scan(std::string_view name) const override;
  StatusOr<LocalModelVersion> Fetch(const ModelSource& source, int64_t version) override;

  // The folder as given on the command line.
  const std::filesystem::path& path() const { return path_; }

 private:
  explicit LocalRepository(std::filesystem::path path);

  const std::filesystem::path path_;
  const std::string key_;  // PathKey(path_)
};

}  // namespace mm
