// Structural checks of a loaded model's trees, read back from the library
// (its own canonical serialization, or its arrays): the libraries walk a tree
// by its child indices without bounds or cycle checks, so a hostile file with
// a child pointing back at its parent hangs a prediction forever (LightGBM)
// or crashes it (XGBoost: SEGV). Every engine checks every tree at load.
// Private to src/backends/fil/.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "core/status.h"

namespace mm::fil {

// XGBoost's and Treelite's encoding: nodes 0..n-1, root 0, left[i] == -1 for
// a leaf. Each node is reached at most once from the root (no cycle, no
// shared child), every child index is in range, a node has two children or
// none, and a split's feature is below num_features.
Status CheckIndexedTree(std::span<const int32_t> left, std::span<const int32_t> right,
                        std::span<const int32_t> split_feature, int64_t num_features,
                        const std::string& what);

// LightGBM's encoding: num_leaves leaves and num_leaves-1 internal nodes,
// root 0; a child c >= 0 is internal node c, c < 0 is leaf ~c. Every node and
// leaf is reached exactly once.
Status CheckLightGBMTree(int64_t num_leaves, std::span<const int32_t> left,
                         std::span<const int32_t> right, std::span<const int32_t> split_feature,
                         int64_t num_features, const std::string& what);

}  // namespace mm::fil
