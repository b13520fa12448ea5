#include "lifecycle/poller.h"

#include <algorithm>
#include <set>
#include <utility>

#include <spdlog/spdlog.h>

namespace mm {

namespace {

// Waits until `count` callbacks made by Done() have run.
class Countdown {
 public:
  explicit Countdown(size_t count) : remaining_(count) {}
  std::function<void(Status)> Done() {
    return [this](Status) {
      MutexLock lock(mu_);
      if (--remaining_ == 0) cv_.NotifyAll();
    };
  }
  void Wait() {
    MutexLock lock(mu_);
    while (remaining_ > 0) cv_.Wait(lock);
  }

 private:
  Mutex mu_;
  CondVar cv_;
  size_t remaining_ MM_GUARDED_BY(mu_);
};

}  // namespace

Poller::Poller(const ModelManager::Options& options, VersionTable& table,
               RepositorySet& repositories, ScheduleLoad load, ScheduleUnload unload)
    : options_(options),
      table_(table),
      repositories_(repositories),
      load_(std::move(load)),
      unload_(std::move(unload)) {}

Poller::~Poller() { Stop(); }

void Poller::Start() {
  auto scanned = repositories_.List();
  if (!scanned.ok()) {
    spdlog::error("scanning model repositories failed: {}", scanned.status().message());
    return;
  }
  std::vector<ModelKey> to_load;
  {
    MutexLock lock(table_.mu());
    auto& models = table_.models();
    for (auto& source : *scanned) {
      for (const auto& w : source.warnings) spdlog::warn("{}", w);
      ModelEntry& entry = models[{source.name, source.repository}];
      entry.scanned_config = source.config_fingerprint;
      entry.scanned_versions = source.version_fingerprints;
      entry.place = PlaceOf(source);
      entry.reason = "not loaded";
    }
    table_.Publish();
    if (options_.mode == ModelControlMode::kExplicit) {
      for (const auto& name : options_.startup_models) {
        bool any = false;
        for (const auto& [key, e] : models) {
          if (name == "*" || key.name == name) {
            to_load.push_back(key);
            any = true;
          }
        }
        if (!any && name != "*") {
          spdlog::error("--load-model {}: no such model in the repositories", name);
        }
      }
      std::sort(to_load.begin(), to_load.end(), ModelKeyLess());
      to_load.erase(std::unique(to_load.begin(), to_load.end()), to_load.end());
    } else {
      for (const auto& [key, e] : models) to_load.push_back(key);
    }
  }
  Countdown loads(to_load.size());
  for (const auto& key : to_load) load_(key, loads.Done());
  loads.Wait();
  if (options_.mode == ModelControlMode::kPoll) {
    MutexLock poller_lock(poller_mu_);
    MutexLock state_lock(table_.mu());
    if (!table_.stopping()) thread_ = std::thread([this] { Loop(); });
  }
}

void Poller::Wake() {
  MutexLock lock(table_.mu());
  wake_.NotifyAll();
}

void Poller::Stop() {
  Wake();
  MutexLock lock(poller_mu_);  // its poll's loads have answered
  if (thread_.joinable()) thread_.join();
}

void Poller::Loop() {
  MutexLock lock(table_.mu());
  while (!table_.stopping()) {
    const auto until = std::chrono::steady_clock::now() + options_.poll_interval;
    while (!table_.stopping() && std::chrono::steady_clock::now() < until) {
      wake_.WaitUntil(lock, until);
    }
    if (table_.stopping()) break;
    lock.Unlock();
    Poll();
    lock.Lock();
  }
}

void Poller::Rescan() {
  auto scanned = repositories_.List();
  if (!scanned.ok()) return;
  MutexLock lock(table_.mu());
  auto& models = table_.models();
  std::set<ModelKey, ModelKeyLess> seen;
  bool changed = false;
  for (const auto& source : *scanned) {
    ModelKey key{source.name, source.repository};
    auto [it, added] = models.try_emplace(key);
    if (added) {
      it->second.reason = "not loaded";
      changed = true;
    }
    it->second.on_disk = true;
    it->second.place = PlaceOf(source);
    seen.insert(std::move(key));
  }
  for (auto it = models.begin(); it != models.end();) {
    const bool holds = std::any_of(it->second.versions.begin(), it->second.versions.end(),
                                   [](const auto& v) { return v.second.servable != nullptr; });
    if (!seen.count(it->first) && !holds && !it->second.busy && it->second.ops.empty()) {
      it = models.erase(it);
      changed = true;
    } else {
      ++it;
    }
  }
  if (changed) table_.Publish();
}

void Poller::Poll() {
  auto scanned = repositories_.List();
  if (!scanned.ok()) {
    spdlog::error("polling the model repositories failed: {}", scanned.status().message());
    return;
  }
  std::vector<ModelKey> load, unload;
  {
    MutexLock lock(table_.mu());
    auto& models = table_.models();
    std::set<ModelKey, ModelKeyLess> seen;
    for (const auto& source : *scanned) {
      ModelKey key{source.name, source.repository};
      auto [it, added] = models.try_emplace(key);
      ModelEntry& entry = it->second;
      const bool changed = added || !entry.on_disk ||
                           entry.scanned_config != source.config_fingerprint ||
                           entry.scanned_versions != source.version_fingerprints;
      entry.place = PlaceOf(source);
      if (changed) {
        entry.on_disk = true;
        entry.failed = false;
        entry.scanned_config = source.config_fingerprint;
        entry.scanned_versions = source.version_fingerprints;
        load.push_back(key);
      }
      seen.insert(std::move(key));
    }
    for (auto& [key, entry] : models) {
      if (!seen.count(key) && entry.on_disk) {
        entry.on_disk = false;
        unload.push_back(key);
      }
    }
    table_.Publish();
  }
  Countdown done(load.size() + unload.size());
  for (const auto& key : load) {
    spdlog::info("model '{}' changed on disk: loading", key.name);
    load_(key, done.Done());
  }
  for (const auto& key : unload) {
    spdlog::info("model '{}' left the repositories: unloading", key.name);
    unload_(key, "removed from the model repository", done.Done());
  }
  done.Wait();
}

}  // namespace mm
