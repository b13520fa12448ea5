#include "backends/fil/treelite_check.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <string>

namespace mm::fil {
namespace {

static_assert(std::endian::native == std::endian::little,
              "Treelite's formats are little-endian; so is every host we build for");

// Reads a file front to back, saying where it is in every refusal:
// "tree 3, array 'cleft' claims ... at byte 1234, but only 5678 bytes remain".
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}

  size_t offset() const { return pos_; }
  size_t remaining() const { return data_.size() - pos_; }
  void set_where(std::string where) { where_ = std::move(where); }

  template <typename T>
  Status Scalar(const char* name, T* out) {
    if (remaining() < sizeof(T)) {
      return Invalid("field '" + std::string(name) + "' needs " + std::to_string(sizeof(T)) +
                     " bytes at byte " + std::to_string(pos_) + ", but only " +
                     std::to_string(remaining()) + " remain: the file is cut short");
    }
    std::memcpy(out, data_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return OkStatus();
  }

  // `count` items of `itemsize` bytes, passed over.
  Status Skip(const char* name, uint64_t count, size_t itemsize, size_t at) {
    if (count > remaining() / itemsize) {
      return Invalid(
          "'" + std::string(name) + "' claims " + std::to_string(count) +
          (itemsize == 1 ? " bytes" : " elements of " + std::to_string(itemsize) + " bytes") +
          " at byte " + std::to_string(at) + ", but only " + std::to_string(remaining()) +
          " bytes remain");
    }
    pos_ += static_cast<size_t>(count) * itemsize;
    return OkStatus();
  }

  // Treelite's array or string: a uint64 count, then the items. `contents`,
  // when given, receives the items' bytes.
  Status Array(const char* name, size_t itemsize, uint64_t* count,
               std::string_view* contents = nullptr) {
    const size_t at = pos_;
    MM_RETURN_IF_ERROR(Scalar(name, count));
    const size_t begin = pos_;
    MM_RETURN_IF_ERROR(Skip(name, *count, itemsize, at));
    if (contents != nullptr) *contents = data_.substr(begin, pos_ - begin);
    return OkStatus();
  }

  // A refusal of the field `name` read at byte `at`.
  Status Bad(const char* name, size_t at, const std::string& why) const {
    return Invalid("'" + std::string(name) + "' at byte " + std::to_string(at) + " " + why);
  }

  Status Invalid(const std::string& what) const { return InvalidArgument(where_ + ", " + what); }

 private:
  std::string_view data_;
  size_t pos_ = 0;
  std::string where_ = "header";
};

// Treelite's TypeInfo (include/treelite/enum/typeinfo.h): kFloat32 = 2,
// kFloat64 = 3; v4 allows only float/float and double/double.
constexpr uint8_t kFloat32 = 2;
constexpr uint8_t kFloat64 = 3;

// The fewest bytes a v4 tree takes: num_nodes, has_categorical_split, 21
// array counts and the two optional-field counts.
constexpr uint64_t kMinTreeBytes = 4 + 1 + 21 * 8 + 4 + 4;

// Extension slots (include/treelite/detail/serializer.h,
// SkipOptionalFieldInStream): a count, then per field its name (a string),
// uint64 item size, uint64 item count and the items.
Status SkipOptionalFields(Reader& r, const char* slot) {
  int32_t count = 0;
  const size_t at = r.offset();
  MM_RETURN_IF_ERROR(r.Scalar(slot, &count));
  if (count < 0) return r.Bad(slot, at, "is " + std::to_string(count) + ": expected >= 0");
  for (int32_t i = 0; i < count; ++i) {
    uint64_t name_length = 0, itemsize = 0, items = 0;
    MM_RETURN_IF_ERROR(r.Array("optional field name", 1, &name_length));
    const size_t items_at = r.offset();
    MM_RETURN_IF_ERROR(r.Scalar("optional field item size", &itemsize));
    MM_RETURN_IF_ERROR(r.Scalar("optional field item count", &items));
    if (itemsize == 0) continue;  // Treelite skips 0 bytes
    MM_RETURN_IF_ERROR(
        r.Skip("optional field", items, static_cast<size_t>(itemsize), items_at + 8));
  }
  return OkStatus();
}

// One array whose count must be `expected` (or, with `or_zero`, 0).
Status ArrayOf(Reader& r, const char* name, size_t itemsize, uint64_t expected,
               bool or_zero = false, std::string_view* contents = nullptr) {
  const size_t at = r.offset();
  uint64_t count = 0;
  MM_RETURN_IF_ERROR(r.Array(name, itemsize, &count, contents));
  if (count != expected && !(or_zero && count == 0)) {
    return r.Bad(name, at,
                 "has " + std::to_string(count) + " elements: expected " +
                     (or_zero ? "0 or " : "") + std::to_string(expected));
  }
  return OkStatus();
}

// One tree (v4.rst, "Tree 0"; Deserializer::DeserializeTree).
Status CheckTree(Reader& r, size_t threshold_size, size_t leaf_size) {
  int32_t num_nodes = 0;
  const size_t at = r.offset();
  MM_RETURN_IF_ERROR(r.Scalar("num_nodes", &num_nodes));
  if (num_nodes < 1) {
    return r.Bad("num_nodes", at, "is " + std::to_string(num_nodes) + ": expected >= 1");
  }
  const uint64_t n = static_cast<uint64_t>(num_nodes);
  uint8_t has_categorical_split = 0;
  MM_RETURN_IF_ERROR(r.Scalar("has_categorical_split", &has_categorical_split));
  enum Kind { kPerNode, kAny, kStatistic };
  struct Field {
    const char* name;
    size_t itemsize;
    Kind kind;
  };
  const Field fields[] = {{"node_type", 1, kPerNode},
                          {"cleft", 4, kPerNode},
                          {"cright", 4, kPerNode},
                          {"split_index", 4, kPerNode},
                          {"default_left", 1, kPerNode},
                          {"leaf_value", leaf_size, kPerNode},
                          {"threshold", threshold_size, kPerNode},
                          {"cmp", 1, kPerNode},
                          {"category_list_right_child", 1, kPerNode},
                          {"leaf_vector", leaf_size, kAny},
                          {"leaf_vector_begin", 8, kPerNode},
                          {"leaf_vector_end", 8, kPerNode},
                          {"category_list", 4, kAny},
                          {"category_list_begin", 8, kPerNode},
                          {"category_list_end", 8, kPerNode},
                          {"data_count", 8, kStatistic},
                          {"data_count_present", 1, kStatistic},
                          {"sum_hess", 8, kStatistic},
                          {"sum_hess_present", 1, kStatistic},
                          {"gain", 8, kStatistic},
                          {"gain_present", 1, kStatistic}};
  for (const Field& field : fields) {
    if (field.kind == kAny) {
      uint64_t count = 0;
      MM_RETURN_IF_ERROR(r.Array(field.name, field.itemsize, &count));
    } else {
      MM_RETURN_IF_ERROR(ArrayOf(r, field.name, field.itemsize, n, field.kind == kStatistic));
    }
  }
  MM_RETURN_IF_ERROR(SkipOptionalFields(r, "num_opt_field_per_tree"));
  return SkipOptionalFields(r, "num_opt_field_per_node");
}

size_t TypeSize(uint8_t type) { return type == kFloat64 ? 8 : 4; }

}  // namespace

Status CheckTreeliteCheckpoint(std::string_view data) {
  Reader r(data);
  int32_t major = 0, minor = 0, patch = 0;
  MM_RETURN_IF_ERROR(r.Scalar("major_ver", &major));
  MM_RETURN_IF_ERROR(r.Scalar("minor_ver", &minor));
  MM_RETURN_IF_ERROR(r.Scalar("patch_ver", &patch));
  if (major != 4) {
    return r.Bad("major_ver", 0,
                 "says Treelite " + std::to_string(major) + "." + std::to_string(minor) + "." +
                     std::to_string(patch) + ": expected a Treelite 4.x checkpoint");
  }
  uint8_t threshold_type = 0, leaf_type = 0;
  const size_t types_at = r.offset();
  MM_RETURN_IF_ERROR(r.Scalar("threshold_type", &threshold_type));
  MM_RETURN_IF_ERROR(r.Scalar("leaf_output_type", &leaf_type));
  if (threshold_type != leaf_type || (threshold_type != kFloat32 && threshold_type != kFloat64)) {
    return r.Bad("threshold_type", types_at,
                 "and leaf_output_type are " + std::to_string(threshold_type) + " and " +
                     std::to_string(leaf_type) + ": expected both 2 (float32) or both 3 (float64)");
  }
  uint64_t num_tree = 0;
  const size_t num_tree_at = r.offset();
  MM_RETURN_IF_ERROR(r.Scalar("num_tree", &num_tree));
  int32_t num_feature = 0, num_target = 0;
  uint8_t task_type = 0, average_tree_output = 0;
  MM_RETURN_IF_ERROR(r.Scalar("num_feature", &num_feature));
  MM_RETURN_IF_ERROR(r.Scalar("task_type", &task_type));
  MM_RETURN_IF_ERROR(r.Scalar("average_tree_output", &average_tree_output));
  const size_t num_target_at = r.offset();
  MM_RETURN_IF_ERROR(r.Scalar("num_target", &num_target));
  if (num_target < 1) {
    return r.Bad("num_target", num_target_at,
                 "is " + std::to_string(num_target) + ": expected >= 1");
  }
  std::string_view classes, shape;
  const size_t classes_at = r.offset(), shape_at = classes_at + 8 + 4 * uint64_t(num_target);
  MM_RETURN_IF_ERROR(
      ArrayOf(r, "num_class", 4, static_cast<uint64_t>(num_target), false, &classes));
  MM_RETURN_IF_ERROR(ArrayOf(r, "leaf_vector_shape", 4, 2, false, &shape));
  // These values size what GTIL allocates per row. Each leaf vector is in the
  // file, so its shape is bounded by the file's size; each target and class
  // has a tree, or a place in the leaf vectors.
  int32_t vector_shape[2];
  std::memcpy(vector_shape, shape.data(), sizeof(vector_shape));
  const int64_t most_values = static_cast<int64_t>(data.size() / 4);
  for (int32_t dim : vector_shape) {
    if (dim < 1 || dim > most_values) {
      return r.Bad("leaf_vector_shape", shape_at,
                   "has a dimension of " + std::to_string(dim) + ": expected 1 to " +
                       std::to_string(most_values) + " (the values the file could hold)");
    }
  }
  const int64_t most_targets = std::max<int64_t>(
      vector_shape[0], static_cast<int64_t>(std::min<uint64_t>(num_tree, INT32_MAX)));
  const int64_t most_classes = std::max<int64_t>(
      vector_shape[1], static_cast<int64_t>(std::min<uint64_t>(num_tree, INT32_MAX)));
  if (num_target > most_targets) {
    return r.Bad("num_target", num_target_at,
                 "is " + std::to_string(num_target) + ": expected at most " +
                     std::to_string(most_targets) + " (a tree or a leaf-vector row per target)");
  }
  for (int32_t i = 0; i < num_target; ++i) {
    int32_t k = 0;
    std::memcpy(&k, classes.data() + 4 * i, 4);
    if (k < 1 || k > most_classes) {
      return r.Bad("num_class", classes_at,
                   "[" + std::to_string(i) + "] is " + std::to_string(k) + ": expected 1 to " +
                       std::to_string(most_classes) + " (a tree or a leaf-vector entry per class)");
    }
  }
  // Treelite sizes these by their own counts; num_tree must agree.
  if (num_tree > r.remaining() / 4) {
    return r.Bad("num_tree", num_tree_at,
                 "claims " + std::to_string(num_tree) + " trees, but only " +
                     std::to_string(r.remaining()) + " bytes remain");
  }
  MM_RETURN_IF_ERROR(ArrayOf(r, "target_id", 4, num_tree));
  MM_RETURN_IF_ERROR(ArrayOf(r, "class_id", 4, num_tree));
  uint64_t length = 0;
  MM_RETURN_IF_ERROR(r.Array("postprocessor", 1, &length));
  float sigmoid_alpha = 0, ratio_c = 0;
  MM_RETURN_IF_ERROR(r.Scalar("sigmoid_alpha", &sigmoid_alpha));
  MM_RETURN_IF_ERROR(r.Scalar("ratio_c", &ratio_c));
  MM_RETURN_IF_ERROR(r.Array("base_scores", 8, &length));
  MM_RETURN_IF_ERROR(r.Array("attributes", 1, &length));
  MM_RETURN_IF_ERROR(SkipOptionalFields(r, "num_opt_field_per_model"));
  if (num_tree > r.remaining() / kMinTreeBytes) {
    return r.Bad("num_tree", num_tree_at,
                 "claims " + std::to_string(num_tree) + " trees, but the " +
                     std::to_string(r.remaining()) + " bytes after the header hold at most " +
                     std::to_string(r.remaining() / kMinTreeBytes));
  }
  for (uint64_t t = 0; t < num_tree; ++t) {
    r.set_where("tree " + std::to_string(t));
    MM_RETURN_IF_ERROR(CheckTree(r, TypeSize(threshold_type), TypeSize(leaf_type)));
  }
  if (r.remaining() != 0) {
    r.set_where("after tree " + std::to_string(num_tree == 0 ? 0 : num_tree - 1));
    return r.Invalid(std::to_string(r.remaining()) + " bytes at byte " +
                     std::to_string(r.offset()) + ": expected the file to end there");
  }
  return OkStatus();
}

// src/model_loader/xgboost_legacy.cc (ParseStream, XGBTree::Load): the
// structs it reads whole are LearnerModelParam (136 bytes), GBTreeModelParam
// (160), TreeParam (148), and per node a Node (20) and a NodeStat (16).
Status CheckXGBoostLegacyBinary(std::string_view data) {
  Reader r(data);
  if (data.starts_with("bs64")) {
    return r.Invalid("the file is base64 ('bs64'): expected XGBoost's binary format");
  }
  uint32_t magic = 0;
  if (data.starts_with("binf")) MM_RETURN_IF_ERROR(r.Scalar("binf", &magic));
  float base_score = 0;
  uint32_t num_feature = 0, major = 0, minor = 0, num_target = 0;
  int32_t num_class = 0, extra_attributes = 0, eval_metrics = 0;
  MM_RETURN_IF_ERROR(r.Scalar("base_score", &base_score));
  MM_RETURN_IF_ERROR(r.Scalar("num_feature", &num_feature));
  MM_RETURN_IF_ERROR(r.Scalar("num_class", &num_class));
  MM_RETURN_IF_ERROR(r.Scalar("contain_extra_attrs", &extra_attributes));
  MM_RETURN_IF_ERROR(r.Scalar("contain_eval_metrics", &eval_metrics));
  MM_RETURN_IF_ERROR(r.Scalar("major_version", &major));
  MM_RETURN_IF_ERROR(r.Scalar("minor_version", &minor));
  MM_RETURN_IF_ERROR(r.Scalar("num_target", &num_target));
  MM_RETURN_IF_ERROR(r.Skip("LearnerModelParam padding", 26, 4, r.offset()));
  uint64_t length = 0;
  std::string_view booster;
  MM_RETURN_IF_ERROR(r.Array("objective name", 1, &length));
  const size_t booster_at = r.offset();
  MM_RETURN_IF_ERROR(r.Array("booster name", 1, &length, &booster));
  if (booster != "gbtree" && booster != "dart") {
    return r.Bad("booster name", booster_at, "is not 'gbtree' or 'dart'");
  }
  r.set_where("gbtree parameters");
  int32_t num_trees = 0;
  const size_t num_trees_at = r.offset();
  MM_RETURN_IF_ERROR(r.Scalar("num_trees", &num_trees));
  MM_RETURN_IF_ERROR(r.Skip("GBTreeModelParam", 156, 1, r.offset()));
  constexpr uint64_t kMinTreeBytes = 148 + 20 + 16;
  if (num_trees < 0 || static_cast<uint64_t>(num_trees) > r.remaining() / kMinTreeBytes) {
    return r.Bad("num_trees", num_trees_at,
                 "claims " + std::to_string(num_trees) + " trees, but the " +
                     std::to_string(r.remaining()) + " bytes that remain hold at most " +
                     std::to_string(r.remaining() / kMinTreeBytes));
  }
  // Treelite sizes its per-class and per-target vectors by these values
  // (num_target x num_class base scores); a real model has a tree for each.
  const int64_t most = std::max<int64_t>(num_trees, 1);
  if (num_class > most || static_cast<int64_t>(num_target) > most) {
    r.set_where("learner parameters");
    return r.Invalid("num_class " + std::to_string(num_class) + " and num_target " +
                     std::to_string(num_target) + ": expected at most " + std::to_string(most) +
                     " each (a tree per class or target)");
  }
  for (int32_t t = 0; t < num_trees; ++t) {
    r.set_where("tree " + std::to_string(t));
    int32_t num_roots = 0, num_nodes = 0, fields[4] = {};
    MM_RETURN_IF_ERROR(r.Scalar("num_roots", &num_roots));
    const size_t num_nodes_at = r.offset();
    MM_RETURN_IF_ERROR(r.Scalar("num_nodes", &num_nodes));
    for (int32_t& field : fields) MM_RETURN_IF_ERROR(r.Scalar("TreeParam", &field));
    const int32_t size_leaf_vector = fields[3];
    MM_RETURN_IF_ERROR(r.Skip("TreeParam", 31, 4, r.offset()));
    if (num_nodes < 1) {
      return r.Bad("num_nodes", num_nodes_at,
                   "is " + std::to_string(num_nodes) + ": expected >= 1");
    }
    MM_RETURN_IF_ERROR(r.Skip("nodes", static_cast<uint64_t>(num_nodes), 20 + 16, r.offset()));
    if (size_leaf_vector != 0 && major < 2) {
      MM_RETURN_IF_ERROR(r.Array("leaf_vector", 4, &length));
    }
  }
  r.set_where("after the trees");
  MM_RETURN_IF_ERROR(r.Skip("tree_info", static_cast<uint64_t>(num_trees), 4, r.offset()));
  if (booster == "dart") {
    const size_t at = r.offset();
    uint64_t weights = 0;
    MM_RETURN_IF_ERROR(r.Array("weight_drop", 4, &weights));
    if (weights != static_cast<uint64_t>(num_trees)) {
      return r.Bad("weight_drop", at,
                   "has " + std::to_string(weights) + " weights: expected one per tree (" +
                       std::to_string(num_trees) + ")");
    }
  }
  return OkStatus();
}

}  // namespace mm::fil
