#include "lifecycle/model_operations.h"

#include <utility>

namespace mm {

ModelOperations::ModelOperations(VersionTable& table, LoadQueue& loaders, NamespaceOf namespace_of)
    : table_(table), loaders_(loaders), namespace_of_(std::move(namespace_of)) {}

void ModelOperations::Schedule(const ModelKey& key, std::function<void()> op) {
  bool submit = false;
  {
    MutexLock lock(table_.mu());
    ModelEntry& entry = table_.Entry(key);
    entry.ops.push_back(std::move(op));
    if (!entry.busy) submit = entry.busy = true;
  }
  if (submit) loaders_.Submit(namespace_of_(key.repository), [this, key] { RunNext(key); });
}

void ModelOperations::RunNext(const ModelKey& key) {
  std::function<void()> op;
  {
    MutexLock lock(table_.mu());
    ModelEntry& entry = table_.models()[key];
    op = std::move(entry.ops.front());
    entry.ops.pop_front();
  }
  op();
  bool more = false;
  std::vector<std::function<void()>> after;
  {
    MutexLock lock(table_.mu());
    auto it = table_.models().find(key);
    if (it == table_.models().end()) return;
    after.swap(it->second.after);
    more = !it->second.ops.empty();
    if (!more) {
      it->second.busy = false;
      table_.MaybeForget(it);
    }
  }
  for (auto& fn : after) fn();
  if (more) loaders_.Submit(namespace_of_(key.repository), [this, key] { RunNext(key); });
}

void ModelOperations::ScheduleLoad(const ModelKey& key, std::function<void(Status)> done,
                                   LoadFn load) {
  std::shared_ptr<PendingLoad> pending;
  {
    MutexLock lock(table_.mu());
    ModelEntry& entry = table_.Entry(key);
    if (entry.pending_load && entry.pending_load->override_hash == entry.override_hash) {
      entry.pending_load->waiters.push_back(std::move(done));
      return;
    }
    pending = std::make_shared<PendingLoad>();
    pending->override_hash = entry.override_hash;
    pending->waiters.push_back(std::move(done));
    entry.pending_load = pending;
  }
  RunLoad(key, std::move(pending), std::make_shared<const LoadFn>(std::move(load)));
}

void ModelOperations::RunLoad(const ModelKey& key, std::shared_ptr<PendingLoad> pending,
                              std::shared_ptr<const LoadFn> load) {
  Schedule(key, [this, key, pending, load] {
    {
      MutexLock lock(table_.mu());
      pending->started = true;
    }
    Deferral wait;
    Status s = (*load)(&wait);
    if (wait) {
      // Contract 3: no thread waits; `pending` stays the entry's, so loads
      // asked for meanwhile join it.
      wait([this, key, pending, load] { RunLoad(key, pending, load); });
      return;
    }
    MutexLock lock(table_.mu());
    ModelEntry& entry = table_.models()[key];
    if (entry.pending_load == pending) entry.pending_load.reset();
    entry.after.push_back([waiters = std::move(pending->waiters), s]() mutable {
      for (auto& w : waiters) w(s);
    });
  });
}

}  // namespace mm
