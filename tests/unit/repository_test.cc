#include "repository/repository.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>

namespace mm {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

// A fresh directory under the system temp folder, removed with everything in
// it when the test ends.
class RepositoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    root_ = fs::temp_directory_path() /
            ("mm_repository_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  fs::path Dir(const fs::path& relative) {
    fs::create_directories(root_ / relative);
    return root_ / relative;
  }
  void Write(const fs::path& relative, const std::string& text) {
    fs::create_directories((root_ / relative).parent_path());
    std::ofstream(root_ / relative) << text;
  }

  fs::path root_;
};

TEST_F(RepositoryTest, ScansAGoodModel) {
  Write("repo/good/config.pbtxt", R"cfg(
platform: "onnxruntime_onnx"
max_batch_size: 4
input [ { name: "x" data_type: TYPE_FP32 dims: [ 2 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 2 ] } ]
)cfg");
  Write("repo/good/2/model.onnx", "fake");
  Write("repo/good/10/model.onnx", "fake");
  Write("repo/good/1/model.onnx", "fake");
  auto scanned = ScanRepositories({root_ / "repo"});
  ASSERT_TRUE(scanned.ok()) << scanned.status().ToString();
  ASSERT_THAT(*scanned, SizeIs(1));
  const ModelSource& m = (*scanned)[0];
  EXPECT_TRUE(m.status.ok()) << m.status.ToString();
  EXPECT_EQ(m.name, "good");
  EXPECT_EQ(m.dir, root_ / "repo" / "good");
  EXPECT_TRUE(m.has_config);
  EXPECT_EQ(m.config.name(), "good");  // filled in from the directory
  EXPECT_EQ(m.config.max_batch_size(), 4);
  EXPECT_THAT(m.versions, ElementsAre(1, 2, 10));
  EXPECT_THAT(m.warnings, IsEmpty());
  EXPECT_EQ(PlatformOf(m), "onnxruntime_onnx");
}

TEST_F(RepositoryTest, ModelWithoutConfigGetsTheDirectoryName) {
  Write("repo/plain/1/model.onnx", "fake");
  auto scanned = ScanRepositories({root_ / "repo"});
  ASSERT_TRUE(scanned.ok());
  ASSERT_THAT(*scanned, SizeIs(1));
  const ModelSource& m = (*scanned)[0];
  EXPECT_TRUE(m.status.ok()) << m.status.ToString();
  EXPECT_FALSE(m.has_config);
  EXPECT_EQ(m.config.name(), "plain");
  EXPECT_THAT(m.versions, ElementsAre(1));
  EXPECT_EQ(PlatformOf(m), "onnxruntime_onnx");  // found model.onnx
}

TEST_F(RepositoryTest, IgnoresNonNumericVersionDirsHiddenEntriesAndFiles) {
  Write("repo/m/config.pbtxt", "name: \"m\"");
  Dir("repo/m/3");
  Dir("repo/m/latest");
  Dir("repo/m/-1");
  Dir("repo/m/1a");
  Dir("repo/m/.4");
  Dir("repo/m/0");
  Dir("repo/m/007");
  Dir("repo/m/99999999999999999999");
  Write("repo/m/5", "a file, not a directory");
  Dir("repo/.hidden_model/1");
  Write("repo/README.md", "not a model");
  auto scanned = ScanRepositories({root_ / "repo"});
  ASSERT_TRUE(scanned.ok());
  ASSERT_THAT(*scanned, SizeIs(1));
  const ModelSource& m = (*scanned)[0];
  EXPECT_TRUE(m.status.ok()) << m.status.ToString();
  EXPECT_THAT(m.versions, ElementsAre(3));
  // "0", "007" and the overflowing number look like versions: say why they are not.
  ASSERT_THAT(m.warnings, SizeIs(3));
  std::string all = m.warnings[0] + m.warnings[1] + m.warnings[2];
  EXPECT_THAT(all, HasSubstr("directory '0' ignored"));
  EXPECT_THAT(all, HasSubstr("directory '007' ignored"));
  EXPECT_THAT(all, HasSubstr("directory '99999999999999999999' ignored"));
  EXPECT_EQ(PlatformOf(m), "");  // no platform, no model.onnx
}

TEST_F(RepositoryTest, BadConfigMarksOnlyThatModel) {
  Write("repo/broken/config.pbtxt", "max_batch_size: [[[");
  Write("repo/invalid/config.pbtxt", "input [ { name: \"x\" } ]");
  Write("repo/ok/1/model.onnx", "fake");
  auto scanned = ScanRepositories({root_ / "repo"});
  ASSERT_TRUE(scanned.ok());
  ASSERT_THAT(*scanned, SizeIs(3));
  const auto& broken = (*scanned)[0];
  const auto& invalid = (*scanned)[1];
  const auto& ok = (*scanned)[2];
  EXPECT_EQ(broken.name, "broken");
  EXPECT_EQ(broken.status.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(broken.status.message(), HasSubstr("config.pbtxt of model 'broken' line 1"));
  EXPECT_EQ(broken.config.name(), "broken");
  EXPECT_EQ(invalid.status.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(invalid.status.message(),
              HasSubstr("config.pbtxt of model 'invalid': input 'x' has data_type TYPE_INVALID"));
  EXPECT_TRUE(ok.status.ok());
}

TEST_F(RepositoryTest, UnknownConfigFieldsBecomeWarnings) {
  Write("repo/m/config.pbtxt", "name: \"m\"\nresponse_cache { enable: true }\nbatch_input []\n");
  auto scanned = ScanRepositories({root_ / "repo"});
  ASSERT_TRUE(scanned.ok());
  const ModelSource& m = (*scanned)[0];
  EXPECT_TRUE(m.status.ok());
  EXPECT_TRUE(m.config.response_cache().enable());
  ASSERT_THAT(m.warnings, SizeIs(1));
  EXPECT_THAT(m.warnings[0], HasSubstr("line 3 column 1: unknown field 'batch_input' ignored"));
}

TEST_F(RepositoryTest, ConfigNameMustMatchDirectory) {
  Write("repo/dir_name/config.pbtxt", "name: \"other\"");
  auto scanned = ScanRepositories({root_ / "repo"});
  ASSERT_TRUE(scanned.ok());
  const ModelSource& m = (*scanned)[0];
  EXPECT_EQ(m.status.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(m.status.message(), HasSubstr("sets name 'other'"));
  EXPECT_THAT(m.status.message(), HasSubstr("directory name 'dir_name'"));
  EXPECT_EQ(m.config.name(), "dir_name");
}

TEST_F(RepositoryTest, SameNameInTwoRepositoriesMarksBoth) {
  Dir("a/shared/1");
  Dir("b/shared/1");
  Dir("b/only_b/1");
  auto scanned = ScanRepositories({root_ / "a", root_ / "b"});
  ASSERT_TRUE(scanned.ok());
  ASSERT_THAT(*scanned, SizeIs(3));
  EXPECT_EQ((*scanned)[0].name, "only_b");
  EXPECT_TRUE((*scanned)[0].status.ok());
  for (int i : {1, 2}) {
    const ModelSource& m = (*scanned)[i];
    EXPECT_EQ(m.name, "shared");
    EXPECT_EQ(m.status.code(), StatusCode::kAlreadyExists);
    EXPECT_THAT(m.status.message(), HasSubstr((root_ / "a" / "shared").string()));
    EXPECT_THAT(m.status.message(), HasSubstr((root_ / "b" / "shared").string()));
  }
  EXPECT_EQ((*scanned)[1].dir, root_ / "a" / "shared");  // repository order kept
}

TEST_F(RepositoryTest, SortedByName) {
  Dir("repo/zeta");
  Dir("repo/alpha");
  Dir("repo/mid");
  auto scanned = ScanRepositories({root_ / "repo"});
  ASSERT_TRUE(scanned.ok());
  ASSERT_THAT(*scanned, SizeIs(3));
  EXPECT_EQ((*scanned)[0].name, "alpha");
  EXPECT_EQ((*scanned)[1].name, "mid");
  EXPECT_EQ((*scanned)[2].name, "zeta");
}

TEST_F(RepositoryTest, MissingOrFileRepositoryIsAnError) {
  auto missing = ScanRepositories({root_ / "nope"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr((root_ / "nope").string()));

  Write("file", "x");
  auto file = ScanRepositories({root_ / "file"});
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(file.status().message(), HasSubstr("is not a directory"));

  auto empty = ScanRepositories({Dir("empty")});
  ASSERT_TRUE(empty.ok());
  EXPECT_THAT(*empty, IsEmpty());
}

TEST_F(RepositoryTest, ConfigThatIsADirectoryIsAnError) {
  Dir("repo/m/config.pbtxt");
  ModelSource m = ScanModel(root_ / "repo" / "m");
  EXPECT_FALSE(m.status.ok());
  EXPECT_THAT(m.status.message(), HasSubstr("not a regular file"));
}

TEST_F(RepositoryTest, ScanModelAcceptsATrailingSlash) {
  Dir("repo/m/1");
  ModelSource m = ScanModel(root_ / "repo" / "m" / "");
  EXPECT_EQ(m.name, "m");
  EXPECT_TRUE(m.status.ok()) << m.status.ToString();
  EXPECT_THAT(m.versions, ElementsAre(1));
}

TEST_F(RepositoryTest, PlatformFromConfigOrFiles) {
  ModelSource s;
  s.dir = Dir("repo/m");
  s.config.set_backend("onnxruntime");
  EXPECT_EQ(PlatformOf(s), "onnxruntime_onnx");
  s.config.set_backend("python");
  EXPECT_EQ(PlatformOf(s), "");
  s.config.clear_backend();
  s.config.set_platform("tensorflow_savedmodel");
  EXPECT_EQ(PlatformOf(s), "");
  s.config.clear_platform();

  Write("repo/m/4/custom.bin", "fake");
  s.versions = {4};
  EXPECT_EQ(PlatformOf(s), "");
  s.config.set_default_model_filename("custom.bin");
  EXPECT_EQ(PlatformOf(s), "onnxruntime_onnx");
}

}  // namespace
}  // namespace mm
