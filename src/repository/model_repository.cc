#include "repository/model_repository.h"

#include <algorithm>

#include "repository/local/local_repository.h"
#include "repository/repository_key.h"

namespace mm {

namespace {

// What a --model-repository value may be in this build, for messages.
constexpr std::string_view kSupported = "a local folder, as a path or file://PATH";

}  // namespace

StatusOr<std::unique_ptr<ModelRepository>> OpenModelRepository(std::string_view uri) {
  const RepositoryLocation location = ParseRepositoryLocation(uri);
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
    const std::vector<const ModelRepository*>& repositories) {
  std::vector<ModelSource> sources;
  for (const ModelRepository* repository : repositories) {
    MM_ASSIGN_OR_RETURN(std::vector<ModelSource> listed, repository->List());
    for (ModelSource& source : listed) sources.push_back(std::move(source));
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
