// The model file a backend loads: the config's default_model_filename, else
// the backend's default ("model.onnx"), inside the version folder, checked
// (repository_file.h) before the backend's framework reads it. Header-only:
// backends built as plugins (pytorch/) take no symbol from it.
#pragma once

#include <algorithm>
#include <filesystem>
#include <string>
#include <string_view>

#include "backends/backend.h"
#include "core/status.h"
#include "repository/repository_file.h"

namespace mm {

// INVALID_ARGUMENT for a name that leaves the version folder; the file
// check's error (NOT_FOUND, not a regular file, over the cap) otherwise;
// each prefixed with `label` ("model 'm' version 1").
inline StatusOr<std::filesystem::path> ModelFilePath(const LoadSpec& spec,
                                                     std::string_view default_file,
                                                     const std::string& label) {
  const std::string filename = spec.config.default_model_filename().empty()
                                   ? std::string(default_file)
                                   : spec.config.default_model_filename();
  const std::filesystem::path relative(filename);
  if (relative.is_absolute() ||
      std::find(relative.begin(), relative.end(), "..") != relative.end()) {
    return InvalidArgument(label + ": default_model_filename '" + filename +
                           "' must name a file inside the version directory");
  }
  std::filesystem::path path = spec.version_dir / relative;
  if (auto size = CheckRepositoryFile(path, RepositoryFileKind::kModel); !size.ok()) {
    return size.status().WithContext(label);
  }
  return path;
}

}  // namespace mm
