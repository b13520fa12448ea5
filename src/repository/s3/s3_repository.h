// A model repository in an S3-compatible bucket: s3://BUCKET[/PREFIX], in
// Triton's layout under the prefix (PREFIX/<model>/config.pbtxt,
// PREFIX/<model>/<version>/...).
//
// List and Scan read the bucket's listing (ListObjectsV2) and each model's
// config.pbtxt, which is fetched again only when its ETag changes. A
// version's fingerprint hashes its objects' keys, sizes and ETags, so a poll
// or an explicit load sees a changed object as a changed version. Fetch
// downloads the version's objects (and the model folder's own files, such as
// a drift baseline or warmup data, not other versions') into the ModelCache,
// in an entry named by what it downloads: an unchanged version is not
// fetched again, even after a restart.
//
// Object keys are hostile input: a key whose path has an empty, "." or ".."
// segment, or a NUL, is skipped with a warning; so is a model name List()
// would not give a local folder (hidden, empty).
//
// Thread-safety: every method may be called concurrently.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "core/thread_annotations.h"
#include "repository/model_cache.h"
#include "repository/model_repository.h"
#include "repository/s3/s3_client.h"

namespace mm {

class S3Repository final : public ModelRepository {
 public:
  struct Options {
    std::string uri;  // s3://BUCKET[/PREFIX]
    std::shared_ptr<S3Client> client;
    std::shared_ptr<ModelCache> cache;
  };
  // INVALID_ARGUMENT for a URI that is not s3://BUCKET[/PREFIX] with a valid
  // bucket name. Contacts nothing: an unreachable store shows in List.
  static StatusOr<std::unique_ptr<S3Repository>> Open(Options options);

  const std::string& key() const override { return key_; }
  StatusOr<std::vector<ModelSource>> List() const override;
  StatusOr<ModelSource> Scan(std::string_view name) const override;
  StatusOr<LocalModelVersion> Fetch(const ModelSource& source, int64_t version,
                                    const FetchProgress& progress) override;

  const std::string& bucket() const { return bucket_; }
  const std::string& prefix() const { return prefix_; }

 private:
  S3Repository(Options options, std::string key, std::string bucket, std::string prefix);

  // The models among `objects` (all under prefix_), configs read.
  StatusOr<std::vector<ModelSource>> Build(std::vector<S3Object> objects) const;
  // Fills `source`'s config from config.pbtxt (null: none; then from the
  // newest version's MLmodel, if it has one).
  void ReadConfig(ModelSource& source, const RemoteFile* config) const;
  // A small file of model `name` (config.pbtxt, MLmodel), fetched again only
  // when its ETag changed.
  StatusOr<std::string> ReadSmall(const std::string& name, const RemoteFile& file) const;

  const Options options_;
  const std::string key_;
  const std::string bucket_;
  const std::string prefix_;  // "" or "a/b/" (ends with '/')

  // Each model's config.pbtxt and MLmodel as last read ("<model>/<path>"),
  // by ETag: a poll fetches only the ones that changed.
  struct CachedConfig {
    std::string etag;
    std::string text;
  };
  mutable Mutex mu_;
  mutable std::map<std::string, CachedConfig> configs_ MM_GUARDED_BY(mu_);
};

}  // namespace mm
