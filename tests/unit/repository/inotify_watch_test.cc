// InotifyWatch: which model folders it names after each kind of change, and
// its fallbacks. The kernel queues an inotify event before the system call
// that made the change returns, so every check here follows the change at
// once: no sleeps, no timing.
#include "repository/local/inotify_watch.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "repository/local/local_repository.h"

namespace mm {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class InotifyWatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    base_ = fs::temp_directory_path() / ("mm_inotify_watch_test_" + std::to_string(::getpid()) +
                                         "_" + std::to_string(counter++));
    fs::remove_all(base_);
    root_ = base_ / "repo";
    fs::create_directories(root_);
    for (const char* name : {"a", "b", "c"}) AddModel(name);
  }
  void TearDown() override {
    watch_.reset();
    std::error_code ec;
    fs::remove_all(base_, ec);
  }

  void Write(const fs::path& path, const std::string& text) {
    fs::create_directories(path.parent_path());
    std::ofstream(path) << text;
  }
  void AddModel(const std::string& name, const fs::path& at = {}) {
    const fs::path dir = at.empty() ? root_ / name : at;
    Write(dir / "config.pbtxt", "name: \"" + name + "\"\n");
    Write(dir / "1" / "model.bin", "weights");
  }
  void Watch() {
    auto watch = InotifyWatch::Create(root_);
    ASSERT_TRUE(watch.ok()) << watch.status().ToString();
    watch_ = std::move(*watch);
    ASSERT_THAT(Take(), IsEmpty());  // nothing changed since it was made
  }
  std::vector<std::string> Take() {
    RepositoryWatch::Changes changes = watch_->Take();
    EXPECT_FALSE(changes.everything);
    return changes.models;
  }

  fs::path base_, root_;
  std::unique_ptr<InotifyWatch> watch_;
};

TEST_F(InotifyWatchTest, NamesAddedAndRemovedModelsOnce) {
  Watch();
  AddModel("new");
  fs::remove_all(root_ / "b");
  EXPECT_THAT(Take(), ElementsAre("b", "new"));
  EXPECT_THAT(Take(), IsEmpty());
  // Renamed: both names.
  fs::rename(root_ / "new", root_ / "renamed");
  EXPECT_THAT(Take(), ElementsAre("new", "renamed"));
  // Hidden entries and plain files are not models.
  Write(root_ / ".hidden" / "config.pbtxt", "");
  EXPECT_THAT(Take(), IsEmpty());
}

TEST_F(InotifyWatchTest, NamesOnlyTheModelWhoseConfigChanged) {
  Watch();
  Write(root_ / "b" / "config.pbtxt", "name: \"b\"\n# edited\n");
  EXPECT_THAT(Take(), ElementsAre("b"));
  EXPECT_THAT(Take(), IsEmpty());
  fs::remove(root_ / "c" / "config.pbtxt");
  EXPECT_THAT(Take(), ElementsAre("c"));
}

TEST_F(InotifyWatchTest, NamesAModelWhoseVersionFileWasRewrittenOrTouched) {
  Watch();
  Write(root_ / "a" / "1" / "model.bin", "other weights");
  EXPECT_THAT(Take(), ElementsAre("a"));
  fs::last_write_time(root_ / "c" / "1" / "model.bin",
                      fs::last_write_time(root_ / "c" / "1" / "model.bin") - std::chrono::hours(1));
  EXPECT_THAT(Take(), ElementsAre("c"));
  EXPECT_THAT(Take(), IsEmpty());
}

TEST_F(InotifyWatchTest, WatchesNewVersionFoldersAtAnyDepth) {
  Watch();
  fs::create_directories(root_ / "a" / "2");
  EXPECT_THAT(Take(), ElementsAre("a"));
  // The new folder is watched from then on, and folders made inside it.
  Write(root_ / "a" / "2" / "model.bin", "v2");
  EXPECT_THAT(Take(), ElementsAre("a"));
  fs::create_directories(root_ / "a" / "2" / "variables" / "deep");
  EXPECT_THAT(Take(), ElementsAre("a"));
  Write(root_ / "a" / "2" / "variables" / "deep" / "data", "x");
  EXPECT_THAT(Take(), ElementsAre("a"));
  // A version folder moved in whole, with its files: watched too.
  Write(base_ / "staging" / "3" / "sub" / "model.bin", "v3");
  fs::rename(base_ / "staging" / "3", root_ / "b" / "3");
  EXPECT_THAT(Take(), ElementsAre("b"));
  Write(root_ / "b" / "3" / "sub" / "model.bin", "v3 again");
  EXPECT_THAT(Take(), ElementsAre("b"));
  // A version folder removed.
  fs::remove_all(root_ / "a" / "2");
  EXPECT_THAT(Take(), ElementsAre("a"));
  EXPECT_THAT(Take(), IsEmpty());
}

TEST_F(InotifyWatchTest, ModelsHoldingSymlinksAreNamedEveryTimeUntilTheLinkGoes) {
  Write(base_ / "elsewhere" / "weights.bin", "outside");
  fs::remove(root_ / "c" / "1" / "model.bin");
  fs::create_symlink(base_ / "elsewhere" / "weights.bin", root_ / "c" / "1" / "model.bin");
  auto watch = InotifyWatch::Create(root_);
  ASSERT_TRUE(watch.ok()) << watch.status().ToString();
  watch_ = std::move(*watch);
  // The link's target may change with no event here: c is named every time.
  EXPECT_THAT(Take(), ElementsAre("c"));
  EXPECT_THAT(Take(), ElementsAre("c"));
  // The link replaced by a file: named once more, then watched as the others.
  fs::remove(root_ / "c" / "1" / "model.bin");
  Write(root_ / "c" / "1" / "model.bin", "inside");
  EXPECT_THAT(Take(), ElementsAre("c"));
  EXPECT_THAT(Take(), IsEmpty());
  // A link appearing in a watched model: named every time from then on.
  fs::create_symlink(base_ / "elsewhere" / "weights.bin", root_ / "a" / "1" / "extra.bin");
  EXPECT_THAT(Take(), ElementsAre("a"));
  EXPECT_THAT(Take(), ElementsAre("a"));
  // A symlinked config too.
  fs::remove(root_ / "b" / "config.pbtxt");
  Write(base_ / "elsewhere" / "config.pbtxt", "name: \"b\"\n");
  fs::create_symlink(base_ / "elsewhere" / "config.pbtxt", root_ / "b" / "config.pbtxt");
  EXPECT_THAT(Take(), ElementsAre("a", "b"));
  EXPECT_THAT(Take(), ElementsAre("a", "b"));
}

TEST_F(InotifyWatchTest, FollowsASymlinkedModelFolderAndItsRelinking) {
  AddModel("target", base_ / "models" / "target");
  AddModel("other", base_ / "models" / "other");
  fs::create_directory_symlink(base_ / "models" / "target", root_ / "linked");
  fs::create_directory_symlink(base_ / "models" / "target", root_ / "linked_too");
  Watch();
  // A change in the target is a change of both models linking to it.
  Write(base_ / "models" / "target" / "1" / "model.bin", "changed");
  EXPECT_THAT(Take(), ElementsAre("linked", "linked_too"));
  // Relinked to another folder: named, and that folder watched instead.
  fs::remove(root_ / "linked");
  fs::create_directory_symlink(base_ / "models" / "other", root_ / "linked");
  EXPECT_THAT(Take(), ElementsAre("linked"));
  Write(base_ / "models" / "other" / "config.pbtxt", "name: \"other\"\n# edited\n");
  EXPECT_THAT(Take(), ElementsAre("linked"));
  Write(base_ / "models" / "target" / "config.pbtxt", "name: \"target\"\n# edited\n");
  EXPECT_THAT(Take(), ElementsAre("linked_too"));
}

TEST_F(InotifyWatchTest, AnEventOverflowAnswersEverythingAndTheWatchGoesOn) {
  std::ifstream limit_file("/proc/sys/fs/inotify/max_queued_events");
  long limit = 0;
  limit_file >> limit;
  if (limit <= 0 || limit > 200000) GTEST_SKIP() << "max_queued_events is " << limit;
  Watch();
  // More events than the kernel queues: distinct names, so none coalesce.
  const fs::path version = root_ / "a" / "1";
  for (long i = 0; i <= limit; ++i) std::ofstream(version / ("f" + std::to_string(i)));
  RepositoryWatch::Changes changes = watch_->Take();
  EXPECT_TRUE(changes.everything);
  EXPECT_THAT(changes.models, IsEmpty());
  ASSERT_FALSE(changes.warnings.empty());
  EXPECT_THAT(changes.warnings[0], HasSubstr("overflowed"));
  // Rebuilt: quiet again, and a later change is named.
  EXPECT_THAT(Take(), IsEmpty());
  Write(root_ / "b" / "config.pbtxt", "name: \"b\"\n# edited\n");
  EXPECT_THAT(Take(), ElementsAre("b"));
}

TEST_F(InotifyWatchTest, ARepositoryFolderReplacedAnswersEverything) {
  Watch();
  fs::rename(root_, base_ / "old");
  fs::create_directories(root_);
  AddModel("fresh");
  RepositoryWatch::Changes changes = watch_->Take();
  EXPECT_TRUE(changes.everything);
  // The new folder is watched.
  EXPECT_THAT(Take(), IsEmpty());
  Write(root_ / "fresh" / "config.pbtxt", "name: \"fresh\"\n# edited\n");
  EXPECT_THAT(Take(), ElementsAre("fresh"));
}

TEST_F(InotifyWatchTest, RefusesAFilesystemItCannotTrust) {
  // procfs changes without inotify events, as a network filesystem would.
  auto watch = InotifyWatch::Create("/proc/self");
  ASSERT_FALSE(watch.ok());
  EXPECT_EQ(watch.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(watch.status().message(), HasSubstr("filesystem"));
}

TEST_F(InotifyWatchTest, ALocalRepositoryWatchesItsFolder) {
  auto repository = LocalRepository::Open(root_);
  ASSERT_TRUE(repository.ok());
  auto watch = (*repository)->Watch();
  ASSERT_TRUE(watch.ok()) << watch.status().ToString();
  AddModel("new");
  RepositoryWatch::Changes changes = (*watch)->Take();
  EXPECT_FALSE(changes.everything);
  EXPECT_THAT(changes.models, ElementsAre("new"));
}

}  // namespace
}  // namespace mm
