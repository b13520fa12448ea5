#include "repository/mlflow/mlflow_repository.h"

#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <set>

#include "repository/fingerprint.h"
#include "repository/mlflow/mlmodel.h"
#include "repository/remote_fetch.h"
#include "repository/repository_file.h"
#include "repository/repository_key.h"

namespace mm {
namespace {

constexpr uint64_t kMaxAnswerBytes = 64ull << 20;
constexpr size_t kMaxArtifactFiles = 100'000;
constexpr int kMaxArtifactDepth = 32;
constexpr std::string_view kArtifactsApi = "/api/2.0/mlflow-artifacts/artifacts";

bool UsableName(std::string_view name) {
  return !name.empty() && name[0] != '.' && name.find_first_of("/'\\") == std::string_view::npos &&
         name.find('\0') == std::string_view::npos && name.size() <= 256;
}

std::string VersionKey(const std::string& name, int64_t version) {
  return name + "\n" + std::to_string(version);
}

// Where artifacts are: behind the tracking server's proxy (a path under
// kArtifactsApi), or in S3.
struct ArtifactPlace {
  bool proxy = false;
  std::string path;            // proxy: relative to the artifact root, no leading '/'
  std::string bucket, prefix;  // s3: prefix without a trailing '/'
};

StatusOr<ArtifactPlace> PlaceOfArtifacts(const std::string& uri, const std::string& what) {
  ArtifactPlace place;
  constexpr std::string_view kProxy = "mlflow-artifacts:";
  constexpr std::string_view kS3 = "s3://";
  std::string_view rest = uri;
  if (rest.substr(0, kProxy.size()) == kProxy) {
    rest.remove_prefix(kProxy.size());
    if (rest.substr(0, 2) == "//") {  // mlflow-artifacts://host:port/path
      const size_t slash = rest.find('/', 2);
      rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
    }
    while (!rest.empty() && rest.front() == '/') rest.remove_prefix(1);
    while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
    place.proxy = true;
    place.path = rest;
    if (!place.path.empty() && !SafeRelativePath(place.path)) {
      return InvalidArgument(what + ": artifact URI '" + uri + "' has an empty, '.' or '..' part");
    }
    return place;
  }
  if (rest.substr(0, kS3.size()) == kS3) {
    rest.remove_prefix(kS3.size());
    const size_t slash = rest.find('/');
    place.bucket = rest.substr(0, slash);
    place.prefix = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
    while (!place.prefix.empty() && place.prefix.back() == '/') place.prefix.pop_back();
    return place;
  }
  return Unimplemented(what + ": artifacts at '" + uri +
                       "' cannot be fetched; expected mlflow-artifacts:/ (the tracking server's "
                       "artifact proxy, `mlflow server`'s default) or s3://");
}

Status JsonError(const std::string& what) {
  return FailedPrecondition(what + ": the answer is not the JSON MLflow's REST API gives");
}

int64_t ParseVersion(std::string_view text) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  return ec == std::errc() && end == text.data() + text.size() && v > 0 ? v : 0;
}

}  // namespace

MlflowRepository::MlflowRepository(Options options, std::string key)
    : options_(std::move(options)), key_(std::move(key)) {}

StatusOr<std::unique_ptr<MlflowRepository>> MlflowRepository::Open(Options options) {
  if (!options.client || !options.cache) {
    return InvalidArgument("model repository '" + options.uri + "': no MLflow client or cache");
  }
  std::string key = RepositoryKey(options.uri);
  return std::unique_ptr<MlflowRepository>(new MlflowRepository(std::move(options), key));
}

StatusOr<std::vector<MlflowRepository::Registered>> MlflowRepository::ListRegistered(
    const std::string* only) const {
  std::map<std::string, Registered> models;
  simdjson::dom::parser parser;
  // The registered models (and their aliases).
  if (only) {
    const std::string what = "MLflow registered model '" + *only + "'";
    auto body = options_.client->Get(
        "/api/2.0/mlflow/registered-models/get?name=" + UriEncode(*only, false), kMaxAnswerBytes);
    if (!body.ok()) return body.status();
    simdjson::dom::element root;
    simdjson::dom::object model;
    if (parser.parse(*body).get(root) || root["registered_model"].get_object().get(model)) {
      return JsonError(what);
    }
    Registered& r = models[*only];
    r.name = *only;
    simdjson::dom::array aliases;
    if (!model["aliases"].get_array().get(aliases)) {
      for (simdjson::dom::element a : aliases) {
        std::string_view alias, version;
        if (!a["alias"].get_string().get(alias) && !a["version"].get_string().get(version)) {
          r.aliases[std::string(alias)] = ParseVersion(version);
        }
      }
    }
  } else {
    std::string token;
    for (int page = 0;; ++page) {
      std::string path = "/api/2.0/mlflow/registered-models/search?max_results=1000";
      if (!token.empty()) path += "&page_token=" + UriEncode(token, false);
      MM_ASSIGN_OR_RETURN(std::string body, options_.client->Get(path, kMaxAnswerBytes));
      simdjson::dom::element root;
      if (parser.parse(body).get(root)) return JsonError("MLflow registered-models/search");
      simdjson::dom::array list;
      if (!root["registered_models"].get_array().get(list)) {
        for (simdjson::dom::element m : list) {
          std::string_view name;
          if (m["name"].get_string().get(name)) continue;
          Registered& r = models[std::string(name)];
          r.name = name;
          simdjson::dom::array aliases;
          if (m["aliases"].get_array().get(aliases)) continue;
          for (simdjson::dom::element a : aliases) {
            std::string_view alias, version;
            if (!a["alias"].get_string().get(alias) && !a["version"].get_string().get(version)) {
              r.aliases[std::string(alias)] = ParseVersion(version);
            }
          }
        }
      }
      std::string_view next;
      if (root["next_page_token"].get_string().get(next) || next.empty() || next == token) break;
      token = next;
    }
  }
  // Their versions.
  std::string token;
  for (;;) {
    std::string path = "/api/2.0/mlflow/model-versions/search?max_results=1000";
    if (only) path += "&filter=" + UriEncode("name='" + *only + "'", false);
    if (!token.empty()) path += "&page_token=" + UriEncode(token, false);
    MM_ASSIGN_OR_RETURN(std::string body, options_.client->Get(path, kMaxAnswerBytes));
    simdjson::dom::element root;
    if (parser.parse(body).get(root)) return JsonError("MLflow model-versions/search");
    simdjson::dom::array list;
    if (!root["model_versions"].get_array().get(list)) {
      for (simdjson::dom::element v : list) {
        std::string_view name, number, source, run, stage, status;
        if (v["name"].get_string().get(name) || v["version"].get_string().get(number)) continue;
        auto it = models.find(std::string(name));
        if (it == models.end()) continue;
        Version version;
        version.number = ParseVersion(number);
        if (version.number == 0) continue;
        if (!v["source"].get_string().get(source)) version.source = source;
        if (!v["run_id"].get_string().get(run)) version.run_id = run;
        if (!v["current_stage"].get_string().get(stage)) version.stage = stage;
        if (!v["status"].get_string().get(status)) version.status = status;
        int64_t updated = 0;
        if (!v["last_updated_timestamp"].get_int64().get(updated)) version.updated = updated;
        it->second.versions.push_back(std::move(version));
      }
    }
    std::string_view next;
    if (root["next_page_token"].get_string().get(next) || next.empty() || next == token) break;
    token = next;
  }
  std::vector<Registered> out;
  for (auto& [name, model] : models) {
    if (!UsableName(name)) {
      spdlog::warn(
          "repository '{}': registered model '{}' skipped: its name has a '/', a quote, "
          "a backslash or a leading '.'; expected a name usable in a URL",
          key_, name.substr(0, 256));
      continue;
    }
    out.push_back(std::move(model));
  }
  return out;
}

StatusOr<std::string> MlflowRepository::ArtifactUri(const std::string& name,
                                                    int64_t version) const {
  const std::string key = VersionKey(name, version);
  {
    MutexLock lock(mu_);
    if (auto it = uris_.find(key); it != uris_.end()) return it->second;
  }
  MM_ASSIGN_OR_RETURN(
      std::string body,
      options_.client->Get("/api/2.0/mlflow/model-versions/get-download-uri?name=" +
                               UriEncode(name, false) + "&version=" + std::to_string(version),
                           kMaxAnswerBytes));
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  std::string_view uri;
  if (parser.parse(body).get(root) || root["artifact_uri"].get_string().get(uri)) {
    return JsonError("MLflow get-download-uri of model '" + name + "'");
  }
  MutexLock lock(mu_);
  return uris_[key] = std::string(uri);
}

StatusOr<std::string> MlflowRepository::ReadArtifact(const std::string& uri,
                                                     const std::string& path) const {
  MM_ASSIGN_OR_RETURN(ArtifactPlace place, PlaceOfArtifacts(uri, "artifact '" + path + "'"));
  const uint64_t cap = MaxRepositoryFileBytes(RepositoryFileKind::kConfig);
  if (place.proxy) {
    const std::string full = place.path.empty() ? path : place.path + "/" + path;
    return options_.client->Get(std::string(kArtifactsApi) + "/" + UriEncode(full, true), cap);
  }
  if (!options_.s3) return FailedPrecondition("artifacts in S3 need the S3 settings");
  return options_.s3->Get(place.bucket, place.prefix.empty() ? path : place.prefix + "/" + path,
                          cap);
}

StatusOr<std::vector<RemoteFile>> MlflowRepository::ListArtifacts(const std::string& uri,
                                                                  int64_t version) const {
  const std::string what = "artifacts at '" + uri + "'";
  MM_ASSIGN_OR_RETURN(ArtifactPlace place, PlaceOfArtifacts(uri, what));
  std::vector<RemoteFile> files;
  const std::string folder = std::to_string(version) + "/";
  if (!place.proxy) {
    if (!options_.s3) return FailedPrecondition(what + ": artifacts in S3 need the S3 settings");
    const std::string prefix = place.prefix.empty() ? "" : place.prefix + "/";
    MM_ASSIGN_OR_RETURN(std::vector<S3Object> objects, options_.s3->List(place.bucket, prefix));
    for (S3Object& o : objects) {
      std::string relative = o.key.substr(prefix.size());
      if (relative.empty() || relative.back() == '/') continue;
      if (!SafeRelativePath(relative)) {
        return InvalidArgument(what + ": object '" + o.key + "' has an empty, '.' or '..' part");
      }
      files.push_back(RemoteFile{folder + relative, o.size, std::move(o.etag), o.crc32});
    }
    return files;
  }
  simdjson::dom::parser parser;
  // Folders to list, relative to the artifact root ("" for the root itself).
  std::vector<std::pair<std::string, int>> pending = {{"", 0}};
  while (!pending.empty()) {
    auto [sub, depth] = pending.back();
    pending.pop_back();
    const std::string listed = place.path.empty() ? sub
                               : sub.empty()      ? place.path
                                                  : place.path + "/" + sub;
    MM_ASSIGN_OR_RETURN(
        std::string body,
        options_.client->Get(std::string(kArtifactsApi) + "?path=" + UriEncode(listed, false),
                             kMaxAnswerBytes));
    simdjson::dom::element root;
    if (parser.parse(body).get(root)) return JsonError("MLflow " + what);
    simdjson::dom::array list;
    if (root["files"].get_array().get(list)) continue;  // an empty folder
    for (simdjson::dom::element f : list) {
      std::string_view path;
      if (f["path"].get_string().get(path)) return JsonError("MLflow " + what);
      // The proxy gives paths relative to the folder listed; others give
      // them from the root: either way, one relative to the root.
      std::string relative(path);
      if (!sub.empty() && relative.rfind(sub + "/", 0) != 0) relative = sub + "/" + relative;
      if (!SafeRelativePath(relative)) {
        return InvalidArgument(what + ": file '" + relative + "' has an empty, '.' or '..' part");
      }
      bool is_dir = false;
      (void)f["is_dir"].get_bool().get(is_dir);
      if (is_dir) {
        if (depth + 1 >= kMaxArtifactDepth) {
          return InvalidArgument(what + " nest deeper than " + std::to_string(kMaxArtifactDepth) +
                                 " folders");
        }
        pending.emplace_back(relative, depth + 1);
        continue;
      }
      int64_t size = 0;
      (void)f["file_size"].get_int64().get(size);
      if (files.size() >= kMaxArtifactFiles) {
        return InvalidArgument(what + " hold more than " + std::to_string(kMaxArtifactFiles) +
                               " files");
      }
      files.push_back(
          RemoteFile{folder + relative, static_cast<uint64_t>(std::max<int64_t>(size, 0)), ""});
    }
  }
  std::sort(files.begin(), files.end(),
            [](const RemoteFile& a, const RemoteFile& b) { return a.path < b.path; });
  return files;
}

ModelSource MlflowRepository::Build(const Registered& model) const {
  ModelSource source;
  source.name = model.name;
  source.repository = key_;
  source.config.set_name(model.name);
  std::vector<const Version*> selected;
  std::string missing;
  if (!options_.alias.empty()) {
    auto alias = model.aliases.find(options_.alias);
    if (alias == model.aliases.end()) {
      missing = "registered model '" + model.name + "' has no alias '" + options_.alias +
                "' (--mlflow-alias)";
    }
    for (const Version& v : model.versions) {
      if (alias != model.aliases.end() && v.number == alias->second) selected.push_back(&v);
    }
  } else {
    for (const Version& v : model.versions) selected.push_back(&v);
  }
  selected.erase(std::remove_if(selected.begin(), selected.end(),
                                [this](const Version* v) {
                                  if (v->status != "READY") return true;
                                  if (options_.stage.empty()) return false;
                                  return !std::equal(v->stage.begin(), v->stage.end(),
                                                     options_.stage.begin(), options_.stage.end(),
                                                     [](char a, char b) {
                                                       return std::tolower(a) == std::tolower(b);
                                                     });
                                }),
                 selected.end());
  std::sort(selected.begin(), selected.end(),
            [](const Version* a, const Version* b) { return a->number < b->number; });
  for (const Version* v : selected) {
    source.versions.push_back(v->number);
    Fingerprint fp;
    fp.AddField(v->source);
    fp.AddField(v->run_id);
    fp.AddNumber(static_cast<uint64_t>(v->updated));
    source.version_fingerprints[v->number] = fp.value();
  }
  if (!missing.empty()) {
    source.status = NotFound(missing);
    return source;
  }
  if (selected.empty()) {
    source.status = NotFound("registered model '" + model.name + "' has no READY version" +
                             (options_.stage.empty() ? "" : " in stage '" + options_.stage + "'"));
    return source;
  }
  // The config: the newest listed version's MLmodel (immutable: read once).
  const int64_t newest = selected.back()->number;
  const std::string key = VersionKey(model.name, newest);
  std::string text;
  bool cached = false;
  {
    MutexLock lock(mu_);
    if (auto it = mlmodels_.find(key); it != mlmodels_.end()) {
      text = it->second;
      cached = true;
    }
  }
  if (!cached) {
    auto uri = ArtifactUri(model.name, newest);
    auto read = uri.ok() ? ReadArtifact(*uri, std::string(kMLmodelFile)) : uri.status();
    if (!read.ok()) {
      source.status = read.status().WithContext("MLmodel of registered model '" + model.name +
                                                "' version " + std::to_string(newest));
      return source;
    }
    text = std::move(*read);
    MutexLock lock(mu_);
    mlmodels_[key] = text;
  }
  source.status = ApplyMLmodel(source, text);
  return source;
}

StatusOr<std::vector<ModelSource>> MlflowRepository::List() const {
  MM_ASSIGN_OR_RETURN(std::vector<Registered> models, ListRegistered(nullptr));
  std::vector<ModelSource> sources;
  sources.reserve(models.size());
  for (const Registered& model : models) sources.push_back(Build(model));
  return sources;
}

StatusOr<ModelSource> MlflowRepository::Scan(std::string_view name) const {
  const std::string wanted(name);
  if (!UsableName(wanted)) {
    return NotFound("model repository '" + key_ + "' has no model '" + wanted + "'");
  }
  auto models = ListRegistered(&wanted);
  if (!models.ok()) {
    if (models.status().code() == StatusCode::kNotFound) {
      return NotFound("model repository '" + key_ + "' has no model '" + wanted + "'");
    }
    return models.status();
  }
  for (const Registered& model : *models) {
    if (model.name == wanted) return Build(model);
  }
  return NotFound("model repository '" + key_ + "' has no model '" + wanted + "'");
}

StatusOr<LocalModelVersion> MlflowRepository::Fetch(const ModelSource& source, int64_t version,
                                                    const FetchProgress& progress) {
  if (source.repository != key_) {
    return InvalidArgument("model '" + source.name + "' was listed by repository '" +
                           source.repository + "', not by '" + key_ +
                           "'; expected a ModelSource from this repository's List or Scan");
  }
  if (std::find(source.versions.begin(), source.versions.end(), version) == source.versions.end()) {
    return NotFound("registered model '" + source.name + "' has no version " +
                    std::to_string(version) + " listed in '" + key_ + "'");
  }
  const std::string label =
      "registered model '" + source.name + "' version " + std::to_string(version);
  MM_ASSIGN_OR_RETURN(std::string uri, ArtifactUri(source.name, version));
  auto place = PlaceOfArtifacts(uri, label);
  if (!place.ok()) return place.status();
  auto listed = ListArtifacts(uri, version);
  if (!listed.ok()) return listed.status().WithContext(label);
  const std::vector<RemoteFile> files = std::move(*listed);
  const std::string folder = std::to_string(version) + "/";
  auto download = [&](const std::vector<const RemoteFile*>& batch, const std::vector<int>& fds,
                      const std::function<bool(uint64_t)>& bytes) -> Status {
    if (!place->proxy) {
      std::vector<S3Client::Target> targets;
      for (size_t i = 0; i < batch.size(); ++i) {
        const std::string relative = batch[i]->path.substr(folder.size());
        targets.push_back(
            {S3Object{place->prefix.empty() ? relative : place->prefix + "/" + relative,
                      batch[i]->size, batch[i]->etag, batch[i]->crc32},
             fds[i]});
      }
      return options_.s3->Download(place->bucket, targets, bytes);
    }
    uint64_t before = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      const std::string relative = batch[i]->path.substr(folder.size());
      const std::string full = place->path.empty() ? relative : place->path + "/" + relative;
      MM_RETURN_IF_ERROR(options_.client->Download(
          std::string(kArtifactsApi) + "/" + UriEncode(full, true), fds[i], batch[i]->size,
          [&](uint64_t n) { return bytes(before + n); }));
      before += batch[i]->size;
    }
    return OkStatus();
  };
  std::vector<const RemoteFile*> pointers;
  for (const RemoteFile& f : files) pointers.push_back(&f);
  return FetchToCache(*options_.cache, key_, source.name, version, pointers,
                      key_ + "/" + source.name + "/" + std::to_string(version) + " (" + uri + ")",
                      progress, download);
}

}  // namespace mm
