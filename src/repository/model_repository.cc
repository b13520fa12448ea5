#include "repository/model_repository.h"

#include <algorithm>

#include "repository/local/local_repository.h"

namespace mm {

StatusOr<std::unique_ptr<ModelRepository>> OpenModelRepository(std::string_view uri) {
  constexpr std::string_view kFile = "file://";
  std::string_view path = uri;
  if (path.substr(0, kFile.size()) == kFile) {
    path.remove_prefix(kFile.size());
  } else if (const size_t colon = uri.find("://"); colon != std::string_view::npos) {
    return InvalidArgument("model repository '" + std::string(uri) + "': scheme '" +
                           std::string(uri.substr(0, colon)) +
                           "://' is not supported by this build; expected a local folder "
                           "(a path, or file://PATH)");
  }
  if (path.empty()) {
    return InvalidArgument("model repository '" + std::string(uri) +
                           "': empty path; expected a directory of model directories");
  }
  auto local = LocalRepository::Open(std::filesystem::path(path));
  if (!local.ok()) return local.status();
  return std::unique_ptr<ModelRepository>(std::move(*local));
}

StatusOr<std::vector<ModelSource>> ListRepositories(
    const std::vector<const ModelRepository*>& repositories) {
  std::vector<ModelSource> sources;
  for (const ModelRepository* repository : repositories) {
    auto listed = repository->List();
    if (!listed.ok()) return listed.status();
    for (ModelSource& source : *listed) sources.push_back(std::move(source));
  }
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
