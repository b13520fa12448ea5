// The MLflow Model Registry as a model repository: mlflow://HOST[:PORT]
// (mlflows:// over TLS). Each registered model is a model; its MLflow model
// versions are its versions (status READY only), so Triton's version
// policies apply (default: the newest). With an alias (--mlflow-alias
// champion) only the version the alias points to is listed; with a stage
// (--mlflow-stage Production) only the versions in that stage. When the
// alias moves, the listing changes, and a poll swaps versions with zero
// downtime.
//
// A version's artifacts are an MLflow model (mlflow/mlmodel.h): the config
// comes from the newest listed version's MLmodel. Artifacts are fetched
// through the tracking server's artifact proxy (mlflow-artifacts:/...), or
// straight from S3 when the registry points there (s3://..., through the S3
// client and settings of s3:// repositories), into the ModelCache. Versions
// are immutable in MLflow: a version's fingerprint is its identity (source,
// run, last update), and its cache entry is found again after a restart.
//
// Registered model names are hostile input: a name with '/', a NUL, a
// leading '.', or a quote is skipped with a warning.
//
// Thread-safety: every method may be called concurrently.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "core/thread_annotations.h"
#include "repository/mlflow/mlflow_client.h"
#include "repository/model_cache.h"
#include "repository/model_repository.h"
#include "repository/s3/s3_client.h"

namespace mm {

class MlflowRepository final : public ModelRepository {
 public:
  struct Options {
    std::string uri;    // mlflow://HOST[:PORT][/PATH]
    std::string alias;  // --mlflow-alias; empty: every READY version
    std::string stage;  // --mlflow-stage; empty: any stage
    std::shared_ptr<MlflowClient> client;
    std::shared_ptr<ModelCache> cache;
    std::shared_ptr<S3Client> s3;  // for s3:// artifacts; null: refused
  };
  static StatusOr<std::unique_ptr<MlflowRepository>> Open(Options options);

  const std::string& key() const override { return key_; }
  StatusOr<std::vector<ModelSource>> List() const override;
  StatusOr<ModelSource> Scan(std::string_view name) const override;
  StatusOr<LocalModelVersion> Fetch(const ModelSource& source, int64_t version,
                                    const FetchProgress& progress) override;

 private:
  struct Version {
    int64_t number = 0;
    std::string source;  // MLflow's source URI
    std::string run_id;
    std::string stage;
    std::string status;
    int64_t updated = 0;
  };
  struct Registered {
    std::string name;
    std::map<std::string, int64_t> aliases;
    std::vector<Version> versions;
  };

  MlflowRepository(Options options, std::string key);

  StatusOr<std::vector<Registered>> ListRegistered(const std::string* only) const;
  ModelSource Build(const Registered& model) const;
  // Where version `version` of `name`'s artifacts are (get-download-uri), cached.
  StatusOr<std::string> ArtifactUri(const std::string& name, int64_t version) const;
  // The artifacts' files under `uri` (mlflow-artifacts:/ or s3://), paths
  // relative to it, prefixed with "<version>/".
  StatusOr<std::vector<RemoteFile>> ListArtifacts(const std::string& uri, int64_t version) const;
  StatusOr<std::string> ReadArtifact(const std::string& uri, const std::string& path) const;

  const Options options_;
  const std::string key_;

  mutable Mutex mu_;
  // Immutable per version: its artifact URI and its MLmodel, by "name\nversion".
  mutable std::map<std::string, std::string> uris_ MM_GUARDED_BY(mu_);
  mutable std::map<std::string, std::string> mlmodels_ MM_GUARDED_BY(mu_);
};

}  // namespace mm
