// treelite_checkpoint models (scikit-learn forests, converted by
// scripts/ with treelite.sklearn) and XGBoost's legacy binary format, run by
// Treelite's GTIL.
#include <algorithm>
#include <cstring>
#include <span>
#include <utility>
#include <vector>

#include "backends/fil/engines.h"
#include "backends/fil/fil_output.h"
#include "backends/fil/tree_check.h"

namespace mm::fil {
namespace {

// The footprint (TreeModel::info().bytes) of a loaded Treelite model: the
// bytes of its arrays, as Treelite serializes them (the frames of
// TreeliteSerializeModelToPyBuffer point at the model's own arrays, so this
// is what it holds, without a copy), plus per tree the Tree object and the
// headers of its ~20 arrays, and per model its header and GTIL configuration,
// both fitted to the heap that loads keep (tree_model_test.cc, Footprint*,
// checks the total within 25%).
constexpr uint64_t kModelBytes = 1024;
constexpr uint64_t kTreeBytes = 1000;

// treelite::TaskType (include/treelite/enum/task_type.h).
constexpr uint8_t kTaskBinaryClf = 0;
constexpr uint8_t kTaskMultiClf = 2;

struct ModelDeleter {
  const TreeliteLibrary* library;
  void operator()(void* handle) const { library->free_model(handle); }
};
using ModelHandle = std::unique_ptr<void, ModelDeleter>;
struct ConfigDeleter {
  const TreeliteLibrary* library;
  void operator()(void* handle) const { library->gtil_delete_config(handle); }
};
using ConfigHandle = std::unique_ptr<void, ConfigDeleter>;

Status LibraryError(const TreeliteLibrary& library, const std::string& what) {
  return Internal("Treelite " + what + ": " + LastError(library.get_last_error));
}

class TreeliteModel final : public TreeModel {
 public:
  TreeliteModel(const TreeliteLibrary& library, ModelHandle model, ConfigHandle config, bool fp64,
                ScoreLayout layout, TreeModelInfo info)
      : library_(library),
        model_(std::move(model)),
        config_(std::move(config)),
        fp64_(fp64),
        layout_(layout),
        info_(std::move(info)) {}

  const TreeModelInfo& info() const override { return info_; }
  StatusOr<int64_t> OutputColumns(const OutputRule& rule) const override {
    return OutputColumnsFor(layout_, rule, info_.description.c_str());
  }
  Status Predict(const float* rows, int64_t n_rows, const OutputRule& rule,
                 float* out) const override {
    return fp64_ ? Run<double>(rows, n_rows, rule, out) : Run<float>(rows, n_rows, rule, out);
  }
  Status PredictFP64(const double* rows, int64_t n_rows, const OutputRule& rule,
                     float* out) const override {
    return fp64_ ? Run<double>(rows, n_rows, rule, out) : Run<float>(rows, n_rows, rule, out);
  }

 private:
  struct InputTag {};
  struct OutputTag {};
  struct ScoreTag {};

  // GTIL takes rows of the model's own type (treelite.gtil.predict converts
  // them the same way) and answers in it.
  template <typename ModelT, typename In>
  Status Run(const In* rows, int64_t n_rows, const OutputRule& rule, float* out) const {
    if (n_rows == 0) return OkStatus();
    PrepareThisThread(library_);
    const ModelT* input;
    if constexpr (std::is_same_v<ModelT, In>) {
      input = rows;
    } else {
      const size_t n = static_cast<size_t>(n_rows * info_.num_features);
      ModelT* converted = ThreadScratch<ModelT, InputTag>(n);
      for (size_t i = 0; i < n; ++i) converted[i] = static_cast<ModelT>(rows[i]);
      input = converted;
    }
    const int64_t k = layout_.score_columns;
    const size_t n_scores = static_cast<size_t>(n_rows * k);
    const bool in_place = k == 1 || !(rule.output_class && !rule.predict_proba);
    float* scores = in_place ? out : ThreadScratch<float, ScoreTag>(n_scores);
    ModelT* output;
    if constexpr (std::is_same_v<ModelT, float>) {
      output = scores;
    } else {
      output = ThreadScratch<ModelT, OutputTag>(n_scores);
    }
    if (library_.gtil_predict(model_.get(), input, fp64_ ? "float64" : "float32",
                              static_cast<uint64_t>(n_rows), output, config_.get()) != 0) {
      return LibraryError(library_, "prediction failed");
    }
    if constexpr (!std::is_same_v<ModelT, float>) {
      for (size_t i = 0; i < n_scores; ++i) scores[i] = static_cast<float>(output[i]);
    }
    ApplyOutputRule(scores, n_rows, layout_, rule, out);
    return OkStatus();
  }

  const TreeliteLibrary& library_;
  ModelHandle model_;
  ConfigHandle config_;
  const bool fp64_;
  const ScoreLayout layout_;
  const TreeModelInfo info_;
};

// A header field of the model (TreeliteGetHeaderField): `count` items of
// `itemsize` bytes, copied into `out`.
Status HeaderField(const TreeliteLibrary& library, void* model, const char* name, size_t itemsize,
                   size_t max_items, void* out, size_t* count) {
  capi::TreelitePyBufferFrame frame{};
  if (library.get_header_field(model, name, &frame) != 0) {
    return LibraryError(library, std::string("could not read the model's ") + name);
  }
  if (frame.itemsize != itemsize || frame.nitem == 0 || frame.nitem > max_items ||
      frame.buf == nullptr) {
    return InvalidArgument(std::string("the model's ") + name + " has " +
                           std::to_string(frame.nitem) + " items of " +
                           std::to_string(frame.itemsize) + " bytes: expected 1 to " +
                           std::to_string(max_items) + " of " + std::to_string(itemsize));
  }
  std::memcpy(out, frame.buf, frame.nitem * itemsize);
  *count = frame.nitem;
  return OkStatus();
}

StatusOr<std::string> TypeName(const TreeliteLibrary& library, void* model, bool output) {
  const char* type = nullptr;
  if ((output ? library.get_output_type : library.get_input_type)(model, &type) != 0 ||
      type == nullptr) {
    return LibraryError(library, "could not give the model's value type");
  }
  return std::string(type);
}

// A field's buffer, straight from the model (no copy).
struct Field {
  const void* data;
  size_t itemsize;
  size_t size;
  template <typename T>
  T at(size_t i) const {
    return static_cast<const T*>(data)[i];
  }
};

StatusOr<Field> GetField(const TreeliteLibrary& library, void* model, int64_t tree,
                         const char* name, std::initializer_list<size_t> itemsizes) {
  capi::TreelitePyBufferFrame frame{};
  const int rc = tree < 0
                     ? library.get_header_field(model, name, &frame)
                     : library.get_tree_field(model, static_cast<uint64_t>(tree), name, &frame);
  const std::string where = tree < 0 ? "the model's " : "tree " + std::to_string(tree) + "'s ";
  if (rc != 0) return LibraryError(library, "could not read " + where + name);
  if (std::find(itemsizes.begin(), itemsizes.end(), frame.itemsize) == itemsizes.end() ||
      (frame.buf == nullptr && frame.nitem != 0)) {
    return InvalidArgument(where + name + " has items of " + std::to_string(frame.itemsize) +
                           " bytes: not what Treelite writes");
  }
  return Field{frame.buf, frame.itemsize, frame.nitem};
}

// What GTIL will walk and index, checked (Treelite's deserializer does not):
// each tree's structure (tree_check.h), its per-node arrays all of one
// length, its leaf vectors and category lists inside their arrays, every leaf
// holding a whole leaf vector when the model has them, and each tree's
// target and class ids in range (seen: a flipped byte -> SEGV in GTIL).
Status CheckTrees(const TreeliteLibrary& library, void* model, size_t num_trees,
                  int64_t num_features, int32_t num_class) {
  MM_ASSIGN_OR_RETURN(Field shape, GetField(library, model, -1, "leaf_vector_shape", {4}));
  if (shape.size != 2 || shape.at<int32_t>(0) != 1 || shape.at<int32_t>(1) < 1 ||
      shape.at<int32_t>(1) > num_class) {
    return InvalidArgument("the model's leaf_vector_shape is not [1, 1.." +
                           std::to_string(num_class) + "]");
  }
  const uint64_t vector_length = static_cast<uint64_t>(shape.at<int32_t>(1));
  MM_ASSIGN_OR_RETURN(Field target_id, GetField(library, model, -1, "target_id", {4}));
  MM_ASSIGN_OR_RETURN(Field class_id, GetField(library, model, -1, "class_id", {4}));
  if (target_id.size != num_trees || class_id.size != num_trees) {
    return InvalidArgument("the model's target_id and class_id do not have one entry per tree");
  }
  for (size_t t = 0; t < num_trees; ++t) {
    const int32_t target = target_id.at<int32_t>(t), klass = class_id.at<int32_t>(t);
    if (target < -1 || target > 0 || klass < -1 || klass >= num_class) {
      return InvalidArgument("tree " + std::to_string(t) + " is for target " +
                             std::to_string(target) + ", class " + std::to_string(klass) +
                             ": out of range");
    }
  }
  for (uint64_t t = 0; t < num_trees; ++t) {
    const int64_t tree = static_cast<int64_t>(t);
    MM_ASSIGN_OR_RETURN(Field left, GetField(library, model, tree, "cleft", {4}));
    const size_t n = left.size;
    MM_ASSIGN_OR_RETURN(Field right, GetField(library, model, tree, "cright", {4}));
    MM_ASSIGN_OR_RETURN(Field split, GetField(library, model, tree, "split_index", {4}));
    const std::string what = "tree " + std::to_string(t);
    for (auto [name, sizes] : std::initializer_list<std::pair<const char*, std::vector<size_t>>>{
             {"node_type", {1}},
             {"default_left", {1}},
             {"cmp", {1}},
             {"category_list_right_child", {1}},
             {"leaf_value", {4, 8}},
             {"threshold", {4, 8}},
             {"leaf_vector_begin", {8}},
             {"leaf_vector_end", {8}},
             {"category_list_begin", {8}},
             {"category_list_end", {8}}}) {
      capi::TreelitePyBufferFrame frame{};
      if (library.get_tree_field(model, t, name, &frame) != 0) {
        return LibraryError(library, "could not read " + what + "'s " + name);
      }
      if (frame.nitem != n ||
          std::find(sizes.begin(), sizes.end(), frame.itemsize) == sizes.end()) {
        return InvalidArgument(what + "'s " + name + " has " + std::to_string(frame.nitem) +
                               " items: expected one per node (" + std::to_string(n) + ")");
      }
    }
    MM_RETURN_IF_ERROR(CheckIndexedTree(
        std::span<const int32_t>(static_cast<const int32_t*>(left.data), n),
        std::span<const int32_t>(static_cast<const int32_t*>(right.data), right.size),
        std::span<const int32_t>(static_cast<const int32_t*>(split.data), split.size), num_features,
        what));
    MM_ASSIGN_OR_RETURN(Field vectors, GetField(library, model, tree, "leaf_vector", {4, 8}));
    MM_ASSIGN_OR_RETURN(Field vbegin, GetField(library, model, tree, "leaf_vector_begin", {8}));
    MM_ASSIGN_OR_RETURN(Field vend, GetField(library, model, tree, "leaf_vector_end", {8}));
    MM_ASSIGN_OR_RETURN(Field categories, GetField(library, model, tree, "category_list", {4}));
    MM_ASSIGN_OR_RETURN(Field cbegin, GetField(library, model, tree, "category_list_begin", {8}));
    MM_ASSIGN_OR_RETURN(Field cend, GetField(library, model, tree, "category_list_end", {8}));
    for (size_t i = 0; i < n; ++i) {
      const uint64_t vb = vbegin.at<uint64_t>(i), ve = vend.at<uint64_t>(i);
      const uint64_t cb = cbegin.at<uint64_t>(i), ce = cend.at<uint64_t>(i);
      const bool leaf = left.at<int32_t>(i) == -1;
      if (vb > ve || ve > vectors.size || (ve > vb && ve - vb != vector_length) ||
          (leaf && vector_length > 1 && ve - vb != vector_length)) {
        return InvalidArgument(what + " node " + std::to_string(i) +
                               "'s leaf vector is out of range or not of length " +
                               std::to_string(vector_length));
      }
      if (cb > ce || ce > categories.size) {
        return InvalidArgument(what + " node " + std::to_string(i) +
                               "'s category list is out of range");
      }
    }
  }
  return OkStatus();
}

}  // namespace

StatusOr<std::unique_ptr<TreeModel>> LoadTreeliteModel(const TreeliteLibrary& library,
                                                       ModelType type, const std::string& bytes,
                                                       const std::string& file) {
  PrepareThisThread(library);
  void* handle = nullptr;
  const bool legacy = type == ModelType::kXGBoost;
  int rc = legacy ? library.load_xgboost_legacy_binary(bytes.data(), bytes.size(), "{}", &handle)
                  : library.deserialize_from_bytes(bytes.data(), bytes.size(), &handle);
  if (rc != 0) {
    return InvalidArgument("Treelite could not load " + file + " as " +
                           (legacy ? "an XGBoost legacy binary model" : "a Treelite checkpoint") +
                           ": " + LastError(library.get_last_error));
  }
  ModelHandle model(handle, ModelDeleter{&library});

  int32_t num_target = 0;
  size_t count = 0;
  MM_RETURN_IF_ERROR(
      HeaderField(library, handle, "num_target", 4, 1, &num_target, &count).WithContext(file));
  if (num_target != 1) {
    return InvalidArgument(file + ": the model has " + std::to_string(num_target) +
                           " targets: expected one (Multi-target model not supported)");
  }
  int32_t num_class = 0;
  MM_RETURN_IF_ERROR(
      HeaderField(library, handle, "num_class", 4, 1, &num_class, &count).WithContext(file));
  uint8_t task = 0;
  MM_RETURN_IF_ERROR(
      HeaderField(library, handle, "task_type", 1, 1, &task, &count).WithContext(file));
  int num_features = 0;
  size_t num_trees = 0;
  if (library.query_num_feature(handle, &num_features) != 0 ||
      library.query_num_tree(handle, &num_trees) != 0) {
    return LibraryError(library, "could not describe " + file);
  }
  if (num_features <= 0 || num_features > (1 << 24)) {
    return InvalidArgument(file + ": the model takes " + std::to_string(num_features) +
                           " features: expected 1 to 16777216");
  }
  if (num_trees == 0) return InvalidArgument(file + " has no trees: expected a trained model");
  MM_RETURN_IF_ERROR(
      CheckTrees(library, handle, num_trees, num_features, num_class).WithContext(file));
  MM_ASSIGN_OR_RETURN(std::string input_type, TypeName(library, handle, false));
  MM_ASSIGN_OR_RETURN(std::string output_type, TypeName(library, handle, true));
  if (input_type != output_type || (input_type != "float32" && input_type != "float64")) {
    return InvalidArgument(file + ": the model's thresholds are " + input_type +
                           " and its leaves " + output_type +
                           ": expected both float32 or both float64");
  }

  void* config_handle = nullptr;
  if (library.gtil_parse_config("{\"predict_type\": \"default\", \"nthread\": 1}",
                                &config_handle) != 0) {
    return LibraryError(library, "refused its prediction configuration");
  }
  ConfigHandle config(config_handle, ConfigDeleter{&library});
  const uint64_t* shape = nullptr;
  uint64_t dims = 0;
  if (library.gtil_get_output_shape(handle, 1, config_handle, &shape, &dims) != 0) {
    return LibraryError(library, "could not give the output shape of " + file);
  }
  int64_t per_row = 1;
  for (uint64_t d = 1; d < dims; ++d) per_row *= static_cast<int64_t>(shape[d]);

  ScoreLayout layout;
  if (task == kTaskMultiClf && num_class >= 2) {
    layout = {num_class, num_class};
  } else if (task == kTaskBinaryClf && num_class == 1) {
    layout = {2, 1};
  }
  if (per_row != layout.score_columns) {
    return InvalidArgument(file + ": Treelite predicts " + std::to_string(per_row) +
                           " values per row for a model of " + std::to_string(num_class) +
                           " classes: expected " + std::to_string(layout.score_columns));
  }

  // Footprint: the model's arrays, as Treelite's serializer sees them.
  capi::TreelitePyBufferFrame* frames = nullptr;
  size_t num_frames = 0;
  if (library.serialize_to_pybuffer(handle, &frames, &num_frames) != 0) {
    return LibraryError(library, "could not measure " + file);
  }
  uint64_t array_bytes = 0;
  for (size_t i = 0; i < num_frames; ++i) array_bytes += frames[i].itemsize * frames[i].nitem;

  TreeModelInfo info;
  info.num_features = num_features;
  info.num_classes = layout.num_classes;
  info.bytes = kModelBytes + kTreeBytes * num_trees + array_bytes;
  info.description = std::string("Treelite GTIL, ") +
                     (legacy ? "XGBoost legacy binary" : "checkpoint") + ", " +
                     std::to_string(num_trees) + " trees, " + input_type;
  return std::unique_ptr<TreeModel>(
      std::make_unique<TreeliteModel>(library, std::move(model), std::move(config),
                                      input_type == "float64", layout, std::move(info)));
}

}  // namespace mm::fil
