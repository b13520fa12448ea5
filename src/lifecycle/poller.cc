#include "lifecycle/poller.h"

#include <algorithm>
#include <set>
#include <utility>

#include <spdlog/spdlog.h>

#include "core/memory.h"

namespace mm {

namespace {

// Waits until `count` callbacks made by Done() have run, and keeps the
// names of the loads that failed.
class Countdown {
 public:
  explicit Countdown(size_t count) : remaining_(count) {}
  std::function<void(Status)> Done(std::string label) {
    return [this, label = std::move(label)](Status status) {
      MutexLock lock(mu_);
      if (!status.ok()) failed_.push_back(label);
      if (--remaining_ == 0) cv_.NotifyAll();
    };
  }
  // The failed loads' labels, once every load has answered.
  std::vector<std::string> Wait() {
    MutexLock lock(mu_);
    while (remaining_ > 0) cv_.Wait(lock);
    return failed_;
  }

 private:
  Mutex mu_;
  CondVar cv_;
  size_t remaining_ MM_GUARDED_BY(mu_);
  std::vector<std::string> failed_ MM_GUARDED_BY(mu_);
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

Status Poller::Start() {
  std::vector<Status> failures;
  auto scanned = repositories_.List(&failures);
  for (const Status& failure : failures) {
    spdlog::error(
        "scanning model repositories: {}; its models are unknown until a later scan "
        "(a poll, an index request, an explicit load) can list it",
        failure.message());
  }
  if (!scanned.ok()) {
    spdlog::error("scanning model repositories failed: {}", scanned.status().message());
    return scanned.status();
  }
  std::vector<ModelKey> to_load;
  std::vector<std::string> missing;  // --load-model names no repository holds
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
          missing.push_back(name);
        }
      }
      std::sort(to_load.begin(), to_load.end(), ModelKeyLess());
      to_load.erase(std::unique(to_load.begin(), to_load.end()), to_load.end());
    } else {
      for (const auto& [key, e] : models) to_load.push_back(key);
    }
  }
  // The scan's sources (every model's parsed config) are garbage now: give
  // their pages back, or the server keeps them (~13 MiB at 5,000 models).
  *scanned = {};
  ReleaseFreeMemory();
  Countdown loads(to_load.size());
  for (const auto& key : to_load) load_(key, loads.Done("'" + key.name + "'"));
  std::vector<std::string> failed = loads.Wait();
  if (options_.mode == ModelControlMode::kPoll) {
    MutexLock poller_lock(poller_mu_);
    MutexLock state_lock(table_.mu());
    if (!table_.stopping()) thread_ = std::thread([this] { Loop(); });
  }
  std::string why;
  constexpr size_t kNamed = 10;  // a repository of thousands fails in one line
  for (size_t i = 0; i < failed.size() && i < kNamed; ++i) {
    why += (why.empty() ? "" : ", ") + failed[i];
  }
  if (failed.size() > kNamed) why += " and " + std::to_string(failed.size() - kNamed) + " more";
  if (!failed.empty()) why += " failed to load";
  if (!missing.empty()) {
    why +=
        (why.empty() ? "" : "; ") + std::string("--load-model names no model in the repositories:");
    for (const std::string& name : missing) why += " '" + name + "'";
  }
  if (!failures.empty()) {
    why += (why.empty() ? "" : "; ") + std::to_string(failures.size()) +
           " repository scan(s) failed (" + failures.front().message() + ")";
  }
  if (why.empty()) return OkStatus();
  return Unavailable("start-up loading: " + why + " (the repository index says why)");
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

void Poller::MakeWatches() {
  const char* what = options_.mode == ModelControlMode::kPoll ? "poll" : "index rescan";
  for (const auto& repository : repositories_.all()) {
    const auto started = std::chrono::steady_clock::now();
    auto watch = repository->Watch();
    if (!watch.ok()) {
      spdlog::info("{}; each {} lists every model of it", watch.status().message(), what);
      watches_.push_back(nullptr);
      continue;
    }
    spdlog::debug(
        "watching repository '{}' for changes: set up in {:.1f} ms", repository->key(),
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
            .count());
    watches_.push_back(std::move(*watch));
  }
  watches_made_ = true;
}

StatusOr<std::vector<Poller::RepositoryScan>> Poller::ScanChanges() {
  // The first scan makes the watches, then lists every repository: what
  // changed before a watch existed is in that listing. So does the scan
  // after a failed one (the changes its watches gave were not applied).
  const bool first = !watches_made_ || list_next_;
  list_next_ = false;
  if (!watches_made_) MakeWatches();
  const auto& all = repositories_.all();
  std::vector<RepositoryScan> scans(all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    RepositoryScan& scan = scans[i];
    scan.key = all[i]->key();
    RepositoryWatch* watch = watches_[i].get();
    bool list = first || watch == nullptr;
    if (!list) {
      RepositoryWatch::Changes changes = watch->Take();
      for (const auto& w : changes.warnings) spdlog::warn("{}", w);
      list = changes.everything;
      for (size_t n = 0; !list && n < changes.models.size(); ++n) {
        auto source = all[i]->Scan(changes.models[n]);
        if (source.ok()) {
          scan.sources.push_back(std::move(*source));
        } else if (source.status().code() == StatusCode::kNotFound) {
          scan.gone.push_back(changes.models[n]);
        } else {
          list = true;  // it cannot say: list it all
        }
      }
    }
    if (list) {
      auto sources = all[i]->List();
      if (!sources.ok()) {
        // This repository's models stay as they are (nothing is gone, nothing
        // changed); the others go on. The next scan lists it again.
        spdlog::error(
            "listing model repository '{}' failed: {}; its models stay as they are "
            "until a later scan can list it",
            scan.key, sources.status().message());
        list_next_ = true;
        scan.sources.clear();
        scan.gone.clear();
        continue;
      }
      scan.full = true;
      scan.sources = std::move(*sources);
      scan.gone.clear();
    }
  }
  return scans;
}

void Poller::Rescan() {
  MutexLock scan_lock(scan_mu_);
  auto scans = ScanChanges();
  if (!scans.ok()) return;
  MutexLock lock(table_.mu());
  auto& models = table_.models();
  std::vector<std::string> changed;  // names to republish
  bool full = false;
  const auto forgettable = [](const ModelEntry& entry) {
    const bool holds = std::any_of(entry.versions.begin(), entry.versions.end(),
                                   [](const auto& v) { return v.second.servable != nullptr; });
    // held_copies: a replaced copy still draining is in no slot, and the
    // memory account keeps a pointer to the entry until it is dropped.
    return !holds && !entry.busy && entry.ops.empty() && entry.held_copies == 0;
  };
  for (const RepositoryScan& scan : *scans) {
    std::set<std::string, std::less<>> seen;
    for (const auto& source : scan.sources) {
      auto [it, added] = models.try_emplace(ModelKey{source.name, source.repository});
      if (added) {
        it->second.reason = "not loaded";
        changed.push_back(source.name);
      }
      it->second.on_disk = true;
      it->second.place = PlaceOf(source);
      if (scan.full) seen.insert(source.name);
    }
    if (scan.full) {
      full = true;
      for (auto it = models.begin(); it != models.end();) {
        if (it->first.repository == scan.key && !seen.count(it->first.name) &&
            forgettable(it->second)) {
          changed.push_back(it->first.name);
          it = models.erase(it);
        } else {
          ++it;
        }
      }
    } else {
      for (const std::string& name : scan.gone) {
        auto it = models.find(ModelKeyView{name, scan.key});
        if (it != models.end() && forgettable(it->second)) {
          changed.push_back(name);
          models.erase(it);
        }
      }
    }
  }
  if (full && !changed.empty()) {
    table_.Publish();
  } else {
    for (const std::string& name : changed) table_.Publish(name);
  }
}

void Poller::Poll() {
  const auto started = std::chrono::steady_clock::now();
  std::vector<ModelKey> load, unload;
  size_t scanned = 0, known = 0;
  bool full = false;
  {
    MutexLock scan_lock(scan_mu_);
    auto scans = ScanChanges();
    if (!scans.ok()) {
      spdlog::error("polling the model repositories failed: {}", scans.status().message());
      return;
    }
    MutexLock lock(table_.mu());
    auto& models = table_.models();
    std::vector<std::string> added_names;  // new to the table: republished
    const auto gone = [&unload](const ModelKey& key, ModelEntry& entry) {
      if (!entry.on_disk) return;
      entry.on_disk = false;
      unload.push_back(key);
    };
    for (const RepositoryScan& scan : *scans) {
      scanned += scan.sources.size() + scan.gone.size();
      std::set<std::string, std::less<>> seen;
      for (const auto& source : scan.sources) {
        ModelKey key{source.name, source.repository};
        auto [it, added] = models.try_emplace(key);
        ModelEntry& entry = it->second;
        const bool changed = added || !entry.on_disk ||
                             entry.scanned_config != source.config_fingerprint ||
                             entry.scanned_versions != source.version_fingerprints;
        entry.place = PlaceOf(source);
        if (added) added_names.push_back(source.name);
        if (changed) {
          entry.on_disk = true;
          entry.failed = false;
          entry.scanned_config = source.config_fingerprint;
          entry.scanned_versions = source.version_fingerprints;
          load.push_back(std::move(key));
        }
        if (scan.full) seen.insert(source.name);
      }
      if (scan.full) {
        full = true;
        for (auto& [key, entry] : models) {
          if (key.repository == scan.key && !seen.count(key.name)) gone(key, entry);
        }
      } else {
        for (const std::string& name : scan.gone) {
          auto it = models.find(ModelKeyView{name, scan.key});
          if (it != models.end()) gone(it->first, it->second);
        }
      }
    }
    if (full) {
      table_.Publish();
    } else {
      for (const std::string& name : added_names) table_.Publish(name);
    }
    known = models.size();
  }
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  const bool quiet = load.empty() && unload.empty() && !full;
  spdlog::log(quiet ? spdlog::level::debug : spdlog::level::info,
              "poll: scanned {} of {} models ({}) in {:.2f} ms: {} to load, {} to unload", scanned,
              known, full ? "a full listing" : "those that changed", ms, load.size(),
              unload.size());
  Countdown done(load.size() + unload.size());
  for (const auto& key : load) {
    spdlog::info("model '{}' changed on disk: loading", key.name);
    load_(key, done.Done(key.name));
  }
  for (const auto& key : unload) {
    spdlog::info("model '{}' left the repositories: unloading", key.name);
    unload_(key, "removed from the model repository", done.Done(key.name));
  }
  done.Wait();  // each load's and unload's outcome is in the index and the log
}

}  // namespace mm
