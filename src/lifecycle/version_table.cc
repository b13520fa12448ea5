#include "lifecycle/version_table.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <tuple>

#include <spdlog/spdlog.h>

#include "core/steady_time.h"

namespace mm {

bool IsLegalTransition(ModelState from, ModelState to) {
  using S = ModelState;
  switch (from) {
    case S::kUnavailable:
      return to == S::kLoading || to == S::kReady || to == S::kUnloading || to == S::kUnavailable;
    case S::kLoading:
      return to == S::kReady || to == S::kUnavailable;
    case S::kReady:
      return to == S::kReady || to == S::kUnloading || to == S::kUnavailable;
    case S::kUnloading:
      return to == S::kUnavailable || to == S::kLoading;
  }
  return false;
}

bool VersionSlot::MoveTo(ModelState to, std::string_view what) {
  const bool held = servable != nullptr;
  const bool copy_ok =
      to == ModelState::kLoading
          ? !held
          : (to == ModelState::kReady || to == ModelState::kUnloading ? held : true);
  if (!IsLegalTransition(state_, to) || !copy_ok) {
    spdlog::error("{}: refused state transition {} -> {} ({} copy held)", what,
                  ModelStateName(state_), ModelStateName(to), held ? "a" : "no");
    return false;
  }
  state_ = to;
  return true;
}

Status AmbiguousModel(std::string_view name, const std::vector<std::string>& places) {
  std::string paths;
  for (size_t i = 0; i < places.size(); ++i) {
    if (i > 0) paths += i + 1 == places.size() ? " and " : ", ";
    paths += places[i];
  }
  return AlreadyExists(
      "model '" + std::string(name) + "' is in more than one repository: " + paths +
      "; a model name must be unique among the repositories it is " + "looked up in");
}

VersionTable::VersionTable() {
  const auto empty = std::make_shared<const Shard>();
  for (auto& shard : shards_) shard.store(empty, std::memory_order_relaxed);
}

StatusOr<ModelHandle> VersionTable::Get(const NameScope& scope, std::string_view name,
                                        std::string_view version, bool count_use) const {
  const std::shared_ptr<const Shard> shard = shards_[ShardOf(name)].load(std::memory_order_acquire);
  auto it = shard->find(name);
  if (it != shard->end()) {
    const SnapshotModel* model = nullptr;
    bool ambiguous = false;
    for (const SnapshotModel& m : it->second) {
      if (!scope.Contains(m.repository)) continue;
      ambiguous = model != nullptr;
      model = &m;
    }
    const ModelHandle* found = nullptr;
    if (model != nullptr && !ambiguous) {
      if (version.empty()) {
        found = &model->latest;
      } else {
        int64_t v = 0;
        auto [end, ec] = std::from_chars(version.data(), version.data() + version.size(), v);
        if (ec == std::errc() && end == version.data() + version.size()) {
          auto r = model->ready.find(v);
          if (r != model->ready.end()) found = &r->second;
        }
      }
    }
    if (found != nullptr && *found) {
      if (count_use) {
        const ServableModel& m = **found;
        m.last_used_ns.store(SteadyNowNs(), std::memory_order_relaxed);
        m.uses.store(m.uses.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      }
      return *found;
    }
  }
  return NotReady(scope, name, version);
}

Status VersionTable::NotReady(const NameScope& scope, std::string_view name,
                              std::string_view version) const {
  MutexLock lock(mu_);
  auto found = ResolveKnown(scope, name);
  if (!found.ok()) return found.status();
  const ModelEntry& entry = (*found)->second;
  if (version.empty()) {
    std::string reason = entry.reason;
    if (reason.empty() && !entry.versions.empty()) {
      reason = entry.versions.rbegin()->second.reason;
    }
    return Unavailable("model '" + std::string(name) + "' has no ready version" +
                       (reason.empty() ? std::string() : ": " + reason));
  }
  int64_t v = 0;
  auto [end, ec] = std::from_chars(version.data(), version.data() + version.size(), v);
  if (ec != std::errc() || end != version.data() + version.size() || v <= 0) {
    return NotFound("model '" + std::string(name) + "' has no version '" + std::string(version) +
                    "': versions are positive integers");
  }
  auto slot = entry.versions.find(v);
  if (slot == entry.versions.end()) {
    return NotFound("model '" + std::string(name) + "' has no version " + std::string(version));
  }
  return Unavailable("model '" + std::string(name) + "' version " + std::string(version) + " is " +
                     std::string(ModelStateName(slot->second.state())) +
                     (slot->second.reason.empty() ? std::string() : ": " + slot->second.reason));
}

std::vector<ModelHandle> VersionTable::Ready() const {
  std::vector<ModelHandle> out;
  for (const auto& slot : shards_) {
    const std::shared_ptr<const Shard> shard = slot.load(std::memory_order_acquire);
    for (const auto& [name, models] : *shard) {
      for (const auto& model : models) {
        for (const auto& [v, handle] : model.ready) out.push_back(handle);
      }
    }
  }
  return out;
}

ModelEntry& VersionTable::Entry(const ModelKey& key, std::string_view reason) {
  auto [it, added] = models_.try_emplace(key);
  if (added) {
    it->second.reason = std::string(reason);
    Publish(key.name);
  }
  return it->second;
}

std::string VersionTable::PlaceOf(const ModelKey& key, const ModelEntry& entry) {
  return entry.place.empty() ? key.repository + "/" + key.name : entry.place;
}

StatusOr<VersionTable::ModelMap::const_iterator> VersionTable::ResolveKnown(
    const NameScope& scope, std::string_view name) const {
  auto found = models_.end();
  std::vector<std::string> places;
  for (auto it = models_.lower_bound(ModelKeyView{name, {}});
       it != models_.end() && it->first.name == name; ++it) {
    if (!scope.Contains(it->first.repository)) continue;
    found = it;
    places.push_back(PlaceOf(it->first, it->second));
  }
  if (places.empty()) return UnknownModel(name);
  if (places.size() > 1) return AmbiguousModel(name, places);
  return ModelMap::const_iterator(found);
}

bool VersionTable::Holds(const ModelEntry& entry) {
  if (entry.busy || !entry.ops.empty() || entry.pending_load) return true;
  return std::any_of(entry.versions.begin(), entry.versions.end(), [](const auto& v) {
    return v.second.servable != nullptr || v.second.state() == ModelState::kUnloading;
  });
}

void VersionTable::MaybeForget(ModelMap::iterator it) {
  const ModelEntry& entry = it->second;
  if (entry.on_disk || entry.busy || !entry.ops.empty() || entry.held_copies > 0) return;
  for (const auto& [v, slot] : entry.versions) {
    if (slot.servable || slot.state() == ModelState::kUnloading) return;
  }
  const std::string name = it->first.name;
  models_.erase(it);
  Publish(name);
}

VersionTable::SnapshotModel VersionTable::SnapshotOf(const ModelKey& key, const ModelEntry& entry) {
  SnapshotModel m;
  m.repository = key.repository;
  for (const auto& [v, slot] : entry.versions) {
    if (slot.state() == ModelState::kReady && slot.servable) {
      m.ready.emplace(v, slot.servable);
      m.latest = slot.servable;  // ascending: the last is the newest
    }
  }
  return m;
}

void VersionTable::Publish() {
  std::vector<std::shared_ptr<Shard>> shards(kShards);
  for (auto& shard : shards) shard = std::make_shared<Shard>();
  for (const auto& [key, entry] : models_) {
    (*shards[ShardOf(key.name)])[key.name].push_back(SnapshotOf(key, entry));
  }
  for (size_t i = 0; i < kShards; ++i) {
    shards_[i].store(std::move(shards[i]), std::memory_order_release);
  }
}

void VersionTable::Publish(std::string_view name) {
  auto& slot = shards_[ShardOf(name)];
  auto shard = std::make_shared<Shard>(*slot.load(std::memory_order_acquire));
  if (auto old = shard->find(name); old != shard->end()) shard->erase(old);
  std::vector<SnapshotModel> now;
  for (auto it = models_.lower_bound(ModelKeyView{name, {}});
       it != models_.end() && it->first.name == name; ++it) {
    now.push_back(SnapshotOf(it->first, it->second));
  }
  if (!now.empty()) shard->emplace(std::string(name), std::move(now));
  slot.store(std::move(shard), std::memory_order_release);
}

std::shared_ptr<ModelScheduler> VersionTable::OnWorkerHealth(const ModelKey& key, int64_t version,
                                                             const ServableModel* target,
                                                             const Status& health) {
  MutexLock lock(mu_);
  auto it = models_.find(key);
  if (it == models_.end() || target == nullptr) return nullptr;
  auto v = it->second.versions.find(version);
  if (v == it->second.versions.end() || v->second.servable.get() != target) return nullptr;
  VersionSlot& slot = v->second;
  const std::string what = "model '" + key.name + "' version " + std::to_string(version);
  if (!health.ok()) {
    ++slot.restarts;
    slot.last_failure = health.message();
    if (slot.state() == ModelState::kReady || slot.worker_down) {
      slot.MoveTo(ModelState::kUnavailable, what);
      slot.worker_down = true;
      slot.reason = health.message();
      Publish(key.name);
    }
    return slot.servable->scheduler;
  } else if (slot.worker_down) {
    slot.worker_down = false;
    if (slot.state() == ModelState::kUnavailable) {
      slot.MoveTo(ModelState::kReady, what);
      slot.reason.clear();
      Publish(key.name);
      spdlog::info("{} is READY again", what);
    }
  }
  return nullptr;
}

std::vector<ModelVersionStatus> VersionTable::Index(
    const std::function<std::string(std::string_view)>& owner_of) const {
  std::vector<ModelVersionStatus> out;
  MutexLock lock(mu_);
  for (const auto& [key, entry] : models_) {
    const std::string tenant = owner_of(key.repository);
    if (entry.versions.empty()) {
      out.push_back(
          {key.name, 0, ModelState::kUnavailable, entry.reason, 0, {}, key.repository, tenant});
      continue;
    }
    for (const auto& [v, slot] : entry.versions) {
      out.push_back({key.name, v, slot.state(), slot.reason, slot.restarts, slot.last_failure,
                     key.repository, tenant});
      if (slot.servable) {
        out.back().footprint_bytes = slot.servable->footprint_bytes;
        std::tie(out.back().queued, out.back().executing) =
            slot.servable->scheduler->queued_and_executing();
      }
    }
  }
  return out;
}

StatusOr<std::vector<ModelVersionStatus>> VersionTable::Versions(
    const NameScope& scope, std::string_view name,
    const std::function<std::string(std::string_view)>& owner_of) const {
  MutexLock lock(mu_);
  MM_ASSIGN_OR_RETURN(auto it, ResolveKnown(scope, name));
  const std::string owner = owner_of(it->first.repository);
  std::vector<ModelVersionStatus> out;
  for (const auto& [v, slot] : it->second.versions) {
    out.push_back({std::string(name), v, slot.state(), slot.reason, slot.restarts,
                   slot.last_failure, it->first.repository, owner});
  }
  return out;
}

}  // namespace mm
