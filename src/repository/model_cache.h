// The local cache of model versions fetched from remote repositories (s3://,
// mlflow://): a folder (--model-cache-dir) holding one folder per fetched
// version, named by an id its repository derives from what it fetched (the
// objects' keys, sizes and ETags), so that an unchanged version is found
// again after a restart and a changed one is a new entry.
//
// Contract:
//  1. An entry appears whole or not at all: it is filled in a staging folder
//     (<dir>/.staging) and renamed into place by Commit. Leftovers of a crash
//     are removed at Open.
//  2. A lease (Hit::lease) pins its entry: a pinned entry is never evicted.
//     The lifecycle holds the lease for as long as a version loaded from the
//     entry exists (a worker restart reloads from it).
//  3. The cache holds at most `capacity_bytes` of entries (0: no cap). To
//     make room, Stage evicts unpinned entries, least recently used first
//     (Find and Commit count as uses; an entry's folder keeps its last use as
//     its mtime, so the order survives a restart). It also evicts while the
//     disk has less free space than the version needs. When neither can be
//     made, Stage is RESOURCE_EXHAUSTED, naming the figures.
//  4. One server process owns a cache folder (an flock on <dir>/.lock):
//     Open fails with FAILED_PRECONDITION while another holds it.
//  5. Thread-safe; Find, Stage and Commit may run concurrently (loader
//     threads). They block on the filesystem.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/thread_annotations.h"

namespace mm {

class ModelCache : public std::enable_shared_from_this<ModelCache> {
 public:
  struct Options {
    std::filesystem::path dir;
    uint64_t capacity_bytes = 0;  // 0: no cap
  };

  // Creates `dir` if needed. INVALID_ARGUMENT for an empty dir or one that is
  // not a folder; FAILED_PRECONDITION when it cannot be written or another
  // process holds it.
  static StatusOr<std::shared_ptr<ModelCache>> Open(Options options);
  ~ModelCache();

  // A usable entry, pinned while `lease` is held.
  struct Hit {
    std::filesystem::path dir;
    std::shared_ptr<const void> lease;
  };

  // The complete entry `id`, if the cache holds one that `verify` accepts
  // (given its folder; e.g. every file there with its listed size). An entry
  // `verify` refuses is evicted (unless pinned).
  std::optional<Hit> Find(const std::string& id,
                          const std::function<bool(const std::filesystem::path&)>& verify);

  // A folder being filled, removed on destruction unless committed.
  class Staging {
   public:
    ~Staging();
    const std::filesystem::path& dir() const { return dir_; }

   private:
    friend class ModelCache;
    Staging(std::shared_ptr<ModelCache> cache, std::string id, std::filesystem::path dir,
            uint64_t bytes)
        : cache_(std::move(cache)), id_(std::move(id)), dir_(std::move(dir)), bytes_(bytes) {}
    std::shared_ptr<ModelCache> cache_;
    std::string id_;
    std::filesystem::path dir_;
    uint64_t bytes_;
    bool committed_ = false;
  };

  // An empty staging folder for entry `id` (letters, digits, '.', '_', '-',
  // not starting with '.', at most 200 characters) of `bytes`, after making
  // room (contract 3). The bytes count against the cap until Commit or the
  // Staging's end.
  StatusOr<std::unique_ptr<Staging>> Stage(const std::string& id, uint64_t bytes);

  // Renames the filled staging folder into place as entry `id` (replacing an
  // unpinned entry of that id) and returns it pinned.
  StatusOr<Hit> Commit(std::unique_ptr<Staging> staging);

  struct Usage {
    uint64_t bytes = 0;     // entries held, plus stagings in progress
    uint64_t capacity = 0;  // 0: no cap
    size_t entries = 0;
    size_t pinned = 0;
    uint64_t evictions = 0;  // since Open
  };
  Usage usage() const;
  const std::filesystem::path& dir() const { return options_.dir; }

 private:
  struct Entry {
    uint64_t bytes = 0;
    int64_t last_use = 0;  // a tick: larger is more recent
    int pins = 0;
  };
  explicit ModelCache(Options options);

  Hit Pin(const std::string& id, Entry& entry) MM_REQUIRES(mu_);
  void Unpin(const std::string& id);
  // Evicts the least recently used unpinned entry into `*trash` (Trash);
  // false when there is none. `*freed` grows by its size.
  bool EvictOne(std::vector<std::filesystem::path>* trash, uint64_t* freed) MM_REQUIRES(mu_);
  // Moves the folder `dir` out of the way under mu_ (a rename into the
  // staging folder) and adds where it went to `*trash`, for the caller to
  // delete once it let go of mu_: deleting a large entry takes long, and
  // every fetch, hit and lease release waits on mu_.
  void Trash(const std::filesystem::path& dir, std::vector<std::filesystem::path>* trash)
      MM_REQUIRES(mu_);
  void Unstage(uint64_t bytes);

  const Options options_;
  int lock_fd_ = -1;

  mutable Mutex mu_;
  std::map<std::string, Entry> entries_ MM_GUARDED_BY(mu_);
  uint64_t bytes_ MM_GUARDED_BY(mu_) = 0;          // of entries_
  uint64_t staging_bytes_ MM_GUARDED_BY(mu_) = 0;  // of stagings in progress
  int64_t tick_ MM_GUARDED_BY(mu_) = 0;
  uint64_t staged_ MM_GUARDED_BY(mu_) = 0;  // names staging folders apart
  uint64_t evictions_ MM_GUARDED_BY(mu_) = 0;
};

}  // namespace mm
