#include "repository/s3/s3_repository.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "repository/fingerprint.h"
#include "repository/mlflow/mlmodel.h"
#include "repository/remote_fetch.h"
#include "repository/repository_file.h"
#include "repository/repository_key.h"

namespace mm {
namespace {

constexpr std::string_view kConfigFile = "config.pbtxt";

bool ValidBucket(std::string_view b) {
  if (b.size() < 3 || b.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(b.front()) || !alnum(b.back())) return false;
  return std::all_of(b.begin(), b.end(),
                     [&](char c) { return alnum(c) || c == '.' || c == '-' || c == '_'; });
}

bool ModelName(std::string_view name) {
  return !name.empty() && name[0] != '.' && name.find('\0') == std::string_view::npos;
}

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

StatusOr<std::string> S3Repository::ReadSmall(const std::string& name,
                                              const RemoteFile& file) const {
  const std::string cache_key = name + "/" + file.path;
  {
    MutexLock lock(mu_);
    auto it = configs_.find(cache_key);
    if (it != configs_.end() && it->second.etag == file.etag) return it->second.text;
  }
  auto got = options_.client->Get(bucket_, prefix_ + cache_key,
                                  MaxRepositoryFileBytes(RepositoryFileKind::kConfig));
  if (!got.ok()) return got.status();
  MutexLock lock(mu_);
  configs_[cache_key] = CachedConfig{file.etag, *got};
  return got;
}

void S3Repository::ReadConfig(ModelSource& source, const RemoteFile* config) const {
  if (config == nullptr) {
    source.status = ApplyModelConfig(source, nullptr);
    // No config.pbtxt: the MLflow model format, when the newest version is one.
    if (source.status.ok() && !source.versions.empty()) {
      const std::string path =
          std::to_string(source.versions.back()) + "/" + std::string(kMLmodelFile);
      for (const RemoteFile& file : source.remote_files) {
        if (file.path != path) continue;
        auto text = ReadSmall(source.name, file);
        source.status = text.ok()
                            ? ApplyMLmodel(source, *text)
                            : text.status().WithContext("MLmodel of model '" + source.name + "'");
        break;
      }
    }
    return;
  }
  auto got = ReadSmall(source.name, *config);
  if (!got.ok()) {
    // Unread: what is known of it goes into the fingerprint, so that a later
    // successful read counts as a change.
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
  source.status = ApplyModelConfig(source, &*got);
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
    source.remote_files.push_back(
        RemoteFile{std::move(path), object.size, std::move(object.etag), object.crc32});
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
  if (source.repository != key_) {
    return InvalidArgument("model '" + source.name + "' was listed by repository '" +
                           source.repository + "', not by '" + key_ +
                           "'; expected a ModelSource from this repository's List or Scan");
  }
  if (std::find(source.versions.begin(), source.versions.end(), version) == source.versions.end()) {
    return NotFound("model '" + source.name + "' has no version " + std::to_string(version) +
                    " in repository '" + key_ + "'");
  }
  const std::string folder = prefix_ + source.name + "/";
  auto download = [&](const std::vector<const RemoteFile*>& files, const std::vector<int>& fds,
                      const std::function<bool(uint64_t)>& bytes) {
    std::vector<S3Client::Target> targets;
    for (size_t i = 0; i < files.size(); ++i) {
      targets.push_back(
          {S3Object{folder + files[i]->path, files[i]->size, files[i]->etag, files[i]->crc32},
           fds[i]});
    }
    return options_.client->Download(bucket_, targets, bytes);
  };
  return FetchToCache(
      *options_.cache, key_, source.name, version, FilesOfVersion(source.remote_files, version),
      "s3://" + bucket_ + "/" + folder.substr(0, folder.size() - 1), progress, download);
}

}  // namespace mm
