// The ModelRepository seam: where model files come from.
//
// A repository holds models in Triton's layout (repository.h): a folder per
// model, a config.pbtxt, a folder per version. Kinds: a local folder
// (local/local_repository.h); remote kinds (s3://, mlflow://) fetch a version
// into a local cache before it loads. The lifecycle and tenancy see only this
// interface; a backend always loads from a local directory.
//
// Contract:
//  1. key() is stable for the repository's lifetime and across restarts
//     given the same --model-repository value: a local folder's PathKey, a
//     remote repository's normalized URI. Tenancy names a namespace's
//     repositories by it; the index, statistics and logs show it.
//  2. List() and Scan() read what the repository holds now and load nothing.
//     A model whose config is unusable still appears, with a non-OK status
//     (ModelSource::status). They fail as a whole only when the repository
//     itself cannot be read.
//  3. Fetch() makes one version of a scanned model available on local disk
//     and returns where; what it returns stays there while its `lease` is
//     held (a local folder's files stay while the folder holds them). It
//     blocks (a remote kind downloads, reporting its progress): loader
//     threads only, never the request path. A half-fetched version is never
//     returned.
//  4. Every method may be called concurrently.
//  5. Watch() is optional: a repository that can tell what changed (a local
//     folder on a filesystem with inotify) returns a RepositoryWatch, so that
//     a poll scans only the models that changed; an error says why it cannot
//     (then the caller List()s every time).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "repository/repository.h"

namespace mm {

// A version on local disk, ready for a backend's LoadSpec.
struct LocalModelVersion {
  std::filesystem::path model_dir;    // holds config.pbtxt, drift baseline, warmup data
  std::filesystem::path version_dir;  // model_dir / <version>
  // Keeps a remote kind's cached copy on disk while held (null: a local
  // folder); the lifecycle holds it for as long as the version is loaded.
  std::shared_ptr<const void> lease;
};

// How far a Fetch has got: bytes on local disk so far, of `total`. Called on
// the fetching thread, a few times a second, also while nothing arrives
// (about once a second). Returning false stops the download (the server is
// stopping): Fetch then returns CANCELLED and leaves nothing behind.
using FetchProgress = std::function<bool(uint64_t fetched, uint64_t total)>;

// What changed in a repository, reported by the repository itself
// (ModelRepository::Watch), so that a poll costs O(changes), not O(models).
//
// Contract:
//  1. Take() returns the names of the model folders that may have changed
//     since the watch was made (the first call) or since the previous Take():
//     added, removed, or anything in them that a scan fingerprints
//     (repository.h). It may name a folder that did not change (that costs
//     the caller one Scan), never miss one that did: a change that completed
//     before Take() was called is in that answer or an earlier one.
//  2. When it cannot tell (its event queue overflowed, the repository's root
//     was replaced), Take() answers `everything`: the caller must List() the
//     repository; the watch goes on from there.
//  3. Take() does not block on the repository beyond walking the folders it
//     must start watching. Thread-safe.
class RepositoryWatch {
 public:
  struct Changes {
    bool everything = false;
    std::vector<std::string> models;  // sorted, unique; empty when `everything`
    // What the watch could not do (a kernel limit reached, why it answered
    // `everything`), for the log; the answer is still complete.
    std::vector<std::string> warnings;
  };
  virtual ~RepositoryWatch() = default;
  virtual Changes Take() = 0;
};

class ModelRepository {
 public:
  virtual ~ModelRepository() = default;

  // See contract 1.
  virtual const std::string& key() const = 0;

  // Every model folder, sorted by name (hidden entries and plain files are
  // skipped). Each ModelSource's `repository` is key().
  virtual StatusOr<std::vector<ModelSource>> List() const = 0;

  // One model by name. NOT_FOUND when the repository has no folder `name`.
  virtual StatusOr<ModelSource> Scan(std::string_view name) const = 0;

  // Version `version` of `source` (from this repository's List or Scan) on
  // local disk. NOT_FOUND for a version the source does not list. `progress`
  // (may be empty) hears about a download.
  virtual StatusOr<LocalModelVersion> Fetch(const ModelSource& source, int64_t version,
                                            const FetchProgress& progress) = 0;

  // Starts watching the repository for changes (contract 5). Make it before
  // the List() it complements: changes from then on are reported. An error
  // (UNIMPLEMENTED, UNAVAILABLE) says why this kind or its filesystem cannot
  // tell what changed. The watch must not outlive the repository.
  virtual StatusOr<std::unique_ptr<RepositoryWatch>> Watch() const {
    return Unimplemented("repository '" + key() + "' cannot report its changes");
  }
};

// What remote repositories share, made at the first one opened: the model
// cache (one folder, owned by this process) and an S3 client per endpoint.
// Thread-compatible: open repositories from one thread (at start, or under
// the caller's lock); the repositories it opens are thread-safe.
class RemoteRepositories {
 public:
  struct Options {
    std::string s3_endpoint;             // --s3-endpoint; empty: from the AWS settings
    std::filesystem::path cache_dir;     // --model-cache-dir; empty: DefaultModelCacheDir()
    uint64_t cache_bytes = 10ull << 30;  // --model-cache-size; 0: no cap
    std::string mlflow_alias;            // --mlflow-alias; empty: every READY version
    std::string mlflow_stage;            // --mlflow-stage; empty: any stage
  };
  explicit RemoteRepositories(Options options);
  ~RemoteRepositories();

  // Opens remote repository `uri` (scheme not empty). INVALID_ARGUMENT for a
  // scheme this build does not serve, or a malformed URI; the cache's and
  // the AWS settings' errors otherwise (each naming what was wrong).
  StatusOr<std::unique_ptr<ModelRepository>> Open(std::string_view uri);

 private:
  struct State;
  const Options options_;
  std::unique_ptr<State> state_;
};

// $XDG_CACHE_HOME/mmserve/models, else $HOME/.cache/mmserve/models, else
// /tmp/mmserve-models.
std::filesystem::path DefaultModelCacheDir();

// Opens a --model-repository value (repository_key.h says how one reads).
// A plain path (or file://PATH) is a local folder, which must exist and be a
// directory (LocalRepository::Open's errors). s3://BUCKET[/PREFIX] and
// mlflow(s)://HOST[:PORT] open through `remote` (null: remote schemes are
// refused). Any other scheme, and
// an empty path, is INVALID_ARGUMENT naming what this build supports. On
// success, key() == RepositoryKey(uri).
StatusOr<std::unique_ptr<ModelRepository>> OpenModelRepository(
    std::string_view uri, RemoteRepositories* remote = nullptr);

// Lists every repository and returns their models sorted by name, stable in
// the order of `repositories` among equal names. A name held by more than
// one repository is returned once per repository, each with an ALREADY_EXISTS
// status naming every copy's folder (ModelSource::dir; "<key>/<name>" for a
// repository without one). Fails with the first repository whose List fails;
// or, given `failures`, skips it and appends its error there (so that one
// unreachable store does not hide the others' models).
StatusOr<std::vector<ModelSource>> ListRepositories(
    const std::vector<const ModelRepository*>& repositories,
    std::vector<Status>* failures = nullptr);

}  // namespace mm
