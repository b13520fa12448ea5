// Per-model control operations: one after another for one model, different
// models' in parallel, on LoadQueue's loader threads (queued in the model's
// namespace, the tenant owning its repository). Loads of one model are single
// flight: a load asked for while one is queued or running (with the same
// config override) joins it and gets its outcome.
//
// Contract:
//  1. An operation runs on a loader thread with the table's lock not held; it
//     may take it. It must not wait for another operation of its model.
//  2. An operation's model is `busy` (ModelEntry) from when it is queued until
//     its last queued operation has run; then the `after` callbacks queued by
//     it run, so that a caller told "done" finds the model idle.
//  3. A load may wait for other models' operations (an ensemble's composing
//     models) without holding a thread: it hands back a Deferral, and runs
//     again, as a new operation of its model and for the same waiters, once
//     the deferral calls its `resume`. Loads asked for meanwhile join it.
//
// Thread-safety: every method may be called concurrently.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "core/thread_annotations.h"
#include "lifecycle/load_queue.h"
#include "lifecycle/model_key.h"
#include "lifecycle/version_table.h"

namespace mm {

class ModelOperations {
 public:
  using NamespaceOf = std::function<std::string(std::string_view repository)>;
  // `table` and `loaders` must outlive this.
  ModelOperations(VersionTable& table, LoadQueue& loaders, NamespaceOf namespace_of);

  // Queues `op` behind the model's other operations.
  void Schedule(const ModelKey& key, std::function<void()> op) MM_EXCLUDES(table_.mu());

  // What a load that must wait sets (contract 3): it starts what the load
  // waits for and calls `resume` once, when that has finished.
  using Deferral = std::function<void(std::function<void()> resume)>;
  using LoadFn = std::function<Status(Deferral* wait)>;

  // Starts a load of `key` (`load`, run as an operation of the model), or
  // joins the one queued or running with the entry's current override.
  // `done` is called once with the load's outcome, after the model is idle.
  void ScheduleLoad(const ModelKey& key, std::function<void(Status)> done, LoadFn load)
      MM_EXCLUDES(table_.mu());

 private:
  // Queues `load` (again) as an operation of `key`, for `pending`'s waiters.
  void RunLoad(const ModelKey& key, std::shared_ptr<PendingLoad> pending,
               std::shared_ptr<const LoadFn> load) MM_EXCLUDES(table_.mu());
  void RunNext(const ModelKey& key) MM_EXCLUDES(table_.mu());

  VersionTable& table_;
  LoadQueue& loaders_;
  const NamespaceOf namespace_of_;
};

}  // namespace mm
