#include "repository/model_cache.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <system_error>
#include <vector>

#include "core/memory.h"

namespace mm {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kStaging = ".staging";

std::string Quoted(const fs::path& p) { return "'" + p.string() + "'"; }

bool ValidId(const std::string& id) {
  return !id.empty() && id.size() <= 200 && id[0] != '.' &&
         std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
         });
}

// Bytes of the regular files under `dir` (symlinks not followed).
uint64_t TreeBytes(const fs::path& dir) {
  uint64_t bytes = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code file_ec;
    if (it->is_regular_file(file_ec)) bytes += it->file_size(file_ec);
  }
  return bytes;
}

uint64_t FreeDiskBytes(const fs::path& dir) {
  struct statvfs st {};
  if (statvfs(dir.c_str(), &st) != 0) return UINT64_MAX;  // unknown: let the writes tell
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

void TouchNow(const fs::path& dir) { utimensat(AT_FDCWD, dir.c_str(), nullptr, 0); }

}  // namespace

ModelCache::ModelCache(Options options) : options_(std::move(options)) {}

ModelCache::~ModelCache() {
  if (lock_fd_ >= 0) close(lock_fd_);  // releases the flock
}

StatusOr<std::shared_ptr<ModelCache>> ModelCache::Open(Options options) {
  if (options.dir.empty()) {
    return InvalidArgument("model cache: empty folder; expected a folder for fetched models");
  }
  const fs::path dir = options.dir;  // a copy: `options` moves into the cache below
  std::error_code ec;
  // Something that is not a folder is INVALID_ARGUMENT as the header says;
  // create_directories would report it as an error (not_a_directory) and make
  // it a FAILED_PRECONDITION.
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) {
    return InvalidArgument("model cache " + Quoted(dir) +
                           " is not a folder; expected a folder for fetched models");
  }
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir)) {
    return ec ? FailedPrecondition("model cache " + Quoted(dir) + " cannot be created: " +
                                   ec.message() + "; expected a writable folder")
              : InvalidArgument("model cache " + Quoted(dir) +
                                " is not a folder; expected a folder for fetched models");
  }
  std::shared_ptr<ModelCache> cache(new ModelCache(std::move(options)));
  const fs::path lock = cache->options_.dir / ".lock";
  cache->lock_fd_ = open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (cache->lock_fd_ < 0) {
    return FailedPrecondition("model cache " + Quoted(dir) + " is not writable (" +
                              std::strerror(errno) + "); expected a writable folder");
  }
  if (flock(cache->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return FailedPrecondition("model cache " + Quoted(dir) +
                              " is in use by another mmserve process; expected each server to "
                              "have its own --model-cache-dir");
  }
  // Leftovers of a crash (contract 1).
  fs::remove_all(dir / kStaging, ec);
  fs::create_directories(dir / kStaging, ec);
  if (ec) {
    return FailedPrecondition("model cache " + Quoted(dir) + ": cannot create " +
                              Quoted(dir / kStaging) + ": " + ec.message());
  }
  // The entries a previous run left, oldest use first.
  struct Found {
    std::string id;
    uint64_t bytes;
    fs::file_time_type used;
  };
  std::vector<Found> found;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string id = it->path().filename().string();
    std::error_code entry_ec;
    if (!ValidId(id) || !it->is_directory(entry_ec) || it->is_symlink(entry_ec)) continue;
    found.push_back({id, TreeBytes(it->path()), fs::last_write_time(it->path(), entry_ec)});
  }
  std::sort(found.begin(), found.end(),
            [](const Found& a, const Found& b) { return a.used < b.used; });
  MutexLock guard(cache->mu_);
  for (const Found& f : found) {
    cache->entries_[f.id] = Entry{f.bytes, ++cache->tick_, 0};
    cache->bytes_ += f.bytes;
  }
  if (!found.empty()) {
    spdlog::info("model cache {}: {} fetched versions ({}) from earlier runs", Quoted(dir),
                 found.size(), FormatBytes(cache->bytes_));
  }
  return cache;
}

ModelCache::Hit ModelCache::Pin(const std::string& id, Entry& entry) {
  ++entry.pins;
  entry.last_use = ++tick_;
  std::weak_ptr<ModelCache> weak = weak_from_this();
  // The lease's pointer is never read: its deleter is what matters.
  auto lease = std::shared_ptr<const void>(static_cast<const void*>(this), [weak, id](const void*) {
    if (auto cache = weak.lock()) cache->Unpin(id);
  });
  return Hit{options_.dir / id, std::move(lease)};
}

namespace {

// Folders ModelCache::Trash moved away, deleted when it goes out of scope:
// declared before a MutexLock, it outlives the lock.
struct TrashBin {
  std::vector<fs::path> dirs;
  TrashBin() = default;
  TrashBin(const TrashBin&) = delete;
  TrashBin& operator=(const TrashBin&) = delete;
  ~TrashBin() {
    std::error_code ec;
    for (const fs::path& dir : dirs) fs::remove_all(dir, ec);
  }
};

}  // namespace

void ModelCache::Trash(const fs::path& dir, std::vector<fs::path>* trash) {
  const fs::path to = options_.dir / kStaging / ("trash." + std::to_string(++staged_));
  std::error_code ec;
  fs::rename(dir, to, ec);
  if (!ec) {
    trash->push_back(to);
  } else if (fs::exists(dir, ec)) {
    fs::remove_all(dir, ec);  // cannot be moved (rare): deleted here, then
  }
}

void ModelCache::Unpin(const std::string& id) {
  MutexLock lock(mu_);
  auto it = entries_.find(id);
  if (it != entries_.end() && it->second.pins > 0) --it->second.pins;
}

std::optional<ModelCache::Hit> ModelCache::Find(
    const std::string& id, const std::function<bool(const fs::path&)>& verify) {
  if (!ValidId(id)) return std::nullopt;
  std::optional<Hit> hit;
  {
    MutexLock lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return std::nullopt;
    hit = Pin(id, it->second);
  }
  if (verify && !verify(hit->dir)) {
    spdlog::warn("model cache {}: entry '{}' does not hold what was fetched; fetching it again",
                 Quoted(options_.dir), id);
    hit.reset();  // unpins
    TrashBin trash;
    {
      MutexLock lock(mu_);
      auto it = entries_.find(id);
      if (it != entries_.end() && it->second.pins == 0) {
        Trash(options_.dir / id, &trash.dirs);
        bytes_ -= it->second.bytes;
        entries_.erase(it);
      }
    }
    return std::nullopt;
  }
  TouchNow(hit->dir);
  return hit;
}

bool ModelCache::EvictOne(std::vector<fs::path>* trash, uint64_t* freed) {
  auto victim = entries_.end();
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->second.pins == 0 &&
        (victim == entries_.end() || it->second.last_use < victim->second.last_use)) {
      victim = it;
    }
  }
  if (victim == entries_.end()) return false;
  Trash(options_.dir / victim->first, trash);
  spdlog::info("model cache {}: evicted '{}' ({}, least recently used) to make room",
               Quoted(options_.dir), victim->first, FormatBytes(victim->second.bytes));
  *freed += victim->second.bytes;
  bytes_ -= victim->second.bytes;
  entries_.erase(victim);
  ++evictions_;
  return true;
}

StatusOr<std::unique_ptr<ModelCache::Staging>> ModelCache::Stage(const std::string& id,
                                                                 uint64_t bytes) {
  if (!ValidId(id)) {
    return InvalidArgument("model cache: entry id '" + id +
                           "' is not a plain folder name (letters, digits, '.', '_', '-')");
  }
  const uint64_t cap = options_.capacity_bytes;
  if (cap != 0 && bytes > cap) {
    return ResourceExhausted("the version needs " + FormatBytes(bytes) +
                             ", more than the model cache's cap of " + FormatBytes(cap) +
                             " (--model-cache-size)");
  }
  fs::path dir;
  TrashBin trash;
  {
    MutexLock lock(mu_);
    uint64_t freed = 0;
    while (cap != 0 && bytes_ + staging_bytes_ + bytes > cap) {
      if (!EvictOne(&trash.dirs, &freed)) {
        size_t pinned = 0;
        for (const auto& [name, entry] : entries_) pinned += entry.pins > 0;
        return ResourceExhausted(
            "the model cache " + Quoted(options_.dir) +
            " is full: " + FormatBytes(bytes_ + staging_bytes_) + " of its " + FormatBytes(cap) +
            " cap is held by " + std::to_string(pinned) +
            " loaded versions and fetches in progress, and the version needs " +
            FormatBytes(bytes) + "; raise --model-cache-size or unload models");
      }
    }
    // The disk gets back what is evicted once the trash is deleted, below.
    uint64_t free = FreeDiskBytes(options_.dir);
    while (free + freed < bytes && EvictOne(&trash.dirs, &freed)) {
    }
    if (free + freed < bytes) {
      return ResourceExhausted("the disk of the model cache " + Quoted(options_.dir) + " has " +
                               FormatBytes(free) + " free and the version needs " +
                               FormatBytes(bytes) + "; free disk space or move --model-cache-dir");
    }
    staging_bytes_ += bytes;
    dir = options_.dir / kStaging / (id + "." + std::to_string(++staged_));
  }
  std::unique_ptr<Staging> staging(new Staging(shared_from_this(), id, dir, bytes));
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  if (ec) {
    return FailedPrecondition("model cache " + Quoted(options_.dir) + ": cannot create " +
                              Quoted(dir) + ": " + ec.message());
  }
  return staging;
}

void ModelCache::Unstage(uint64_t bytes) {
  MutexLock lock(mu_);
  staging_bytes_ -= bytes;
}

ModelCache::Staging::~Staging() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(dir_, ec);
  cache_->Unstage(bytes_);
}

StatusOr<ModelCache::Hit> ModelCache::Commit(std::unique_ptr<Staging> staging) {
  const fs::path target = options_.dir / staging->id_;
  std::optional<Hit> existing;
  TrashBin trash;
  {
    MutexLock lock(mu_);
    auto it = entries_.find(staging->id_);
    if (it != entries_.end() && it->second.pins > 0) {
      // Fetched twice at once: the same content (the id says so) is in place.
      existing = Pin(staging->id_, it->second);
    } else {
      if (it != entries_.end()) {
        bytes_ -= it->second.bytes;
        entries_.erase(it);
      }
      Trash(target, &trash.dirs);  // a copy no one holds (not listed, or unpinned)
      std::error_code ec;
      fs::rename(staging->dir_, target, ec);
      if (ec) {
        return Internal("model cache " + Quoted(options_.dir) +
                        ": cannot move the fetched version into place (" + Quoted(target) +
                        "): " + ec.message());
      }
      staging->committed_ = true;
      staging_bytes_ -= staging->bytes_;
      Entry& entry = entries_[staging->id_];
      entry.bytes = staging->bytes_;
      bytes_ += entry.bytes;
      existing = Pin(staging->id_, entry);
    }
  }
  staging.reset();  // an unused staging folder goes (it takes the lock)
  TouchNow(target);
  return std::move(*existing);
}

ModelCache::Usage ModelCache::usage() const {
  MutexLock lock(mu_);
  Usage u;
  u.bytes = bytes_ + staging_bytes_;
  u.capacity = options_.capacity_bytes;
  u.entries = entries_.size();
  for (const auto& [id, entry] : entries_) u.pinned += entry.pins > 0;
  u.evictions = evictions_;
  return u;
}

}  // namespace mm
