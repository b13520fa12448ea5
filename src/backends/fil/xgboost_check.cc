#include "backends/fil/xgboost_check.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

#include "backends/fil/tree_check.h"

namespace mm::fil {
namespace {

constexpr int kMaxDepth = 64;

// Where a value sits: the model's "trees" array, one tree, its tree_param.
enum class Role { kNone, kTrees, kTree, kTreeParam };

// One tree's arrays (element counts by key) and its stated node count.
// A tree's ~20 keys, in a flat list: a map's string compares cost more than
// the rest of the check.
class ArrayCounts {
 public:
  const uint64_t* Find(std::string_view key) const {
    for (const auto& [name, count] : items_) {
      if (name == key) return &count;
    }
    return nullptr;
  }
  bool contains(std::string_view key) const { return Find(key) != nullptr; }
  uint64_t& operator[](std::string_view key) {
    if (const uint64_t* count = Find(key)) return const_cast<uint64_t&>(*count);
    return items_.emplace_back(std::string(key), 0).second;
  }

 private:
  std::vector<std::pair<std::string, uint64_t>> items_;
};

struct TreeRecord {
  ArrayCounts arrays;
  int64_t num_nodes = -1;
  // The arrays XGBoost indexes by their values while loading.
  std::vector<int32_t> left, right, parents, split;
};

Status CheckXGBoostTree(const TreeRecord& tree, const std::string& which, XGBoostShape* shape) {
  if (tree.num_nodes <= 0) return InvalidArgument(which + " states no num_nodes");
  const uint64_t n = static_cast<uint64_t>(tree.num_nodes);
  for (const char* key :
       {"left_children", "right_children", "parents", "split_indices", "split_conditions",
        "default_left", "loss_changes", "sum_hessian", "base_weights"}) {
    const uint64_t* count = tree.arrays.Find(key);
    if (count == nullptr || *count != n) {
      return InvalidArgument(which + "'s " + key + " does not have num_nodes (" +
                             std::to_string(n) + ") entries");
    }
  }
  // XGBoost follows these indices while it loads (a parent out of range:
  // SEGV in RegTree::LoadModel), so they are checked before it parses.
  // Split features are checked after the load, against num_feature.
  MM_RETURN_IF_ERROR(CheckIndexedTree(tree.left, tree.right, tree.split, INT32_MAX, which));
  for (size_t i = 0; i < tree.left.size(); ++i) {
    if (tree.left[i] != -1)
      shape->max_split_feature = std::max(shape->max_split_feature, tree.split[i]);
  }
  shape->nodes += n;
  ++shape->trees;
  for (size_t i = 0; i < tree.parents.size(); ++i) {
    const int32_t parent = tree.parents[i];
    if (parent != INT32_MAX && (parent < 0 || static_cast<uint64_t>(parent) >= n)) {
      return InvalidArgument(which + "'s node " + std::to_string(i) + " has parent " +
                             std::to_string(parent) + ": out of range");
    }
  }
  // Categorical splits index into the categories array by values this check
  // does not read: such models are refused until it does.
  for (const char* key :
       {"categories", "categories_nodes", "categories_segments", "categories_sizes"}) {
    const uint64_t* count = tree.arrays.Find(key);
    if (count != nullptr && *count != 0) {
      return InvalidArgument(which +
                             " has categorical splits: not served yet (expected numerical "
                             "splits only)");
    }
  }
  return OkStatus();
}

class Checker {
 public:
  Checker(std::string_view data, XGBoostShape* shape) : data_(data), shape_(shape) {}

  Status Value(int depth, Role role = Role::kNone, TreeRecord* tree = nullptr,
               uint64_t* array_count = nullptr) {
    char marker;
    MM_RETURN_IF_ERROR(Byte(&marker));
    return ValueOfType(marker, depth, role, tree, array_count);
  }

 private:
  Status Fail(const std::string& why) const {
    return InvalidArgument("not valid UBJSON at byte " + std::to_string(pos_) + ": " + why);
  }
  Status Byte(char* out) {
    if (pos_ >= data_.size()) return Fail("the file ends early");
    *out = data_[pos_++];
    return OkStatus();
  }
  Status Skip(uint64_t n) {
    if (n > data_.size() - pos_) return Fail("a length runs past the end of the file");
    pos_ += n;
    return OkStatus();
  }
  // Bytes of a fixed-size value of this type; 0 for others.
  static uint64_t FixedSize(char type) {
    switch (type) {
      case 'i':
      case 'U':
        return 1;
      case 'I':
        return 2;
      case 'l':
      case 'd':
        return 4;
      case 'L':
      case 'D':
        return 8;
      default:
        return 0;
    }
  }
  // A length or count: an integer value with its marker, >= 0.
  Status Length(uint64_t* out) {
    char marker;
    MM_RETURN_IF_ERROR(Byte(&marker));
    const uint64_t size = marker == 'd' || marker == 'D' ? 0 : FixedSize(marker);
    if (size == 0) return Fail("a length is not an integer");
    if (size > data_.size() - pos_) return Fail("the file ends early");
    uint64_t v = 0;
    for (uint64_t i = 0; i < size; ++i) v = (v << 8) | static_cast<uint8_t>(data_[pos_ + i]);
    const bool negative = marker != 'U' && (static_cast<uint8_t>(data_[pos_]) & 0x80) != 0;
    pos_ += size;
    if (negative) return Fail("a negative length");
    *out = v;
    return OkStatus();
  }
  Status ValueOfType(char type, int depth, Role role = Role::kNone, TreeRecord* tree = nullptr,
                     uint64_t* array_count = nullptr) {
    if (const uint64_t size = FixedSize(type); size > 0) return Skip(size);
    switch (type) {
      case 'T':
      case 'F':
      case 'Z':
        return OkStatus();
      case 'S': {
        uint64_t n;
        MM_RETURN_IF_ERROR(Length(&n));
        const size_t start = pos_;
        MM_RETURN_IF_ERROR(Skip(n));
        if (role == Role::kTreeParam && tree != nullptr) {  // num_nodes: "127"
          std::string_view digits = data_.substr(start, n);
          int64_t v = 0;
          if (digits.empty() || digits.size() > 9) return Fail("num_nodes is not a count");
          for (char ch : digits) {
            if (ch < '0' || ch > '9') return Fail("num_nodes is not a count");
            v = v * 10 + (ch - '0');
          }
          tree->num_nodes = v;
        }
        return OkStatus();
      }
      case '[':
      case '{':
        if (depth >= kMaxDepth) return Fail("nested deeper than 64");
        if ((type == '[') != (role == Role::kTrees || array_count != nullptr) &&
            (role == Role::kTrees || role == Role::kTree || role == Role::kTreeParam)) {
          return Fail("the trees are not laid out as XGBoost writes them");
        }
        return Container(type == '{', depth + 1, role, tree, array_count);
      default:
        return Fail(std::string("unexpected marker '") + type + "'");
    }
  }
  Status Key(std::string_view* key) {
    uint64_t n;
    MM_RETURN_IF_ERROR(Length(&n));
    const size_t start = pos_;
    MM_RETURN_IF_ERROR(Skip(n));
    *key = data_.substr(start, n);
    return OkStatus();
  }
  // One element (of an object: one key and value) in a container of `role`.
  Status Element(bool object, char type, int depth, Role role, TreeRecord* tree) {
    Role child = Role::kNone;
    TreeRecord* record = nullptr;
    uint64_t* count = nullptr;
    TreeRecord own;
    if (object) {
      std::string_view key;
      MM_RETURN_IF_ERROR(Key(&key));
      if (role == Role::kNone && key == "trees") child = Role::kTrees;
      if (role == Role::kTree) {
        if (key == "tree_param") {
          child = Role::kTreeParam;
          record = tree;
        } else if (tree->arrays.contains(key)) {
          return Fail("a tree has the key '" + std::string(key) + "' twice");
        } else if (pos_ < data_.size() && (type == '[' || (type == 0 && data_[pos_] == '['))) {
          count = &tree->arrays[key];
          collect_ = key == "left_children"    ? &tree->left
                     : key == "right_children" ? &tree->right
                     : key == "parents"        ? &tree->parents
                     : key == "split_indices"  ? &tree->split
                                               : nullptr;
        }
      }
      if (role == Role::kTreeParam && key == "num_nodes") {
        if (tree->num_nodes >= 0) return Fail("a tree states num_nodes twice");
        child = Role::kTreeParam;
        record = tree;
      }
    } else if (role == Role::kTrees) {
      child = Role::kTree;
      record = &own;
    }
    if (child == Role::kTreeParam && record == nullptr) child = Role::kNone;
    MM_RETURN_IF_ERROR(type != 0 ? ValueOfType(type, depth, child, record, count)
                                 : Value(depth, child, record, count));
    if (child == Role::kTree) MM_RETURN_IF_ERROR(CheckTree(own));
    return OkStatus();
  }
  Status CheckTree(const TreeRecord& tree) {
    return CheckXGBoostTree(tree, "tree " + std::to_string(shape_->trees), shape_)
        .WithContext("at byte " + std::to_string(pos_));
  }
  Status Container(bool object, int depth, Role role, TreeRecord* tree, uint64_t* array_count) {
    std::vector<int32_t>* values = collect_;
    collect_ = nullptr;
    if (values != nullptr) {  // "[$l#<count>" and big-endian int32s, as XGBoost writes
      if (data_.substr(pos_, 3) != "$l#") return Fail("a tree's index array is not int32");
      pos_ += 3;
      uint64_t count;
      MM_RETURN_IF_ERROR(Length(&count));
      if (count > (data_.size() - pos_) / 4) return Fail("a count runs past the end");
      values->resize(count);
      for (uint64_t i = 0; i < count; ++i, pos_ += 4) {
        uint32_t v = 0;
        for (int b = 0; b < 4; ++b) v = (v << 8) | static_cast<uint8_t>(data_[pos_ + b]);
        (*values)[i] = static_cast<int32_t>(v);
      }
      *array_count = count;
      return OkStatus();
    }
    char type = 0;
    bool counted = false;
    uint64_t count = 0;
    if (pos_ < data_.size() && data_[pos_] == '$') {
      ++pos_;
      MM_RETURN_IF_ERROR(Byte(&type));
      if (pos_ >= data_.size() || data_[pos_] != '#') return Fail("a typed container without '#'");
      if (FixedSize(type) == 0 && type != 'S' && type != 'T' && type != 'F' && type != 'Z' &&
          type != '[' && type != '{') {
        return Fail(std::string("a container of unexpected type '") + type + "'");
      }
    }
    if (pos_ < data_.size() && data_[pos_] == '#') {
      ++pos_;
      counted = true;
      MM_RETURN_IF_ERROR(Length(&count));
      // Every element takes at least one byte (a fixed type: its size).
      const uint64_t each = std::max<uint64_t>(1, FixedSize(type)) + (object ? 1 : 0);
      if (count > (data_.size() - pos_) / each) return Fail("a count runs past the end");
    }
    uint64_t elements = 0;
    if (counted && !object && FixedSize(type) > 0) {
      // A typed array of numbers (most of a model's bytes): its size is
      // known, and checked above to fit in what remains.
      MM_RETURN_IF_ERROR(Skip(count * FixedSize(type)));
      elements = count;
    } else if (counted) {
      for (uint64_t i = 0; i < count; ++i) {
        MM_RETURN_IF_ERROR(Element(object, type, depth, role, tree));
      }
      elements = count;
    } else {
      const char end = object ? '}' : ']';
      while (true) {
        if (pos_ >= data_.size()) return Fail("a container is not closed");
        if (data_[pos_] == end) {
          ++pos_;
          break;
        }
        MM_RETURN_IF_ERROR(Element(object, 0, depth, role, tree));
        ++elements;
      }
    }
    if (array_count != nullptr) *array_count = elements;
    return OkStatus();
  }

  std::string_view data_;
  size_t pos_ = 0;
  XGBoostShape* shape_;
  std::vector<int32_t>* collect_ = nullptr;  // the next container's values go here
};

}  // namespace

Status CheckUbjson(std::string_view data, XGBoostShape* shape) {
  *shape = {};
  return Checker(data, shape).Value(0);
}

namespace {

// Every "trees" array of the JSON document, as TreeRecords.
Status WalkJson(simdjson::dom::element value, int depth, XGBoostShape* shape) {
  if (depth > kMaxDepth) return InvalidArgument("the JSON is nested deeper than 64");
  if (value.is_array()) {
    for (auto element : value.get_array()) MM_RETURN_IF_ERROR(WalkJson(element, depth + 1, shape));
    return OkStatus();
  }
  if (!value.is_object()) return OkStatus();
  for (auto [key, field] : value.get_object()) {
    if (key != "trees") {
      MM_RETURN_IF_ERROR(WalkJson(field, depth + 1, shape));
      continue;
    }
    if (!field.is_array()) return InvalidArgument("'trees' is not an array");
    for (auto tree : field.get_array()) {
      if (!tree.is_object()) return InvalidArgument("a tree is not an object");
      TreeRecord record;
      for (auto [tkey, tvalue] : tree.get_object()) {
        const std::string name(tkey);
        if (record.arrays.contains(name) || (name == "tree_param" && record.num_nodes >= 0)) {
          return InvalidArgument("a tree has the key '" + name + "' twice");
        }
        if (name == "tree_param") {
          std::string_view n;
          if (!tvalue.is_object() || tvalue["num_nodes"].get_string().get(n) != simdjson::SUCCESS ||
              n.empty() || n.size() > 9 || n.find_first_not_of("0123456789") != n.npos) {
            return InvalidArgument("a tree's tree_param.num_nodes is not a count");
          }
          record.num_nodes = std::stoll(std::string(n));
          continue;
        }
        if (!tvalue.is_array()) continue;
        simdjson::dom::array array = tvalue.get_array();
        record.arrays[name] = array.size();
        std::vector<int32_t>* values = name == "left_children"    ? &record.left
                                       : name == "right_children" ? &record.right
                                       : name == "parents"        ? &record.parents
                                       : name == "split_indices"  ? &record.split
                                                                  : nullptr;
        if (values == nullptr) continue;
        for (auto v : array) {
          int64_t i;
          if (v.get_int64().get(i) != simdjson::SUCCESS || i < INT32_MIN || i > INT32_MAX) {
            return InvalidArgument("a tree's " + name + " holds a value that is not an int32");
          }
          values->push_back(static_cast<int32_t>(i));
        }
      }
      MM_RETURN_IF_ERROR(CheckXGBoostTree(record, "tree " + std::to_string(shape->trees), shape));
    }
  }
  return OkStatus();
}

}  // namespace

Status CheckXGBoostJson(std::string_view data, XGBoostShape* shape) {
  *shape = {};
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (auto error = parser.parse(data.data(), data.size()).get(root); error != simdjson::SUCCESS) {
    return InvalidArgument(std::string("not valid JSON: ") + simdjson::error_message(error));
  }
  return WalkJson(root, 0, shape);
}

}  // namespace mm::fil
