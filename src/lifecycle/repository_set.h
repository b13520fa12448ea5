// The repositories the lifecycle serves from, seen only through the
// ModelRepository seam, with the namespace (owning tenant) of each.
//
// Contract:
//  1. Holds the repositories it is given for its lifetime; constant after
//     construction.
//  2. Every method reads what the repositories hold now (it may block on
//     them: loader threads and control calls, never the request path) and
//     takes no lifecycle lock; they may run concurrently.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "lifecycle/model_key.h"
#include "lifecycle/model_manager.h"
#include "repository/model_repository.h"

namespace mm {

// Where a model is, for messages: its local folder, else "<key>/<name>".
std::string PlaceOf(const ModelSource& source);

class RepositorySet {
 public:
  using OwnerFn = std::function<ModelOwner(std::string_view repository_key)>;
  RepositorySet(std::vector<std::shared_ptr<ModelRepository>> repositories, OwnerFn owner_of);

  // Every model of every repository, sorted by name (ListRepositories). A
  // repository that cannot be listed is skipped, its error in `failures`.
  StatusOr<std::vector<ModelSource>> List(std::vector<Status>* failures) const;

  // The repository whose key() is `key`; null for none.
  ModelRepository* Find(std::string_view key) const;
  const std::vector<std::shared_ptr<ModelRepository>>& all() const { return repositories_; }

  // The repositories of `scope` holding a model `name` now, scanned. A
  // repository that cannot say (unreachable, access denied) is skipped, its
  // error appended to `unreadable` when given.
  std::vector<ModelSource> Locate(const NameScope& scope, std::string_view name,
                                  std::vector<Status>* unreadable = nullptr) const;

  // The model `key` as its repository holds it now, for a load:
  // NotInAnyRepository when it does not hold it, ALREADY_EXISTS (naming them)
  // when another repository of its namespace holds `key.name` too.
  StatusOr<ModelSource> ScanForLoad(const ModelKey& key) const;

  // The owner of a repository and its quotas (none without owner_of).
  ModelOwner OwnerOf(std::string_view repository) const;
  // The namespace of a repository: the tenant owning it ("" for none).
  std::string NamespaceOf(std::string_view repository) const { return OwnerOf(repository).tenant; }

 private:
  const std::vector<std::shared_ptr<ModelRepository>> repositories_;
  const OwnerFn owner_of_;
};

}  // namespace mm
