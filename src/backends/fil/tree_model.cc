// LoadTreeModel: reads the file and hands it to the library that serves its
// model_type (tree_model.h).
#include "backends/fil/tree_model.h"

#include <cstdio>
#include <string_view>

#include "backends/fil/engines.h"

namespace mm::fil {
namespace {

// The whole file, read once (each library parses from memory).
StatusOr<std::string> ReadModelFile(const std::filesystem::path& file) {
  std::FILE* f = std::fopen(file.c_str(), "rb");
  if (f == nullptr) return NotFound("cannot open model file " + file.string());
  std::string bytes;
  char chunk[1 << 16];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), f)) > 0) bytes.append(chunk, n);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) return Internal("error reading model file " + file.string());
  if (bytes.empty()) return InvalidArgument("model file " + file.string() + " is empty");
  return bytes;
}

}  // namespace

StatusOr<std::unique_ptr<TreeModel>> LoadTreeModel(ModelType type,
                                                   const std::filesystem::path& file,
                                                   const TreeLibraryPaths& libraries) {
  // The library first: without it, nothing about the file matters.
  switch (type) {
    case ModelType::kXGBoostJson:
    case ModelType::kXGBoostUbj: {
      MM_ASSIGN_OR_RETURN(const XGBoostLibrary* library, OpenXGBoostLibrary(libraries.xgboost));
      MM_ASSIGN_OR_RETURN(std::string bytes, ReadModelFile(file));
      return LoadXGBoostModel(*library, type, bytes, file.string());
    }
    case ModelType::kLightGBM: {
      MM_ASSIGN_OR_RETURN(const LightGBMLibrary* library, OpenLightGBMLibrary(libraries.lightgbm));
      MM_ASSIGN_OR_RETURN(std::string bytes, ReadModelFile(file));
      return LoadLightGBMModel(*library, bytes, file.string());
    }
    case ModelType::kXGBoost:  // legacy binary: XGBoost >= 3.1 cannot read it
    case ModelType::kTreeliteCheckpoint: {
      MM_ASSIGN_OR_RETURN(const TreeliteLibrary* library, OpenTreeliteLibrary(libraries.treelite));
      MM_ASSIGN_OR_RETURN(std::string bytes, ReadModelFile(file));
      return LoadTreeliteModel(*library, type, bytes, file.string());
    }
  }
  return InvalidArgument("unknown model type");
}

}  // namespace mm::fil
