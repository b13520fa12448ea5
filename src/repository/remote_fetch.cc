#include "repository/remote_fetch.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <system_error>

#include "core/memory.h"
#include "repository/fingerprint.h"
#include "repository/repository.h"

namespace mm {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Files opened at once while downloading a version with very many.
constexpr size_t kFilesPerBatch = 256;

// The version a file of a model belongs to (0: the model folder's own).
int64_t VersionOf(const std::string& path) {
  const size_t slash = path.find('/');
  if (slash == std::string::npos) return 0;
  int64_t version = 0;
  return ParseVersionName(path.substr(0, slash), &version) == VersionName::kValid ? version : 0;
}

std::string Hex16(uint64_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) s[static_cast<size_t>(i)] = kHex[v & 15];
  return s;
}

class Fds {
 public:
  ~Fds() {
    for (int fd : fds_) close(fd);
  }
  void Add(int fd) { fds_.push_back(fd); }
  const std::vector<int>& all() const { return fds_; }

 private:
  std::vector<int> fds_;
};

}  // namespace

bool SafeRelativePath(std::string_view path) {
  if (path.empty() || path.find('\0') != std::string_view::npos) return false;
  size_t begin = 0;
  while (begin <= path.size()) {
    size_t end = path.find('/', begin);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view segment = path.substr(begin, end - begin);
    if (segment.empty() || segment == "." || segment == "..") return false;
    begin = end + 1;
  }
  return true;
}

std::vector<const RemoteFile*> FilesOfVersion(const std::vector<RemoteFile>& files,
                                              int64_t version) {
  std::vector<const RemoteFile*> selected;
  for (const RemoteFile& file : files) {
    const int64_t of = VersionOf(file.path);
    if (of == 0 || of == version) selected.push_back(&file);
  }
  return selected;
}

std::string CacheEntryId(const std::string& repository, const std::string& model, int64_t version,
                         const std::vector<const RemoteFile*>& files) {
  Fingerprint fp;
  fp.AddField(repository);
  fp.AddField(model);
  fp.AddNumber(static_cast<uint64_t>(version));
  for (const RemoteFile* f : files) {
    fp.AddField(f->path);
    fp.AddNumber(f->size);
    fp.AddField(f->etag);
  }
  std::string readable;
  for (char c : model.substr(0, 64)) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '-' || c == '_' || c == '.';
    readable += plain ? c : '_';
  }
  if (readable.empty() || readable[0] == '.') readable.insert(0, "m");
  return readable + "-" + std::to_string(version) + "-" + Hex16(fp.value());
}

StatusOr<LocalModelVersion> FetchToCache(ModelCache& cache, const std::string& repository,
                                         const std::string& model, int64_t version,
                                         const std::vector<const RemoteFile*>& files,
                                         const std::string& from, const FetchProgress& progress,
                                         const DownloadFiles& download) {
  const std::string label = "model '" + model + "' version " + std::to_string(version);
  const std::string id = CacheEntryId(repository, model, version, files);
  const std::string version_folder = std::to_string(version);
  auto verify = [&files](const fs::path& dir) {
    for (const RemoteFile* file : files) {
      std::error_code ec;
      if (fs::file_size(dir / file->path, ec) != file->size || ec) return false;
    }
    return true;
  };
  if (auto hit = cache.Find(id, verify)) {
    spdlog::info("{}: using the cached copy in '{}'", label, hit->dir.string());
    return LocalModelVersion{hit->dir, hit->dir / version_folder, std::move(hit->lease)};
  }
  uint64_t total = 0;
  for (const RemoteFile* file : files) total += file->size;
  const std::string context = "fetching " + label + " from " + from;
  auto staging = cache.Stage(id, total);
  if (!staging.ok()) return staging.status().WithContext(context);
  const fs::path dir = (*staging)->dir();
  spdlog::info("{}: fetching {} files ({}) from {}", label, files.size(), FormatBytes(total), from);

  const auto started = Clock::now();
  auto last_report = started;
  auto last_log = started;
  uint64_t done_before = 0;
  bool stopped = false;  // `progress` said stop
  auto report = [&](uint64_t done, bool force) {
    const auto now = Clock::now();
    if (stopped) return false;
    if (!force && now - last_report < std::chrono::milliseconds(250)) return true;
    last_report = now;
    if (progress && !progress(done, total)) {
      stopped = true;
      return false;
    }
    if (now - last_log >= std::chrono::seconds(5)) {
      last_log = now;
      spdlog::info("{}: fetched {} of {} ({}%) from {}", label, FormatBytes(done),
                   FormatBytes(total), total ? done * 100 / total : 100, from);
    }
    return true;
  };
  if (!report(0, true)) return Cancelled(context + ": stopped before it began");
  for (size_t begin = 0; begin < files.size(); begin += kFilesPerBatch) {
    const size_t end = std::min(files.size(), begin + kFilesPerBatch);
    Fds fds;
    std::vector<const RemoteFile*> batch;
    uint64_t batch_bytes = 0;
    for (size_t i = begin; i < end; ++i) {
      const RemoteFile& file = *files[i];
      const fs::path path = dir / file.path;
      std::error_code ec;
      fs::create_directories(path.parent_path(), ec);
      // Read-write: the download may read a part back (an MD5 check).
      const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) {
        const int err = errno;
        return (err == ENOSPC ? ResourceExhausted("the disk is full")
                              : FailedPrecondition(std::string("cannot create '") + file.path +
                                                   "' in the model cache: " + std::strerror(err) +
                                                   (ec ? " (" + ec.message() + ")" : "")))
            .WithContext(context);
      }
      fds.Add(fd);
      if (file.size > 0) {
        const int err = posix_fallocate(fd, 0, static_cast<off_t>(file.size));
        if (err == ENOSPC || err == EDQUOT) {
          return ResourceExhausted("the disk of the model cache '" + cache.dir().string() +
                                   "' is full: no room for '" + file.path + "' (" +
                                   FormatBytes(file.size) + ")")
              .WithContext(context);
        }
      }
      batch.push_back(&file);
      batch_bytes += file.size;
    }
    Status downloaded = download(
        batch, fds.all(), [&](uint64_t bytes) { return report(done_before + bytes, false); });
    if (!downloaded.ok()) return downloaded.WithContext(context);
    done_before += batch_bytes;
  }
  report(total, true);
  auto hit = cache.Commit(std::move(*staging));
  if (!hit.ok()) return hit.status().WithContext(context);
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  spdlog::info("{}: fetched {} from {} in {:.2f} s", label, FormatBytes(total), from, seconds);
  return LocalModelVersion{hit->dir, hit->dir / version_folder, std::move(hit->lease)};
}

}  // namespace mm
