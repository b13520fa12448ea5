#include "lifecycle/repository_set.h"

#include <utility>

#include "lifecycle/version_table.h"

namespace mm {

std::string PlaceOf(const ModelSource& source) {
  return source.dir.empty() ? source.repository + "/" + source.name : source.dir.string();
}

RepositorySet::RepositorySet(std::vector<std::shared_ptr<ModelRepository>> repositories,
                             OwnerFn owner_of)
    : repositories_(std::move(repositories)), owner_of_(std::move(owner_of)) {}

StatusOr<std::vector<ModelSource>> RepositorySet::List(std::vector<Status>* failures) const {
  std::vector<const ModelRepository*> raw;
  raw.reserve(repositories_.size());
  for (const auto& r : repositories_) raw.push_back(r.get());
  return ListRepositories(raw, failures);
}

ModelRepository* RepositorySet::Find(std::string_view key) const {
  for (const auto& r : repositories_) {
    if (r->key() == key) return r.get();
  }
  return nullptr;
}

ModelOwner RepositorySet::OwnerOf(std::string_view repository) const {
  return owner_of_ ? owner_of_(repository) : ModelOwner{};
}

std::vector<ModelSource> RepositorySet::Locate(const NameScope& scope, std::string_view name,
                                               std::vector<Status>* unreadable) const {
  std::vector<ModelSource> found;
  for (const auto& r : repositories_) {
    if (!scope.Contains(r->key())) continue;
    auto source = r->Scan(name);
    if (source.ok()) {
      found.push_back(std::move(*source));
    } else if (unreadable && source.status().code() != StatusCode::kNotFound) {
      unreadable->push_back(source.status().WithContext("model repository '" + r->key() + "'"));
    }
  }
  return found;
}

StatusOr<ModelSource> RepositorySet::ScanForLoad(const ModelKey& key) const {
  ModelRepository* repository = Find(key.repository);
  if (repository == nullptr) return NotInAnyRepository(key.name);
  auto source = repository->Scan(key.name);
  if (!source.ok()) {
    return source.status().code() == StatusCode::kNotFound ? NotInAnyRepository(key.name)
                                                           : source.status();
  }
  std::vector<std::string> places = {PlaceOf(*source)};
  const std::string space = NamespaceOf(repository->key());
  for (const auto& other : repositories_) {
    if (other.get() == repository || other->key() == repository->key() ||
        NamespaceOf(other->key()) != space) {
      continue;
    }
    if (auto also = other->Scan(key.name); also.ok()) places.push_back(PlaceOf(*also));
  }
  if (places.size() > 1) return AmbiguousModel(key.name, places);
  return source;
}

}  // namespace mm
