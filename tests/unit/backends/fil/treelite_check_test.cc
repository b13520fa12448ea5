// The checks of Treelite checkpoints and XGBoost legacy binaries before
// Treelite reads them (backends/fil/treelite_check.h): Treelite allocates
// whatever length a file claims, so every claim must fit in the file.
#include "backends/fil/treelite_check.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

#include "backends/fil/tree_model.h"
#include "source_dir.h"

namespace mm::fil {
namespace {

const std::filesystem::path kData =
    std::filesystem::path(MMSERVE_SOURCE_DIR) / "tests/unit/backends/fil/data";

std::string ReadAll(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

template <typename T>
void Patch(std::string& bytes, size_t at, T value) {
  ASSERT_LE(at + sizeof(T), bytes.size());
  std::memcpy(bytes.data() + at, &value, sizeof(T));
}

// A Treelite v4 checkpoint written from scratch (docs/serialization/v4.rst):
// a float32 regressor of `trees` stumps on feature 0 (x < 0.5: 1, else 2),
// with where each array's count lies ("tree 3/cleft", "class_id").
struct Checkpoint {
  std::string bytes;
  std::map<std::string, size_t> at;

  template <typename T>
  void Put(T v) {
    bytes.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  template <typename T>
  void Array(const std::string& name, const std::vector<T>& items) {
    at[name] = bytes.size();
    Put<uint64_t>(items.size());
    for (T v : items) Put(v);
  }

  explicit Checkpoint(int trees) {
    Put<int32_t>(4), Put<int32_t>(8), Put<int32_t>(1);  // Treelite 4.8.1
    Put<uint8_t>(2), Put<uint8_t>(2);                   // float32 thresholds and leaves
    at["num_tree"] = bytes.size();
    Put<uint64_t>(static_cast<uint64_t>(trees));
    Put<int32_t>(2);                                           // num_feature
    Put<uint8_t>(1), Put<uint8_t>(0);                          // regressor, not averaged
    Put<int32_t>(1);                                           // num_target
    Array<int32_t>("num_class", {1});                          //
    Array<int32_t>("leaf_vector_shape", {1, 1});               //
    Array<int32_t>("target_id", std::vector<int32_t>(trees));  // all 0
    Array<int32_t>("class_id", std::vector<int32_t>(trees));   //
    Array<char>("postprocessor", {'i', 'd', 'e', 'n', 't', 'i', 't', 'y'});
    Put<float>(1.0f), Put<float>(1.0f);  // sigmoid_alpha, ratio_c
    Array<double>("base_scores", {0.0});
    Array<char>("attributes", {'{', '}'});
    Put<int32_t>(0);  // no optional fields
    for (int t = 0; t < trees; ++t) {
      const std::string p = "tree " + std::to_string(t) + "/";
      at[p + "num_nodes"] = bytes.size();
      Put<int32_t>(3), Put<uint8_t>(0);  // 3 nodes, no categorical split
      Array<int8_t>(p + "node_type", {1, 0, 0});
      Array<int32_t>(p + "cleft", {1, -1, -1});
      Array<int32_t>(p + "cright", {2, -1, -1});
      Array<int32_t>(p + "split_index", {0, -1, -1});
      Array<uint8_t>(p + "default_left", {1, 0, 0});
      Array<float>(p + "leaf_value", {0, 1, 2});
      Array<float>(p + "threshold", {0.5f, 0, 0});
      Array<int8_t>(p + "cmp", {2, 0, 0});  // kLT
      Array<uint8_t>(p + "category_list_right_child", {0, 0, 0});
      Array<float>(p + "leaf_vector", {});
      Array<uint64_t>(p + "leaf_vector_begin", {0, 0, 0});
      Array<uint64_t>(p + "leaf_vector_end", {0, 0, 0});
      Array<uint32_t>(p + "category_list", {});
      Array<uint64_t>(p + "category_list_begin", {0, 0, 0});
      Array<uint64_t>(p + "category_list_end", {0, 0, 0});
      for (const char* name : {"data_count", "data_count_present", "sum_hess", "sum_hess_present",
                               "gain", "gain_present"}) {
        Array<uint8_t>(p + name, {});  // no statistics: every count 0
      }
      at[p + "num_opt_field_per_tree"] = bytes.size();
      Put<int32_t>(0), Put<int32_t>(0);
    }
  }
};

constexpr uint64_t kHuge = uint64_t{1} << 40;

class TempFile {
 public:
  explicit TempFile(const std::string& bytes) {
    char tmpl[] = "/tmp/mm_treelite_check_XXXXXX";
    close(mkstemp(tmpl));
    path_ = tmpl;
    std::ofstream(path_, std::ios::binary) << bytes;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

TEST(TreeliteCheck, TheTestModelsPass) {
  for (const char* file :
       {"sk_rf_binary.tl", "sk_gb_regression.tl", "sk_hgb_multiclass.tl", "footprint_sk_rf.tl"}) {
    EXPECT_TRUE(CheckTreeliteCheckpoint(ReadAll(kData / file)).ok()) << file;
  }
  EXPECT_TRUE(CheckTreeliteCheckpoint(Checkpoint(4).bytes).ok());
  EXPECT_TRUE(CheckXGBoostLegacyBinary(ReadAll(kData / "xgb_legacy.model")).ok());
}

// The checker's idea of the format is Treelite's: the checkpoint written
// here from the format's description loads and predicts.
TEST(TreeliteCheck, AHandWrittenCheckpointLoadsAndPredicts) {
  TempFile file(Checkpoint(4).bytes);
  auto model = LoadTreeModel(ModelType::kTreeliteCheckpoint, file.path(), {});
  ASSERT_TRUE(model.ok()) << model.status().message();
  ASSERT_EQ((*model)->info().num_features, 2);
  const float rows[] = {0.3f, 0.0f, 0.7f, 0.0f};
  float out[2] = {};
  ASSERT_TRUE((*model)->Predict(rows, 2, {}, out).ok());
  EXPECT_FLOAT_EQ(out[0], 4.0f);  // four stumps, each 1
  EXPECT_FLOAT_EQ(out[1], 8.0f);
}

TEST(TreeliteCheck, EveryTruncationIsRefused) {
  for (const char* file : {"sk_rf_binary.tl", "sk_gb_regression.tl"}) {
    const std::string bytes = ReadAll(kData / file);
    for (size_t n = 0; n < bytes.size(); ++n) {
      Status s = CheckTreeliteCheckpoint(std::string_view(bytes).substr(0, n));
      ASSERT_EQ(s.code(), StatusCode::kInvalidArgument) << file << " cut to " << n;
    }
    Status longer = CheckTreeliteCheckpoint(bytes + "x");
    EXPECT_NE(longer.message().find("1 bytes at byte " + std::to_string(bytes.size()) +
                                    ": expected the file to end there"),
              std::string::npos)
        << longer.message();
  }
  const std::string cut = Checkpoint(4).bytes;
  const std::string s = CheckTreeliteCheckpoint(cut.substr(0, cut.size() - 6)).message();
  EXPECT_EQ(s, "tree 3, field 'num_opt_field_per_tree' needs 4 bytes at byte " +
                   std::to_string(cut.size() - 8) + ", but only 2 remain: the file is cut short");
}

TEST(TreeliteCheck, AHugeClaimedLengthNamesTreeArrayAndOffset) {
  Checkpoint c(4);
  const size_t at = c.at["tree 3/cleft"];
  Patch<uint64_t>(c.bytes, at, kHuge);
  EXPECT_EQ(CheckTreeliteCheckpoint(c.bytes).message(),
            "tree 3, 'cleft' claims 1099511627776 elements of 4 bytes at byte " +
                std::to_string(at) + ", but only " + std::to_string(c.bytes.size() - at - 8) +
                " bytes remain");
  // Through the loader: refused before Treelite reads (under ASan, Treelite
  // itself aborts on such a length), the file named.
  TempFile file(c.bytes);
  auto model = LoadTreeModel(ModelType::kTreeliteCheckpoint, file.path(), {});
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(model.status().message().find(file.path().string() + ": tree 3, 'cleft' claims"), 0u)
      << model.status().message();
}

TEST(TreeliteCheck, EveryArrayCountIsChecked) {
  const Checkpoint good(3);
  for (const auto& [name, at] : good.at) {
    for (uint64_t count : {kHuge, uint64_t{1} << 62, ~uint64_t{0}, uint64_t{5}}) {
      std::string bytes = good.bytes;
      if (name.ends_with("num_nodes") || name.ends_with("num_opt_field_per_tree")) {
        Patch<int32_t>(bytes, at, count == 5 ? 5 : INT32_MAX);
      } else {
        Patch<uint64_t>(bytes, at, count);
      }
      Status s = CheckTreeliteCheckpoint(bytes);
      ASSERT_EQ(s.code(), StatusCode::kInvalidArgument) << name << " = " << count;
      const std::string field = name.substr(name.find('/') + 1);
      EXPECT_NE(s.message().find("byte"), std::string::npos) << s.message();
      if (name.starts_with("tree ") && !field.starts_with("num_opt")) {
        EXPECT_EQ(s.message().find(name.substr(0, name.find('/')) + ", "), 0u) << s.message();
      }
    }
  }
}

TEST(TreeliteCheck, FlippedCountsAreRefused) {
  Checkpoint c(4);
  std::string more_trees = c.bytes;
  Patch<uint64_t>(more_trees, c.at["num_tree"], 5);
  EXPECT_NE(CheckTreeliteCheckpoint(more_trees).message().find("expected 5"), std::string::npos);
  Patch<uint64_t>(more_trees, c.at["num_tree"], kHuge);
  EXPECT_NE(CheckTreeliteCheckpoint(more_trees).message().find("'num_tree' at byte 14 claims"),
            std::string::npos)
      << CheckTreeliteCheckpoint(more_trees).message();
  std::string more_nodes = c.bytes;
  Patch<int32_t>(more_nodes, c.at["tree 1/num_nodes"], 4);
  EXPECT_NE(CheckTreeliteCheckpoint(more_nodes).message().find("tree 1, 'node_type'"),
            std::string::npos)
      << CheckTreeliteCheckpoint(more_nodes).message();
  std::string optional = c.bytes;
  Patch<int32_t>(optional, c.at["tree 2/num_opt_field_per_tree"], 1);
  EXPECT_EQ(CheckTreeliteCheckpoint(optional).code(), StatusCode::kInvalidArgument);
  std::string v3 = c.bytes;
  Patch<int32_t>(v3, 0, 3);
  EXPECT_NE(CheckTreeliteCheckpoint(v3).message().find("expected a Treelite 4.x checkpoint"),
            std::string::npos);
  // Values that size GTIL's per-row buffers.
  std::string classes = c.bytes;
  Patch<int32_t>(classes, c.at["num_class"] + 8, INT32_MAX);
  EXPECT_NE(CheckTreeliteCheckpoint(classes).message().find(
                "'num_class' at byte 32 [0] is 2147483647: expected 1 to 4"),
            std::string::npos)
      << CheckTreeliteCheckpoint(classes).message();
  std::string shape = c.bytes;
  Patch<int32_t>(shape, c.at["leaf_vector_shape"] + 12, INT32_MAX);
  EXPECT_NE(CheckTreeliteCheckpoint(shape).message().find("'leaf_vector_shape'"),
            std::string::npos);
  // A real file: its tree count and its first array's count.
  const std::string real = ReadAll(kData / "sk_rf_binary.tl");
  for (size_t at : {size_t{14}, size_t{32}}) {
    std::string bytes = real;
    Patch<uint64_t>(bytes, at, kHuge);
    TempFile file(bytes);
    auto model = LoadTreeModel(ModelType::kTreeliteCheckpoint, file.path(), {});
    ASSERT_FALSE(model.ok()) << at;
    EXPECT_NE(model.status().message().find("claims 1099511627776"), std::string::npos)
        << model.status().message();
  }
}

// XGBoost's legacy binary: Treelite's loader resizes its strings, nodes and
// leaf vectors to what the file says, too.
TEST(XGBoostLegacyCheck, HugeCountsAreRefused) {
  const std::string good = ReadAll(kData / "xgb_legacy.model");
  ASSERT_TRUE(good.starts_with("binf"));
  uint64_t objective = 0;
  std::memcpy(&objective, good.data() + 140, 8);
  ASSERT_LT(objective, 64u);
  const size_t num_trees_at = 140 + 8 + objective + 8 + 6;  // after "gbtree"
  const size_t num_nodes_at = num_trees_at + 160 + 4;
  struct Case {
    size_t at;
    uint64_t value;
    size_t width;
    std::string expect;
  };
  for (const Case& c : std::vector<Case>{
           {140, kHuge, 8, "'objective name' claims 1099511627776 bytes at byte 140"},
           {num_trees_at, INT32_MAX, 4, "gbtree parameters, 'num_trees'"},
           {num_nodes_at, INT32_MAX, 4, "tree 0, 'nodes' claims 2147483647 elements of 36 bytes"},
           {num_nodes_at, 0, 4, "tree 0, 'num_nodes'"},
           // Values, not lengths: Treelite allocates num_target x num_class.
           {4 + 8, INT32_MAX, 4, "num_class 2147483647 and num_target 1: expected at most 4"},
           {4 + 28, INT32_MAX, 4, "num_class 0 and num_target 2147483647: expected at most 4"}}) {
    std::string bytes = good;
    if (c.width == 8) {
      Patch<uint64_t>(bytes, c.at, c.value);
    } else {
      Patch<int32_t>(bytes, c.at, static_cast<int32_t>(c.value));
    }
    TempFile file(bytes);
    auto model = LoadTreeModel(ModelType::kXGBoost, file.path(), {});
    ASSERT_FALSE(model.ok()) << c.expect;
    EXPECT_EQ(model.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(model.status().message().find(c.expect), std::string::npos)
        << model.status().message();
  }
  for (size_t n = 0; n < good.size() / 2; ++n) {
    ASSERT_FALSE(CheckXGBoostLegacyBinary(std::string_view(good).substr(0, n)).ok()) << n;
  }
}

}  // namespace
}  // namespace mm::fil
