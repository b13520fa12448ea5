#include "repository/s3/s3_repository.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>
#include <system_error>

#include "core/memory.h"
#include "repository/fingerprint.h"
#include "repository/repository_file.h"
#include "repository/repository_key.h"

namespace mm {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kConfigFile = "config.pbtxt";
// Files opened at once while downloading a version with very many.
constexpr size_t kFilesPerBatch = 256;

bool ValidBucket(std::string_view b) {
  if (b.size() < 3 || b.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(b.front()) || !alnum(b.back())) return false;
  return std::all_of(b.begin(), b.end(),
                     [&](char c) { return alnum(c) || c == '.' || c == '-' || c == '_'; });
}

// Whether every '/'-separated segment of `path` is a usable file name.
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

bool ModelName(std::string_view name) {
  return !name.empty() && name[0] != '.' && name.find('\0') == std::string_view::npos;
}

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

// A cache entry id: readable, and unique by what it holds.
std::string EntryId(const std::string& repository, const std::string& model, int64_t version,
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

class Fds {
 public:
  ~Fds() {
    for (int fd : fds_) close(fd);
  }
  void Add(int fd) { fds_.push_back(fd); }

 private:
  std::vector<int> fds_;
};

}  // namespace

S3Repository::S3Repository(Options options, std::string key, std::string bucket, std::string prefix)
    : options_(std::move(options)),
      key_(std::move(key)),
      bucket_(std::move(bucket)),
      prefix_(std::move(prefix)) {}

StatusOr<std::unique_ptr<S3Repository>> S3Repository::Open(Options options) {
  const std::string uri = options.uri;
  const RepositoryLocation location = ParseRepositoryLocation(uri);
  constexpr std::string_view kExpected =
      "; expected s3://BUCKET or s3://BUCKET/PREFIX (a bucket name of 3 to 63 lower-case "
      "letters, digits, '.', '-' or '_')";
  if (location.scheme != "s3") {
    return InvalidArgument("model repository '" + uri + "' is not an s3:// URI" +
                           std::string(kExpected));
  }
  if (!options.client || !options.cache) {
    return InvalidArgument("model repository '" + uri + "': no S3 client or model cache");
  }
  const std::string rest = location.path.substr(5);  // after "s3://"
  const size_t slash = rest.find('/');
  const std::string bucket = rest.substr(0, slash);
  std::string prefix = slash == std::string::npos ? "" : rest.substr(slash + 1);
  if (!ValidBucket(bucket)) {
    return InvalidArgument("model repository '" + uri + "': '" + bucket + "' is not a bucket name" +
                           std::string(kExpected));
  }
  if (!prefix.empty()) {
    if (!SafeRelativePath(prefix)) {
      return InvalidArgument("model repository '" + uri + "': the prefix '" + prefix +
                             "' has an empty, '.' or '..' segment" + std::string(kExpected));
    }
    prefix += '/';
  }
  return std::unique_ptr<S3Repository>(
      new S3Repository(std::move(options), location.path, bucket, std::move(prefix)));
}

void S3Repository::ReadConfig(ModelSource& source, const RemoteFile* config) const {
  if (config == nullptr) {
    source.status = ApplyModelConfig(source, nullptr);
    return;
  }
  std::string text;
  bool cached = false;
  {
    MutexLock lock(mu_);
    auto it = configs_.find(source.name);
    if (it != configs_.end() && it->second.etag == config->etag) {
      text = it->second.text;
      cached = true;
    }
  }
  if (!cached) {
    const std::string key = prefix_ + source.name + "/" + std::string(kConfigFile);
    auto got =
        options_.client->Get(bucket_, key, MaxRepositoryFileBytes(RepositoryFileKind::kConfig));
    if (!got.ok()) {
      // Unread: what is known of it goes into the fingerprint, so that a
      // later successful read counts as a change.
      (void)ApplyModelConfig(source, nullptr);
      source.has_config = true;
      Fingerprint fp;
      fp.AddField("unread config");
      fp.AddField(config->etag);
      fp.AddField(got.status().message());
      source.config_fingerprint = fp.value();
      source.status = got.status().WithContext("config.pbtxt of model '" + source.name + "'");
      return;
    }
    text = std::move(*got);
    MutexLock lock(mu_);
    configs_[source.name] = CachedConfig{config->etag, text};
  }
  source.status = ApplyModelConfig(source, &text);
}

StatusOr<std::vector<ModelSource>> S3Repository::Build(std::vector<S3Object> objects) const {
  std::map<std::string, ModelSource> models;
  std::set<std::string> skipped;
  for (S3Object& object : objects) {
    if (object.key.compare(0, prefix_.size(), prefix_) != 0) continue;
    const std::string relative = object.key.substr(prefix_.size());
    const size_t slash = relative.find('/');
    if (slash == std::string::npos) continue;  // a file beside the models
    const std::string name = relative.substr(0, slash);
    std::string path = relative.substr(slash + 1);
    if (path.empty() || path.back() == '/') continue;  // a "folder" marker
    if (!ModelName(name) || !SafeRelativePath(path)) {
      if (skipped.size() < 16) skipped.insert(object.key);
      continue;
    }
    ModelSource& source = models[name];
    source.remote_files.push_back(RemoteFile{std::move(path), object.size, std::move(object.etag)});
  }
  for (const std::string& key : skipped) {
    spdlog::warn(
        "repository '{}': object '{}' skipped: its key has an empty, '.' or '..' segment "
        "or names a hidden model; expected <model>/<path> with plain names",
        key_, key);
  }
  std::vector<ModelSource> sources;
  sources.reserve(models.size());
  for (auto& [name, source] : models) {
    source.name = name;
    source.repository = key_;
    std::sort(source.remote_files.begin(), source.remote_files.end(),
              [](const RemoteFile& a, const RemoteFile& b) { return a.path < b.path; });
    std::map<int64_t, Fingerprint> versions;
    std::set<std::string> malformed;
    const RemoteFile* config = nullptr;
    for (const RemoteFile& file : source.remote_files) {
      if (file.path == kConfigFile) config = &file;
      const size_t slash = file.path.find('/');
      if (slash == std::string::npos) continue;
      const std::string folder = file.path.substr(0, slash);
      int64_t version = 0;
      switch (ParseVersionName(folder, &version)) {
        case VersionName::kValid: {
          Fingerprint& fp = versions[version];
          fp.AddField(file.path.substr(slash + 1));
          fp.AddNumber(file.size);
          fp.AddField(file.etag);
          break;
        }
        case VersionName::kMalformed:
          malformed.insert(folder);
          break;
        case VersionName::kNotNumeric:
          break;
      }
    }
    for (const std::string& folder : malformed) {
      source.warnings.push_back("model '" + name + "': folder '" + folder +
                                "' ignored; version folders are positive integers without "
                                "leading zeros");
    }
    for (const auto& [version, fp] : versions) {
      source.versions.push_back(version);
      source.version_fingerprints[version] = fp.value();
    }
    ReadConfig(source, config);
    sources.push_back(std::move(source));
  }
  return sources;
}

StatusOr<std::vector<ModelSource>> S3Repository::List() const {
  MM_ASSIGN_OR_RETURN(std::vector<S3Object> objects, options_.client->List(bucket_, prefix_));
  return Build(std::move(objects));
}

StatusOr<ModelSource> S3Repository::Scan(std::string_view name) const {
  if (!ModelName(name) || name.find('/') != std::string_view::npos) {
    return NotFound("model repository '" + key_ + "' has no model '" + std::string(name) + "'");
  }
  MM_ASSIGN_OR_RETURN(std::vector<S3Object> objects,
                      options_.client->List(bucket_, prefix_ + std::string(name) + "/"));
  MM_ASSIGN_OR_RETURN(std::vector<ModelSource> sources, Build(std::move(objects)));
  for (ModelSource& source : sources) {
    if (source.name == name) return std::move(source);
  }
  return NotFound("model repository '" + key_ + "' has no model '" + std::string(name) + "'");
}

StatusOr<LocalModelVersion> S3Repository::Fetch(const ModelSource& source, int64_t version,
                                                const FetchProgress& progress) {
  const std::string label = "model '" + source.name + "' version " + std::to_string(version);
  if (source.repository != key_) {
    return InvalidArgument("model '" + source.name + "' was listed by repository '" +
                           source.repository + "', not by '" + key_ +
                           "'; expected a ModelSource from this repository's List or Scan");
  }
  if (std::find(source.versions.begin(), source.versions.end(), version) == source.versions.end()) {
    return NotFound("model '" + source.name + "' has no version " + std::to_string(version) +
                    " in repository '" + key_ + "'");
  }
  // The version's files and the model folder's own; not other versions'.
  std::vector<const RemoteFile*> files;
  uint64_t total = 0;
  for (const RemoteFile& file : source.remote_files) {
    const int64_t of = VersionOf(file.path);
    if (of != 0 && of != version) continue;
    files.push_back(&file);
    total += file.size;
  }
  const std::string id = EntryId(key_, source.name, version, files);
  const std::string version_folder = std::to_string(version);
  auto verify = [&files](const fs::path& dir) {
    for (const RemoteFile* file : files) {
      std::error_code ec;
      if (fs::file_size(dir / file->path, ec) != file->size || ec) return false;
    }
    return true;
  };
  if (auto hit = options_.cache->Find(id, verify)) {
    spdlog::info("{}: using the cached copy in '{}'", label, hit->dir.string());
    return LocalModelVersion{hit->dir, hit->dir / version_folder, std::move(hit->lease)};
  }
  const std::string from = "s3://" + bucket_ + "/" + prefix_ + source.name;
  auto staging = options_.cache->Stage(id, total);
  if (!staging.ok()) return staging.status().WithContext("fetching " + label + " from " + from);
  const fs::path dir = (*staging)->dir();
  spdlog::info("{}: fetching {} files ({}) from {}", label, files.size(), FormatBytes(total), from);

  const auto started = Clock::now();
  auto last_report = started;
  auto last_log = started;
  uint64_t done_before = 0;
  auto report = [&](uint64_t done, bool force) {
    const auto now = Clock::now();
    if (!force && now - last_report < std::chrono::milliseconds(250)) return;
    last_report = now;
    if (progress) progress(done, total);
    if (now - last_log >= std::chrono::seconds(5)) {
      last_log = now;
      spdlog::info("{}: fetched {} of {} ({}%) from {}", label, FormatBytes(done),
                   FormatBytes(total), total ? done * 100 / total : 100, from);
    }
  };
  report(0, true);
  for (size_t begin = 0; begin < files.size(); begin += kFilesPerBatch) {
    const size_t end = std::min(files.size(), begin + kFilesPerBatch);
    Fds fds;
    std::vector<S3Client::Target> targets;
    uint64_t batch_bytes = 0;
    for (size_t i = begin; i < end; ++i) {
      const RemoteFile& file = *files[i];
      const fs::path path = dir / file.path;
      std::error_code ec;
      fs::create_directories(path.parent_path(), ec);
      const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) {
        const int err = errno;
        return (err == ENOSPC ? ResourceExhausted("the disk is full")
                              : FailedPrecondition(std::string("cannot create '") + file.path +
                                                   "' in the model cache: " + std::strerror(err) +
                                                   (ec ? " (" + ec.message() + ")" : "")))
            .WithContext("fetching " + label + " from " + from);
      }
      fds.Add(fd);
      if (file.size > 0) {
        const int err = posix_fallocate(fd, 0, static_cast<off_t>(file.size));
        if (err == ENOSPC || err == EDQUOT) {
          return ResourceExhausted("the disk of the model cache '" +
                                   options_.cache->dir().string() + "' is full: no room for '" +
                                   file.path + "' (" + FormatBytes(file.size) + ")")
              .WithContext("fetching " + label + " from " + from);
        }
      }
      S3Client::Target target;
      target.object = S3Object{prefix_ + source.name + "/" + file.path, file.size, file.etag};
      target.fd = fd;
      targets.push_back(std::move(target));
      batch_bytes += file.size;
    }
    Status downloaded = options_.client->Download(
        bucket_, targets, [&](uint64_t bytes) { report(done_before + bytes, false); });
    if (!downloaded.ok()) return downloaded.WithContext("fetching " + label + " from " + from);
    done_before += batch_bytes;
  }
  report(total, true);
  auto hit = options_.cache->Commit(std::move(*staging));
  if (!hit.ok()) return hit.status().WithContext("fetching " + label + " from " + from);
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  spdlog::info("{}: fetched {} from {} in {:.2f} s", label, FormatBytes(total), from, seconds);
  return LocalModelVersion{hit->dir, hit->dir / version_folder, std::move(hit->lease)};
}

}  // namespace mm
