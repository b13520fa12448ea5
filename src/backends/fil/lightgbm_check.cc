#include "backends/fil/lightgbm_check.h"

#include <algorithm>
#include <climits>
#include <vector>

#include "backends/fil/tree_check.h"

namespace mm::fil {
namespace {

// Space-separated integers (LightGBM's arrays); false on anything else.
bool ParseInts(std::string_view text, std::vector<int32_t>* out) {
  out->clear();
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && text[i] == ' ') ++i;
    if (i == text.size()) break;
    bool negative = text[i] == '-';
    if (negative) ++i;
    int64_t v = 0;
    size_t digits = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      v = v * 10 + (text[i++] - '0');
      if (++digits > 10) return false;
    }
    if (digits == 0 || (i < text.size() && text[i] != ' ')) return false;
    v = negative ? -v : v;
    if (v < INT32_MIN || v > INT32_MAX) return false;
    out->push_back(static_cast<int32_t>(v));
  }
  return true;
}

}  // namespace

Status CheckLightGBMText(std::string_view text, int64_t num_trees, int64_t num_features,
                         uint64_t* leaves) {
  std::vector<int32_t> left, right, split;
  std::vector<std::string_view> keys;
  int64_t num_leaves = -1, trees = 0;
  bool in_tree = false;
  *leaves = 0;
  auto finish = [&]() -> Status {
    if (!in_tree) return OkStatus();
    in_tree = false;
    MM_RETURN_IF_ERROR(CheckLightGBMTree(num_leaves, left, right, split, num_features,
                                         "tree " + std::to_string(trees)));
    *leaves += static_cast<uint64_t>(num_leaves);
    ++trees;
    return OkStatus();
  };
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.starts_with("Tree=")) {
      MM_RETURN_IF_ERROR(finish());
      in_tree = true;
      num_leaves = -1;
      left.clear();
      right.clear();
      split.clear();
      keys.clear();
      continue;
    }
    if (line.empty() || line.starts_with("end of trees")) {
      MM_RETURN_IF_ERROR(finish());
      if (line.starts_with("end of trees")) break;
      continue;
    }
    if (!in_tree) continue;
    const size_t equals = line.find('=');
    if (equals == std::string_view::npos || keys.size() >= 22 ||
        std::find(keys.begin(), keys.end(), line.substr(0, equals)) != keys.end()) {
      return InvalidArgument("tree " + std::to_string(trees) +
                             " has a line without '=', a key twice or over 22 lines");
    }
    keys.push_back(line.substr(0, equals));
    bool ok = true;
    std::vector<int32_t> one;
    if (line.starts_with("num_leaves=")) {
      ok = ParseInts(line.substr(11), &one) && one.size() == 1;
      if (ok) num_leaves = one[0];
    } else if (line.starts_with("left_child=")) {
      ok = ParseInts(line.substr(11), &left);
    } else if (line.starts_with("right_child=")) {
      ok = ParseInts(line.substr(12), &right);
    } else if (line.starts_with("split_feature=")) {
      ok = ParseInts(line.substr(14), &split);
    }
    if (!ok) return InvalidArgument("tree " + std::to_string(trees) + " has a malformed line");
  }
  MM_RETURN_IF_ERROR(finish());
  if (trees != num_trees) {
    return InvalidArgument("LightGBM's copy of the model has " + std::to_string(trees) +
                           " trees where it counts " + std::to_string(num_trees));
  }
  return OkStatus();
}

}  // namespace mm::fil
