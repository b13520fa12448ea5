#include "repository/repository.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "repository/local/local_repository.h"
#include "repository/model_repository.h"

namespace mm {
namespace {

namespace fs = std::filesystem;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Key;
using ::testing::Not;
using ::testing::SizeIs;

// Every model of the local repositories `paths`, as the lifecycle lists them
// (ListRepositories over LocalRepositories).
StatusOr<std::vector<ModelSource>> ScanRepositories(const std::vector<fs::path>& paths) {
  std::vector<std::unique_ptr<LocalRepository>> opened;
  std::vector<const ModelRepository*> repositories;
  for (const fs::path& path : paths) {
    MM_ASSIGN_OR_RETURN(std::unique_ptr<LocalRepository> local, LocalRepository::Open(path));
    repositories.push_back(local.get());
    opened.push_back(std::move(local));
  }
  return ListRepositories(repositories);
}

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
  EXPECT_THAT(m.status.message(), HasSubstr("is a folder; expected a regular file"));
}

TEST_F(RepositoryTest, ScanModelAcceptsATrailingSlash) {
  Dir("repo/m/1");
  ModelSource m = ScanModel(root_ / "repo" / "m" / "");
  EXPECT_EQ(m.name, "m");
  EXPECT_TRUE(m.status.ok()) << m.status.ToString();
  EXPECT_THAT(m.versions, ElementsAre(1));
}

// ---------------------------------------------------------- fingerprints

// A model with a config and two versions, one holding a nested folder.
class FingerprintTest : public RepositoryTest {
 protected:
  void SetUp() override {
    RepositoryTest::SetUp();
    Write("repo/m/config.pbtxt", "max_batch_size: 4\n");
    Write("repo/m/1/model.onnx", "version one");
    Write("repo/m/2/model.onnx", "version two");
    Write("repo/m/2/assets/vocab/words.txt", "a b c");
  }
  ModelSource Scan() { return ScanModel(root_ / "repo" / "m"); }
  // Moves a path's last-write time by `by` (a touch that cannot land on the same tick).
  void Touch(const fs::path& relative, std::chrono::seconds by) {
    fs::path p = root_ / relative;
    fs::last_write_time(p, fs::last_write_time(p) + by);
  }
};

TEST_F(FingerprintTest, UnchangedModelHasEqualFingerprints) {
  ModelSource a = Scan();
  ModelSource b = Scan();
  ASSERT_TRUE(a.status.ok()) << a.status.ToString();
  EXPECT_THAT(a.warnings, IsEmpty());
  EXPECT_NE(a.config_fingerprint, 0u);
  EXPECT_EQ(a.config_fingerprint, b.config_fingerprint);
  ASSERT_THAT(a.version_fingerprints, ElementsAre(Key(1), Key(2)));
  EXPECT_EQ(a.version_fingerprints, b.version_fingerprints);
  EXPECT_NE(a.version_fingerprints[1], a.version_fingerprints[2]);
}

TEST_F(FingerprintTest, NoConfigMeansZero) {
  fs::remove(root_ / "repo/m/config.pbtxt");
  ModelSource m = Scan();
  EXPECT_FALSE(m.has_config);
  EXPECT_EQ(m.config_fingerprint, 0u);
  EXPECT_THAT(m.version_fingerprints, SizeIs(2));
}

TEST_F(FingerprintTest, ConfigEditChangesOnlyTheConfigFingerprint) {
  ModelSource before = Scan();
  Write("repo/m/config.pbtxt", "max_batch_size: 8\n");  // same size, other bytes
  ModelSource after = Scan();
  EXPECT_NE(before.config_fingerprint, after.config_fingerprint);
  EXPECT_EQ(before.version_fingerprints, after.version_fingerprints);
}

TEST_F(FingerprintTest, UnreadableConfigStillHasAFingerprint) {
  ModelSource before = Scan();
  fs::remove(root_ / "repo/m/config.pbtxt");
  Dir("repo/m/config.pbtxt");
  ModelSource after = Scan();
  EXPECT_FALSE(after.status.ok());
  EXPECT_NE(after.config_fingerprint, 0u);
  EXPECT_NE(after.config_fingerprint, before.config_fingerprint);
}

TEST_F(FingerprintTest, AddedFileChangesThatVersionOnly) {
  ModelSource before = Scan();
  Write("repo/m/1/extra.bin", "x");
  ModelSource after = Scan();
  EXPECT_NE(before.version_fingerprints[1], after.version_fingerprints[1]);
  EXPECT_EQ(before.version_fingerprints[2], after.version_fingerprints[2]);
  EXPECT_EQ(before.config_fingerprint, after.config_fingerprint);
}

TEST_F(FingerprintTest, RemovedFileChangesThatVersion) {
  Write("repo/m/1/extra.bin", "x");
  ModelSource before = Scan();
  fs::remove(root_ / "repo/m/1/extra.bin");
  ModelSource after = Scan();
  EXPECT_NE(before.version_fingerprints[1], after.version_fingerprints[1]);
  EXPECT_EQ(before.version_fingerprints[2], after.version_fingerprints[2]);
}

TEST_F(FingerprintTest, ResizedFileChangesThatVersion) {
  ModelSource before = Scan();
  fs::resize_file(root_ / "repo/m/1/model.onnx", 1000);
  ModelSource after = Scan();
  EXPECT_NE(before.version_fingerprints[1], after.version_fingerprints[1]);
}

TEST_F(FingerprintTest, SameSizeRewriteWithNewMtimeChangesThatVersion) {
  const fs::path file = root_ / "repo/m/1/model.onnx";
  const fs::file_time_type old_time = fs::last_write_time(file);
  ModelSource before = Scan();
  Write("repo/m/1/model.onnx", "VERSION ONE");  // same size
  fs::last_write_time(file, old_time + std::chrono::seconds(5));
  ModelSource after = Scan();
  EXPECT_EQ(fs::file_size(file), 11u);
  EXPECT_NE(before.version_fingerprints[1], after.version_fingerprints[1]);
  EXPECT_EQ(before.version_fingerprints[2], after.version_fingerprints[2]);

  // Only the time moving is a change too.
  Touch("repo/m/1/model.onnx", std::chrono::seconds(5));
  EXPECT_NE(Scan().version_fingerprints[1], after.version_fingerprints[1]);
}

TEST_F(FingerprintTest, NestedFileChangesThatVersion) {
  ModelSource before = Scan();
  Touch("repo/m/2/assets/vocab/words.txt", std::chrono::seconds(3));
  ModelSource touched = Scan();
  EXPECT_NE(before.version_fingerprints[2], touched.version_fingerprints[2]);
  EXPECT_EQ(before.version_fingerprints[1], touched.version_fingerprints[1]);

  Write("repo/m/2/assets/vocab/words.txt", "a b c d e f");
  EXPECT_NE(Scan().version_fingerprints[2], touched.version_fingerprints[2]);
}

TEST_F(FingerprintTest, NewVersionGetsAFingerprintOthersUnchanged) {
  ModelSource before = Scan();
  Write("repo/m/3/model.onnx", "version three");
  ModelSource after = Scan();
  EXPECT_THAT(after.versions, ElementsAre(1, 2, 3));
  ASSERT_THAT(after.version_fingerprints, ElementsAre(Key(1), Key(2), Key(3)));
  EXPECT_EQ(before.version_fingerprints[1], after.version_fingerprints[1]);
  EXPECT_EQ(before.version_fingerprints[2], after.version_fingerprints[2]);
  EXPECT_EQ(before.config_fingerprint, after.config_fingerprint);
  // Non-version folders get none.
  Dir("repo/m/latest");
  EXPECT_THAT(Scan().version_fingerprints, SizeIs(3));
}

TEST_F(FingerprintTest, CreationOrderDoesNotMatter) {
  // Two folders with equal entries made in opposite orders, all times equal.
  const fs::file_time_type when = fs::last_write_time(root_ / "repo/m/1/model.onnx");
  for (const char* model : {"x", "y"}) {
    std::vector<std::string> names = {"a", "b", "c", "d/e"};
    if (std::string(model) == "y") std::reverse(names.begin(), names.end());
    for (const std::string& name : names) Write(fs::path("repo") / model / "1" / name, name);
    for (const char* name : {"a", "b", "c", "d/e", "d"}) {
      fs::last_write_time(root_ / "repo" / model / "1" / name, when);
    }
  }
  ModelSource x = ScanModel(root_ / "repo" / "x");
  ModelSource y = ScanModel(root_ / "repo" / "y");
  EXPECT_EQ(x.version_fingerprints.at(1), y.version_fingerprints.at(1));
}

TEST_F(FingerprintTest, SymlinksAreFollowed) {
  Write("store/weights.bin", "1234");
  fs::create_symlink(root_ / "store/weights.bin", root_ / "repo/m/1/weights.bin");
  fs::create_directory_symlink(root_ / "store", root_ / "repo/m/2/store");
  ModelSource before = Scan();
  EXPECT_THAT(before.warnings, IsEmpty());
  fs::resize_file(root_ / "store/weights.bin", 100);  // the target, not the link
  ModelSource after = Scan();
  EXPECT_NE(before.version_fingerprints[1], after.version_fingerprints[1]);
  EXPECT_NE(before.version_fingerprints[2], after.version_fingerprints[2]);
}

TEST_F(FingerprintTest, SymlinkedVersionFolderIsFingerprinted) {
  Write("store/v3/model.onnx", "three");
  Write("store/v3b/model.onnx", "three");
  fs::create_directory_symlink(root_ / "store/v3", root_ / "repo/m/3");
  ModelSource before = Scan();
  ASSERT_THAT(before.version_fingerprints, Contains(Key(3)));
  fs::remove(root_ / "repo/m/3");
  fs::create_directory_symlink(root_ / "store/v3b", root_ / "repo/m/3");  // relinked
  EXPECT_NE(Scan().version_fingerprints[3], before.version_fingerprints[3]);
}

TEST_F(FingerprintTest, SymlinkLoopsEndWithAWarning) {
  fs::create_directory_symlink(".", root_ / "repo/m/1/self");
  fs::create_directory_symlink("..", root_ / "repo/m/1/up");
  ModelSource a = Scan();
  ModelSource b = Scan();
  EXPECT_TRUE(a.status.ok()) << a.status.ToString();
  ASSERT_THAT(a.warnings, Not(IsEmpty()));
  EXPECT_THAT(a.warnings[0], HasSubstr("symlink loop"));
  EXPECT_EQ(a.version_fingerprints, b.version_fingerprints);
}

TEST_F(FingerprintTest, DeepFoldersStopAtTheDepthLimit) {
  fs::path deep = "repo/m/1";
  for (int i = 0; i < 40; ++i) deep /= "d";
  Write(deep / "file", "x");
  ModelSource m = Scan();
  ASSERT_THAT(m.warnings, SizeIs(1));
  EXPECT_THAT(m.warnings[0], HasSubstr("deeper than 32 levels"));
}

TEST_F(FingerprintTest, DanglingSymlinkIsAWarningAndDiffersFromTheCleanState) {
  Write("store/weights.bin", "1234");
  fs::create_symlink(root_ / "store/weights.bin", root_ / "repo/m/1/weights.bin");
  ModelSource clean = Scan();
  EXPECT_THAT(clean.warnings, IsEmpty());
  fs::remove(root_ / "store/weights.bin");
  ModelSource dangling = Scan();
  EXPECT_TRUE(dangling.status.ok()) << dangling.status.ToString();
  ASSERT_THAT(dangling.warnings, SizeIs(1));
  EXPECT_THAT(dangling.warnings[0], HasSubstr("version 1: cannot read"));
  EXPECT_THAT(dangling.warnings[0], HasSubstr("weights.bin"));
  EXPECT_NE(clean.version_fingerprints[1], dangling.version_fingerprints[1]);
  EXPECT_EQ(clean.version_fingerprints[2], dangling.version_fingerprints[2]);
}

TEST_F(FingerprintTest, UnlistableFolderIsAWarningAndDiffersFromTheCleanState) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads any folder";
  ModelSource clean = Scan();
  const fs::path locked = root_ / "repo/m/2/assets";
  fs::permissions(locked, fs::perms::none);
  ModelSource error = Scan();
  fs::permissions(locked, fs::perms::owner_all);
  ASSERT_THAT(error.warnings, SizeIs(1));
  EXPECT_THAT(error.warnings[0], HasSubstr("cannot list"));
  EXPECT_NE(clean.version_fingerprints[2], error.version_fingerprints[2]);
}

}  // namespace
}  // namespace mm
