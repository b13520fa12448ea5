// SingleModelRepository: a folder holding one model, served under a name.
#include "repository/local/single_model_repository.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>

#include "repository/repository_key.h"

namespace mm {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::SizeIs;

class SingleModelRepositoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    root_ = fs::temp_directory_path() / ("mm_single_model_test_" + std::to_string(::getpid()) +
                                         "_" + std::to_string(counter++));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  void Write(const fs::path& relative, const std::string& text = "x") {
    fs::create_directories((root_ / relative).parent_path());
    std::ofstream(root_ / relative) << text;
  }
  fs::path root_;
};

TEST_F(SingleModelRepositoryTest, TellsOneModelFromAFolderOfModels) {
  EXPECT_FALSE(SingleModelRepository::HoldsOneModel(root_));  // empty
  Write("m/1/model.onnx");
  Write("README.md");
  EXPECT_FALSE(SingleModelRepository::HoldsOneModel(root_));       // a repository
  EXPECT_TRUE(SingleModelRepository::HoldsOneModel(root_ / "m"));  // a model folder
  Write("flat/model.pt");
  EXPECT_TRUE(SingleModelRepository::HoldsOneModel(root_ / "flat"));
  Write("mlflow/MLmodel");
  EXPECT_TRUE(SingleModelRepository::HoldsOneModel(root_ / "mlflow"));
  Write("config/config.pbtxt");
  EXPECT_TRUE(SingleModelRepository::HoldsOneModel(root_ / "config"));
  EXPECT_FALSE(SingleModelRepository::HoldsOneModel(root_ / "missing"));
}

TEST_F(SingleModelRepositoryTest, ServesTheFilesAsVersionOneAndRemovesItsLinks) {
  Write("model.onnx", "onnx bytes");
  fs::path links;
  {
    auto repository = SingleModelRepository::Open(root_, "my-model");
    ASSERT_TRUE(repository.ok()) << repository.status().ToString();
    EXPECT_EQ((*repository)->key(), LocalRepositoryKey(root_));
    auto listed = (*repository)->List();
    ASSERT_TRUE(listed.ok()) << listed.status().ToString();
    ASSERT_THAT(*listed, SizeIs(1));
    const ModelSource& source = (*listed)[0];
    EXPECT_EQ(source.name, "my-model");
    EXPECT_EQ(source.repository, (*repository)->key());
    EXPECT_EQ(source.versions, std::vector<int64_t>{1});
    auto fetched = (*repository)->Fetch(source, 1, {});
    ASSERT_TRUE(fetched.ok()) << fetched.status().ToString();
    std::ifstream in(fetched->version_dir / "model.onnx");
    std::string text((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(text, "onnx bytes");
    links = fetched->model_dir.parent_path();
    EXPECT_TRUE(fs::exists(links));
    EXPECT_FALSE((*repository)->Scan("other").ok());
    ModelSource foreign = source;
    foreign.repository = "elsewhere";
    EXPECT_THAT((*repository)->Fetch(foreign, 1, {}).status().message(),
                HasSubstr("listed by repository 'elsewhere'"));
  }
  EXPECT_FALSE(fs::exists(links));
  EXPECT_TRUE(fs::exists(root_ / "model.onnx"));  // only the links went
}

TEST_F(SingleModelRepositoryTest, AModelFolderKeepsItsVersions) {
  Write("1/model.onnx");
  Write("3/model.onnx");
  auto repository = SingleModelRepository::Open(root_, "m");
  ASSERT_TRUE(repository.ok()) << repository.status().ToString();
  auto source = (*repository)->Scan("m");
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  EXPECT_EQ(source->versions, (std::vector<int64_t>{1, 3}));
}

TEST_F(SingleModelRepositoryTest, RefusesNamesNoFolderCouldHave) {
  Write("model.onnx");
  for (const char* name : {"", ".hidden", "a/b", "../up"}) {
    auto repository = SingleModelRepository::Open(root_, name);
    ASSERT_FALSE(repository.ok()) << name;
    EXPECT_EQ(repository.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(repository.status().message(), HasSubstr("cannot name a model folder"));
  }
  EXPECT_EQ(SingleModelRepository::Open(root_ / "missing", "m").status().code(),
            StatusCode::kNotFound);
}

}  // namespace
}  // namespace mm
