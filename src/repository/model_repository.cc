#include "repository/model_repository.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <map>
#include <optional>

#include "repository/local/local_repository.h"
#include "repository/mlflow/mlflow_repository.h"
#include "repository/model_cache.h"
#include "repository/repository_key.h"
#include "repository/s3/s3_client.h"
#include "repository/s3/s3_repository.h"

namespace mm {

namespace {

// What a --model-repository value may be in this build, for messages.
constexpr std::string_view kSupported =
    "a local folder, as a path or file://PATH, s3://BUCKET[/PREFIX], or mlflow://HOST[:PORT] "
    "(mlflows:// for TLS)";

}  // namespace

struct RemoteRepositories::State {
  std::shared_ptr<ModelCache> cache;
  std::shared_ptr<S3Client> s3;
  Status s3_error;  // why there is no S3 client, once tried
  bool s3_tried = false;
};

RemoteRepositories::RemoteRepositories(Options options)
    : options_(std::move(options)), state_(std::make_unique<State>()) {}

RemoteRepositories::~RemoteRepositories() = default;

std::filesystem::path DefaultModelCacheDir() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg == '/') {
    return std::filesystem::path(xdg) / "mmserve" / "models";
  }
  if (const char* home = std::getenv("HOME"); home && *home == '/') {
    return std::filesystem::path(home) / ".cache" / "mmserve" / "models";
  }
  return "/tmp/mmserve-models";
}

StatusOr<std::unique_ptr<ModelRepository>> RemoteRepositories::Open(std::string_view uri) {
  const RepositoryLocation location = ParseRepositoryLocation(uri);
  const bool s3 = location.scheme == "s3";
  const bool mlflow = location.scheme == "mlflow" || location.scheme == "mlflows";
  if (!s3 && !mlflow) {
    return InvalidArgument("model repository '" + std::string(uri) + "': scheme '" +
                           location.scheme + "://' is not supported by this build; expected " +
                           std::string(kSupported));
  }
  if (!state_->cache) {
    ModelCache::Options cache;
    cache.dir = options_.cache_dir.empty() ? DefaultModelCacheDir() : options_.cache_dir;
    cache.capacity_bytes = options_.cache_bytes;
    auto opened = ModelCache::Open(cache);
    if (!opened.ok()) return opened.status().WithContext("--model-cache-dir");
    state_->cache = std::move(*opened);
  }
  // The S3 client: for s3:// repositories, and for MLflow artifacts kept in
  // S3 (an MLflow repository without S3 settings still serves proxied ones).
  if (!state_->s3_tried) {
    state_->s3_tried = true;
    auto settings = ResolveS3Settings(AwsEnvironment::Process(), options_.s3_endpoint);
    if (settings.ok()) {
      S3Client::Options client;
      client.settings = std::move(*settings);
      auto created = S3Client::Create(std::move(client));
      if (created.ok()) {
        state_->s3 = std::move(*created);
      } else {
        state_->s3_error = created.status();
      }
    } else {
      state_->s3_error = settings.status().WithContext("S3 settings");
    }
    if (state_->s3 && s3) {
      const S3Settings& s = state_->s3->options().settings;
      spdlog::info("S3 endpoint {} (region {}), credentials: {}", s.endpoint, s.region,
                   s.credentials_source);
    }
  }
  if (s3) {
    if (!state_->s3) return state_->s3_error;
    S3Repository::Options options;
    options.uri = std::string(uri);
    options.client = state_->s3;
    options.cache = state_->cache;
    MM_ASSIGN_OR_RETURN(std::unique_ptr<S3Repository> repository,
                        S3Repository::Open(std::move(options)));
    return std::unique_ptr<ModelRepository>(std::move(repository));
  }
  auto env = [](std::string_view name) -> std::optional<std::string> {
    const char* value = std::getenv(std::string(name).c_str());
    return value ? std::optional<std::string>(value) : std::nullopt;
  };
  MM_ASSIGN_OR_RETURN(MlflowSettings settings, ResolveMlflowSettings(uri, env));
  spdlog::info("MLflow registry {}: authentication {}{}{}", settings.base, settings.auth_source,
               options_.mlflow_alias.empty() ? "" : ", serving alias @" + options_.mlflow_alias,
               options_.mlflow_stage.empty() ? "" : ", serving stage " + options_.mlflow_stage);
  MM_ASSIGN_OR_RETURN(std::unique_ptr<MlflowClient> client,
                      MlflowClient::Create(std::move(settings)));
  MlflowRepository::Options options;
  options.uri = std::string(uri);
  options.alias = options_.mlflow_alias;
  options.stage = options_.mlflow_stage;
  options.client = std::move(client);
  options.cache = state_->cache;
  options.s3 = state_->s3;
  MM_ASSIGN_OR_RETURN(std::unique_ptr<MlflowRepository> repository,
                      MlflowRepository::Open(std::move(options)));
  return std::unique_ptr<ModelRepository>(std::move(repository));
}

StatusOr<std::unique_ptr<ModelRepository>> OpenModelRepository(std::string_view uri,
                                                               RemoteRepositories* remote) {
  const RepositoryLocation location = ParseRepositoryLocation(uri);
  if (!location.local() && remote != nullptr) return remote->Open(uri);
  if (!location.local()) {
    return InvalidArgument("model repository '" + std::string(uri) + "': scheme '" +
                           location.scheme + "://' is not supported by this build; expected " +
                           std::string(kSupported));
  }
  if (location.path.empty()) {
    return InvalidArgument("model repository '" + std::string(uri) + "': empty path; expected " +
                           std::string(kSupported) + " naming a directory of model directories");
  }
  MM_ASSIGN_OR_RETURN(std::unique_ptr<LocalRepository> local,
                      LocalRepository::Open(std::filesystem::path(location.path)));
  return std::unique_ptr<ModelRepository>(std::move(local));
}

StatusOr<std::vector<ModelSource>> ListRepositories(
    const std::vector<const ModelRepository*>& repositories, std::vector<Status>* failures) {
  std::vector<ModelSource> sources;
  for (const ModelRepository* repository : repositories) {
    auto listed = repository->List();
    if (!listed.ok()) {
      if (failures == nullptr) return listed.status();
      failures->push_back(
          listed.status().WithContext("model repository '" + repository->key() + "'"));
      continue;
    }
    for (ModelSource& source : *listed) sources.push_back(std::move(source));
  }
  // Each List is sorted already; a stable sort keeps repository order among
  // equal names, so the first repository's copy comes first.
  std::stable_sort(sources.begin(), sources.end(),
                   [](const ModelSource& a, const ModelSource& b) { return a.name < b.name; });
  // A name in several repositories is ambiguous: mark every copy.
  for (size_t begin = 0; begin < sources.size();) {
    size_t end = begin + 1;
    while (end < sources.size() && sources[end].name == sources[begin].name) ++end;
    if (end - begin > 1) {
      std::string places;
      for (size_t i = begin; i < end; ++i) {
        if (i > begin) places += i + 1 == end ? " and " : ", ";
        const ModelSource& s = sources[i];
        places += "'" + (s.dir.empty() ? s.repository + "/" + s.name : s.dir.string()) + "'";
      }
      for (size_t i = begin; i < end; ++i) {
        sources[i].status = AlreadyExists("model '" + sources[i].name +
                                          "' is in more than one repository: " + places +
                                          "; model names must be unique across repositories");
      }
    }
    begin = end;
  }
  return sources;
}

}  // namespace mm
