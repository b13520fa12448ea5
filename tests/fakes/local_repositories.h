// Test helper: ModelManager::Options::repositories from local folders.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <vector>

#include "repository/local/local_repository.h"

namespace mm {

// Opens `path` as a LocalRepository; a test that cannot aborts at once.
inline std::shared_ptr<ModelRepository> LocalRepositoryAt(const std::filesystem::path& path) {
  auto opened = LocalRepository::Open(path);
  if (!opened.ok()) {
    std::fprintf(stderr, "cannot open test repository %s: %s\n", path.c_str(),
                 opened.status().message().c_str());
    std::abort();
  }
  return std::shared_ptr<ModelRepository>(std::move(*opened));
}

inline std::vector<std::shared_ptr<ModelRepository>> LocalRepositories(
    const std::vector<std::filesystem::path>& paths) {
  std::vector<std::shared_ptr<ModelRepository>> out;
  for (const auto& p : paths) out.push_back(LocalRepositoryAt(p));
  return out;
}

}  // namespace mm
