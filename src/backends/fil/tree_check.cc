#include "backends/fil/tree_check.h"

#include <vector>

namespace mm::fil {
namespace {

Status Broken(const std::string& what, const std::string& why) {
  return InvalidArgument(what + " is not a valid tree: " + why +
                         " (expected each node reached once from the root)");
}

}  // namespace

Status CheckIndexedTree(std::span<const int32_t> left, std::span<const int32_t> right,
                        std::span<const int32_t> split_feature, int64_t num_features,
                        const std::string& what) {
  const int64_t n = static_cast<int64_t>(left.size());
  if (n == 0) return Broken(what, "no nodes");
  if (right.size() != left.size() || split_feature.size() != left.size()) {
    return Broken(what, "its node arrays differ in length");
  }
  std::vector<uint8_t> seen(static_cast<size_t>(n), 0);
  std::vector<int32_t> stack = {0};
  while (!stack.empty()) {
    const int32_t i = stack.back();
    stack.pop_back();
    if (i < 0 || i >= n)
      return Broken(what, "a child index " + std::to_string(i) + " out of range");
    if (seen[static_cast<size_t>(i)]) {
      return Broken(what, "node " + std::to_string(i) + " is reached twice");
    }
    seen[static_cast<size_t>(i)] = 1;
    const int32_t l = left[static_cast<size_t>(i)], r = right[static_cast<size_t>(i)];
    if (l == -1 && r == -1) continue;  // a leaf
    if (l == -1 || r == -1) return Broken(what, "node " + std::to_string(i) + " has one child");
    const int32_t f = split_feature[static_cast<size_t>(i)];
    if (f < 0 || f >= num_features) {
      return Broken(what, "node " + std::to_string(i) + " splits on feature " + std::to_string(f) +
                              " of " + std::to_string(num_features));
    }
    stack.push_back(l);
    stack.push_back(r);
  }
  return OkStatus();
}

Status CheckLightGBMTree(int64_t num_leaves, std::span<const int32_t> left,
                         std::span<const int32_t> right, std::span<const int32_t> split_feature,
                         int64_t num_features, const std::string& what) {
  if (num_leaves < 1) return Broken(what, "no leaves");
  if (num_leaves == 1) return OkStatus();
  const int64_t internal = num_leaves - 1;
  if (static_cast<int64_t>(left.size()) != internal ||
      static_cast<int64_t>(right.size()) != internal ||
      static_cast<int64_t>(split_feature.size()) != internal) {
    return Broken(what, "its node arrays do not have num_leaves-1 entries");
  }
  std::vector<uint8_t> seen_node(static_cast<size_t>(internal), 0);
  std::vector<uint8_t> seen_leaf(static_cast<size_t>(num_leaves), 0);
  int64_t leaves = 0, nodes = 0;
  std::vector<int32_t> stack = {0};
  while (!stack.empty()) {
    const int32_t i = stack.back();
    stack.pop_back();
    if (seen_node[static_cast<size_t>(i)]) {
      return Broken(what, "node " + std::to_string(i) + " is reached twice");
    }
    seen_node[static_cast<size_t>(i)] = 1;
    ++nodes;
    const int32_t f = split_feature[static_cast<size_t>(i)];
    if (f < 0 || f >= num_features) {
      return Broken(what, "node " + std::to_string(i) + " splits on feature " + std::to_string(f) +
                              " of " + std::to_string(num_features));
    }
    for (int32_t c : {left[static_cast<size_t>(i)], right[static_cast<size_t>(i)]}) {
      if (c >= 0) {
        if (c >= internal)
          return Broken(what, "a child index " + std::to_string(c) + " out of range");
        stack.push_back(c);
        continue;
      }
      const int64_t leaf = ~static_cast<int64_t>(c);
      if (leaf >= num_leaves)
        return Broken(what, "a leaf index " + std::to_string(leaf) + " out of range");
      if (seen_leaf[static_cast<size_t>(leaf)]) {
        return Broken(what, "leaf " + std::to_string(leaf) + " is reached twice");
      }
      seen_leaf[static_cast<size_t>(leaf)] = 1;
      ++leaves;
    }
  }
  if (nodes != internal || leaves != num_leaves) {
    return Broken(what, "some nodes are not reachable from the root");
  }
  return OkStatus();
}

}  // namespace mm::fil
