// The three engines behind TreeModel, one per library, and what they share.
// LoadTreeModel (tree_model.cc) reads the file and picks one. Private to
// src/backends/fil/.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backends/fil/tree_libraries.h"
#include "backends/fil/tree_model.h"
#include "core/status.h"

namespace mm::fil {

// `bytes` is the whole model file; `file` names it in messages.
StatusOr<std::unique_ptr<TreeModel>> LoadXGBoostModel(const XGBoostLibrary& library, ModelType type,
                                                      const std::string& bytes,
                                                      const std::string& file);
StatusOr<std::unique_ptr<TreeModel>> LoadLightGBMModel(const LightGBMLibrary& library,
                                                       const std::string& bytes,
                                                       const std::string& file);
// treelite_checkpoint, or (type kXGBoost) XGBoost's legacy binary format,
// which XGBoost >= 3.1 no longer reads.
StatusOr<std::unique_ptr<TreeModel>> LoadTreeliteModel(const TreeliteLibrary& library,
                                                       ModelType type, const std::string& bytes,
                                                       const std::string& file);

// A per-thread buffer that only grows: no allocation per prediction once a
// thread has seen its largest batch. Tag types keep the buffers apart.
template <typename T, typename Tag>
T* ThreadScratch(size_t n) {
  thread_local std::vector<T> buffer;
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

}  // namespace mm::fil
