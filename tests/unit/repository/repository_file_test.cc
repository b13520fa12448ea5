#include "repository/repository_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace mm {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class RepositoryFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("mm_repository_file_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path Write(const std::string& name, const std::string& content) {
    std::ofstream(dir_ / name, std::ios::binary) << content;
    return dir_ / name;
  }
  fs::path dir_;
};

TEST_F(RepositoryFileTest, ReadsARegularFileAndOneBehindASymlink) {
  const fs::path file = Write("config.pbtxt", "name: \"m\"");
  EXPECT_EQ(*ReadRepositoryFile(file, RepositoryFileKind::kConfig), "name: \"m\"");
  fs::create_symlink(file, dir_ / "link");
  EXPECT_EQ(*ReadRepositoryFile(dir_ / "link", RepositoryFileKind::kConfig), "name: \"m\"");
  EXPECT_EQ(*CheckRepositoryFile(dir_ / "link", RepositoryFileKind::kModel), 9u);
  EXPECT_EQ(*ReadRepositoryFile(Write("empty", ""), RepositoryFileKind::kDriftBaseline), "");
}

// A FIFO would hang a plain reader; it is refused at once, with nobody writing to it.
TEST_F(RepositoryFileTest, AFifoIsRefusedWithoutBlocking) {
  ASSERT_EQ(mkfifo((dir_ / "drift_baseline.json").c_str(), 0600), 0);
  auto read = ReadRepositoryFile(dir_ / "drift_baseline.json", RepositoryFileKind::kDriftBaseline);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(),
              HasSubstr("drift baseline '" + (dir_ / "drift_baseline.json").string() +
                        "' is a FIFO; expected a regular file"));
  EXPECT_FALSE(CheckRepositoryFile(dir_ / "drift_baseline.json", RepositoryFileKind::kModel).ok());
}

// A symlink to /dev/zero would be read forever.
TEST_F(RepositoryFileTest, DevicesAndFoldersAreRefused) {
  fs::create_symlink("/dev/zero", dir_ / "zero");
  auto read = ReadRepositoryFile(dir_ / "zero", RepositoryFileKind::kDriftBaseline);
  ASSERT_FALSE(read.ok());
  EXPECT_THAT(read.status().message(), HasSubstr("is a character device; expected a regular file"));
  fs::create_directory(dir_ / "folder");
  read = ReadRepositoryFile(dir_ / "folder", RepositoryFileKind::kConfig);
  ASSERT_FALSE(read.ok());
  EXPECT_THAT(read.status().message(), HasSubstr("config '" + (dir_ / "folder").string() +
                                                 "' is a folder; expected a regular file"));
}

TEST_F(RepositoryFileTest, MissingAndDanglingFilesAreNotFound) {
  auto read = ReadRepositoryFile(dir_ / "nope", RepositoryFileKind::kWarmupData);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(read.status().message(), HasSubstr("warmup data file '"));
  fs::create_symlink(dir_ / "gone", dir_ / "dangling");
  EXPECT_EQ(CheckRepositoryFile(dir_ / "dangling", RepositoryFileKind::kModel).status().code(),
            StatusCode::kNotFound);
}

TEST_F(RepositoryFileTest, AFileOverItsKindsCapIsRefusedBeforeItIsRead) {
  const uint64_t cap = MaxRepositoryFileBytes(RepositoryFileKind::kConfig);
  EXPECT_EQ(cap, uint64_t{4} << 20);
  const fs::path big = dir_ / "config.pbtxt";
  { std::ofstream(big, std::ios::binary) << "x"; }
  fs::resize_file(big, cap + 1);  // sparse: nothing is written
  auto read = ReadRepositoryFile(big, RepositoryFileKind::kConfig);
  ASSERT_FALSE(read.ok());
  EXPECT_THAT(read.status().message(),
              HasSubstr("is " + std::to_string(cap + 1) + " bytes; expected at most " +
                        std::to_string(cap) + " bytes for a config"));
  fs::resize_file(big, cap);
  EXPECT_EQ(ReadRepositoryFile(big, RepositoryFileKind::kConfig)->size(), cap);
  EXPECT_GT(MaxRepositoryFileBytes(RepositoryFileKind::kModel),
            MaxRepositoryFileBytes(RepositoryFileKind::kWarmupData));
}

}  // namespace
}  // namespace mm
