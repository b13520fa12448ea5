// The lifecycle's view of what the repositories hold: the models registered
// at start, explicit mode's rescans for the index, and poll mode's scans that
// load, reload and unload what changed (fingerprints, repository.h).
//
// A poll (and a rescan) costs O(changes) where the repository can tell what
// changed (ModelRepository::Watch: a local folder with inotify): only the
// models its watch names are scanned. A repository without a watch, or whose
// watch cannot tell this time (an overflow), is listed in full, as is every
// repository at Start(). The watches are made by the first poll or rescan
// (none mode has neither), which then lists every repository, so that start
// costs one listing and a change made before the watches existed is seen.
//
// Contract:
//  1. Scans run on the caller's thread (Start, an index rescan, Poll) or the
//     poll thread, never under the table's lock; what they find is applied
//     under it in one hold.
//  2. Poll() returns once the loads and unloads it started have answered.
//  3. Once the table is stopping (VersionTable::Stop), Stop() ends the poll thread (waiting for
//     the poll under way), and no poll thread starts. The lock order is: poller_mu_, then the
//     table's; scan_mu_, then the table's.
//  4. Scans (Poll, Rescan) run one at a time (scan_mu_), so that what one
//     applies is never older than what the one before it applied.
//
// Thread-safety: every method may be called concurrently.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "core/thread_annotations.h"
#include "lifecycle/model_key.h"
#include "lifecycle/model_manager.h"
#include "lifecycle/repository_set.h"
#include "lifecycle/version_table.h"
#include "repository/model_repository.h"

namespace mm {

class Poller {
 public:
  // How the poller starts a model's load (single flight, as ModelManager's)
  // and unload (an operation of the model).
  using ScheduleLoad = std::function<void(const ModelKey&, std::function<void(Status)> done)>;
  using ScheduleUnload =
      std::function<void(const ModelKey&, const std::string& reason, std::function<void(Status)>)>;

  // Every reference must outlive this.
  Poller(const ModelManager::Options& options, VersionTable& table, RepositorySet& repositories,
         ScheduleLoad load, ScheduleUnload unload);
  ~Poller();  // Stop()

  // Registers every model the repositories hold (UNAVAILABLE, "not loaded"),
  // loads what the mode loads at start and waits for those loads; then, in
  // poll mode, starts the poll thread. UNAVAILABLE naming what did not load:
  // start-up loads that failed, --load-model names no repository holds, a
  // repository that could not be scanned.
  Status Start() MM_EXCLUDES(table_.mu(), poller_mu_);
  // Explicit mode's index: models added on disk appear, models gone from
  // disk that hold nothing disappear.
  void Rescan() MM_EXCLUDES(table_.mu());
  // Poll mode: scans once and applies what changed; returns when those loads
  // and unloads have finished.
  void Poll() MM_EXCLUDES(table_.mu());
  // Wakes the poll thread, which ends once the table is stopping.
  void Wake() MM_EXCLUDES(table_.mu());
  // Wake(), then waits for the poll thread to end.
  void Stop() MM_EXCLUDES(table_.mu(), poller_mu_);

 private:
  void Loop() MM_EXCLUDES(table_.mu());

  // What one scan found in one repository.
  struct RepositoryScan {
    std::string key;                   // the repository's
    bool full = false;                 // `sources` is every model it holds
    std::vector<ModelSource> sources;  // every model, or those its watch named
    std::vector<std::string> gone;     // not full: named by its watch, no longer there
  };
  // Each repository's changes since the last scan (all of it where there is
  // no watch, or the watch cannot tell). Fails when a listing fails; the
  // next scan then lists every repository.
  StatusOr<std::vector<RepositoryScan>> ScanChanges() MM_REQUIRES(scan_mu_)
      MM_EXCLUDES(table_.mu());

  const ModelManager::Options& options_;
  VersionTable& table_;
  RepositorySet& repositories_;
  const ScheduleLoad load_;
  const ScheduleUnload unload_;

  CondVar wake_;  // on the table's mutex: Stop()
  Mutex poller_mu_ MM_ACQUIRED_BEFORE(table_.mu());
  std::thread thread_ MM_GUARDED_BY(poller_mu_);
  Mutex scan_mu_ MM_ACQUIRED_BEFORE(table_.mu());
  // One per repository, in RepositorySet::all()'s order (null: it has none);
  // made by the first ScanChanges().
  void MakeWatches() MM_REQUIRES(scan_mu_);
  std::vector<std::unique_ptr<RepositoryWatch>> watches_ MM_GUARDED_BY(scan_mu_);
  bool watches_made_ MM_GUARDED_BY(scan_mu_) = false;
  bool list_next_ MM_GUARDED_BY(scan_mu_) = false;  // a scan failed: the next lists all
};

}  // namespace mm
