// A RepositoryWatch over a local repository folder with Linux inotify: a poll
// scans the models whose folders saw an event since the last poll, not all of
// them (O(changes), not O(models)).
//
// What is watched: the repository folder (models added, removed, renamed,
// relinked), each model folder (config.pbtxt, version folders coming and
// going) and every folder at any depth of each version folder (what a
// version's fingerprint covers, repository.h). Watches follow a symlinked
// model folder to its target. The kernel queues events as the changes happen;
// Take() drains the queue without blocking, so no thread is needed and a
// change that completed before Take() is always in its answer.
//
// Where inotify cannot see a change, the model or the whole repository is
// scanned every time instead (never silently missed):
//  - the repository's filesystem is not one where every change goes through
//    this kernel (NFS, CIFS, FUSE, 9p, ...): Create fails, the caller lists;
//  - a model folder on such a filesystem (a symlink or mount point to one),
//    a model holding a symlink below its folder (a symlinked file's target
//    changes without an event here), a model deeper than kMaxDepth or with
//    more than kMaxDirsPerModel folders, or whose folders could not be
//    watched (the watch limit, fs.inotify.max_user_watches, was reached):
//    that model is named in every Take() (it is re-examined each time, so it
//    leaves the list once the cause has gone);
//  - the event queue overflowed (fs.inotify.max_queued_events), or the
//    repository folder itself was removed or replaced: Take() answers
//    `everything` and rebuilds every watch.
//
// Thread-safety: Take() may be called concurrently (one mutex).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "core/thread_annotations.h"
#include "repository/model_repository.h"

namespace mm {

class InotifyWatch final : public RepositoryWatch {
 public:
  static constexpr int kMaxDepth = 32;
  static constexpr size_t kMaxDirsPerModel = 4096;

  // Watches `root` (a repository folder) and every model in it. UNAVAILABLE,
  // saying why, when inotify cannot be used there (the filesystem's type, no
  // inotify instance left, the folder unreadable).
  static StatusOr<std::unique_ptr<InotifyWatch>> Create(const std::filesystem::path& root);
  ~InotifyWatch() override;

  Changes Take() override MM_EXCLUDES(mu_);

  // How many folders are watched now (tests, logs).
  size_t watched_folders() const MM_EXCLUDES(mu_);

 private:
  explicit InotifyWatch(std::filesystem::path root);

  Status Open() MM_REQUIRES(mu_);
  void Close() MM_REQUIRES(mu_);
  // Walks the model folder `name` now: watches what it holds, drops the
  // watches of folders it no longer holds, and decides whether the model
  // must be scanned every time (always_).
  void SyncModel(const std::string& name) MM_REQUIRES(mu_);
  // Watches `dir` and its subfolders for `model`; false when the model must
  // be scanned every time instead.
  bool WatchTree(const std::string& model, const std::filesystem::path& dir, int depth,
                 std::vector<int>& seen) MM_REQUIRES(mu_);
  void Detach(const std::string& model, int wd) MM_REQUIRES(mu_);

  const std::filesystem::path root_;
  mutable Mutex mu_;
  int fd_ MM_GUARDED_BY(mu_) = -1;
  int root_wd_ MM_GUARDED_BY(mu_) = -1;
  dev_t root_device_ MM_GUARDED_BY(mu_) = 0;  // the repository folder's filesystem
  // The models of each watched folder, by watch descriptor. Two models'
  // folders may be one inode (two symlinks to one target): one watch, both.
  std::unordered_map<int, std::vector<std::string>> folders_ MM_GUARDED_BY(mu_);
  std::unordered_map<std::string, std::vector<int>> model_folders_ MM_GUARDED_BY(mu_);
  std::set<std::string> always_ MM_GUARDED_BY(mu_);       // named in every Take()
  std::vector<std::string> warnings_ MM_GUARDED_BY(mu_);  // for the next Take()
  bool warned_limit_ MM_GUARDED_BY(mu_) = false;
};

}  // namespace mm
