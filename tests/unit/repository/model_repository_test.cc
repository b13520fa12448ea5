// The ModelRepository seam: LocalRepository, OpenModelRepository,
// ListRepositories and RepositoryKey.
#include "repository/model_repository.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/path_key.h"
#include "repository/local/local_repository.h"
#include "repository/repository_key.h"

namespace mm {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

class ModelRepositoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    root_ = fs::temp_directory_path() / ("mm_model_repository_test_" + std::to_string(::getpid()) +
                                         "_" + std::to_string(counter++));
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
  std::unique_ptr<LocalRepository> OpenLocal(const fs::path& path) {
    auto opened = LocalRepository::Open(path);
    EXPECT_TRUE(opened.ok()) << opened.status().ToString();
    return opened.ok() ? std::move(*opened) : nullptr;
  }

  fs::path root_;
};

std::vector<std::string> Names(const std::vector<ModelSource>& sources) {
  std::vector<std::string> names;
  for (const ModelSource& s : sources) names.push_back(s.name);
  return names;
}

// ------------------------------------------------------------ LocalRepository

TEST_F(ModelRepositoryTest, OpenRefusesAMissingPathAndAFile) {
  auto missing = LocalRepository::Open(root_ / "nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("'" + (root_ / "nope").string() + "'"));
  EXPECT_THAT(missing.status().message(),
              HasSubstr("does not exist; expected a directory of model directories"));

  Write("file", "x");
  auto file = LocalRepository::Open(root_ / "file");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(file.status().message(), HasSubstr((root_ / "file").string()));
  EXPECT_THAT(file.status().message(), HasSubstr("is not a directory"));

  // Under a file: not there either.
  auto under_file = LocalRepository::Open(root_ / "file" / "sub");
  ASSERT_FALSE(under_file.ok());
  EXPECT_EQ(under_file.status().code(), StatusCode::kNotFound);
}

TEST_F(ModelRepositoryTest, KeyIsThePathKey) {
  Dir("repo");
  auto repo = OpenLocal(root_ / "repo" / "");
  ASSERT_NE(repo, nullptr);
  EXPECT_EQ(repo->key(), PathKey(root_ / "repo"));
  EXPECT_EQ(repo->key().back(), 'o');            // no trailing '/'
  EXPECT_EQ(repo->path(), root_ / "repo" / "");  // as given

  auto dotted = OpenLocal(root_ / "repo" / "." / ".." / "repo");
  ASSERT_NE(dotted, nullptr);
  EXPECT_EQ(dotted->key(), repo->key());
}

TEST_F(ModelRepositoryTest, ASymlinkedRepositoryHasItsTargetsKeyAndListsByTheLink) {
  Dir("real/m/1");
  fs::create_directory_symlink(root_ / "real", root_ / "link");
  auto real = OpenLocal(root_ / "real");
  auto link = OpenLocal(root_ / "link");
  ASSERT_NE(real, nullptr);
  ASSERT_NE(link, nullptr);
  EXPECT_EQ(link->key(), real->key());
  auto listed = link->List();
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  ASSERT_THAT(*listed, SizeIs(1));
  EXPECT_EQ((*listed)[0].dir, root_ / "link" / "m");  // the path as given
  EXPECT_EQ((*listed)[0].repository, real->key());

  // The key is taken at Open: repointing the link does not move it.
  Dir("other");
  fs::remove(root_ / "link");
  fs::create_directory_symlink(root_ / "other", root_ / "link");
  EXPECT_EQ(link->key(), real->key());
}

TEST_F(ModelRepositoryTest, ListIsSortedSkipsHiddenAndFilesAndFillsTheRepository) {
  Dir("repo/zeta/1");
  Dir("repo/alpha/1");
  Dir("repo/.hidden/1");
  Dir("repo/mid");
  Write("repo/notes.txt", "not a model");
  Write("repo/.DS_Store", "");
  Dir("elsewhere/linked/1");
  fs::create_directory_symlink(root_ / "elsewhere" / "linked", root_ / "repo" / "linked");
  auto repo = OpenLocal(root_ / "repo");
  ASSERT_NE(repo, nullptr);
  auto listed = repo->List();
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  EXPECT_THAT(Names(*listed), ElementsAre("alpha", "linked", "mid", "zeta"));
  for (const ModelSource& s : *listed) {
    EXPECT_EQ(s.repository, repo->key()) << s.name;
    EXPECT_EQ(s.dir, root_ / "repo" / s.name);
  }
  EXPECT_THAT((*listed)[0].versions, ElementsAre(1));
  EXPECT_THAT((*listed)[2].versions, IsEmpty());

  auto empty = OpenLocal(Dir("empty"));
  ASSERT_NE(empty, nullptr);
  auto none = empty->List();
  ASSERT_TRUE(none.ok());
  EXPECT_THAT(*none, IsEmpty());
}

TEST_F(ModelRepositoryTest, ListFailsWhenTheFolderHasGone) {
  auto repo = OpenLocal(Dir("repo"));
  ASSERT_NE(repo, nullptr);
  fs::remove_all(root_ / "repo");
  auto listed = repo->List();
  ASSERT_FALSE(listed.ok());
  EXPECT_EQ(listed.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(listed.status().message(), HasSubstr((root_ / "repo").string()));
}

TEST_F(ModelRepositoryTest, ListKeepsAModelWithABadConfig) {
  Write("repo/bad/config.pbtxt", "max_batch_size: \"lots\"");
  auto repo = OpenLocal(root_ / "repo");
  ASSERT_NE(repo, nullptr);
  auto listed = repo->List();
  ASSERT_TRUE(listed.ok());
  ASSERT_THAT(*listed, SizeIs(1));
  EXPECT_EQ((*listed)[0].status.code(), StatusCode::kInvalidArgument);
}

TEST_F(ModelRepositoryTest, ScanFindsAPresentModelAsListDoes) {
  Write("repo/m/config.pbtxt", "max_batch_size: 2");
  Dir("repo/m/1");
  Dir("repo/m/3");
  auto repo = OpenLocal(root_ / "repo");
  ASSERT_NE(repo, nullptr);
  auto scanned = repo->Scan("m");
  ASSERT_TRUE(scanned.ok()) << scanned.status().ToString();
  EXPECT_EQ(scanned->name, "m");
  EXPECT_EQ(scanned->repository, repo->key());
  EXPECT_EQ(scanned->dir, root_ / "repo" / "m");
  EXPECT_THAT(scanned->versions, ElementsAre(1, 3));
  EXPECT_EQ(scanned->config.max_batch_size(), 2);
  auto listed = repo->List();
  ASSERT_TRUE(listed.ok());
  ASSERT_THAT(*listed, SizeIs(1));
  EXPECT_EQ((*listed)[0].config_fingerprint, scanned->config_fingerprint);
  EXPECT_EQ((*listed)[0].version_fingerprints, scanned->version_fingerprints);
}

TEST_F(ModelRepositoryTest, ScanAnswersNotFoundForWhatListWouldNotGive) {
  Dir("repo/m/1");
  Dir("repo/.hidden/1");
  Write("repo/file", "x");
  Dir("outside/1");  // a model folder beside the repository
  auto repo = OpenLocal(root_ / "repo");
  ASSERT_NE(repo, nullptr);
  for (std::string name :
       std::vector<std::string>{"missing", ".hidden", "file", "", ".", "..", "../outside", "m/1",
                                "/m", "m/", "./m", std::string("m\0x", 3)}) {
    auto scanned = repo->Scan(name);
    ASSERT_FALSE(scanned.ok()) << "'" << name << "'";
    EXPECT_EQ(scanned.status().code(), StatusCode::kNotFound) << name;
    EXPECT_THAT(scanned.status().message(), HasSubstr("has no model")) << name;
  }
}

TEST_F(ModelRepositoryTest, FetchGivesTheVersionFolderOfAListedVersion) {
  Dir("repo/m/1");
  Dir("repo/m/2");
  auto repo = OpenLocal(root_ / "repo");
  ASSERT_NE(repo, nullptr);
  auto source = repo->Scan("m");
  ASSERT_TRUE(source.ok());
  auto fetched = repo->Fetch(*source, 2, {});
  ASSERT_TRUE(fetched.ok()) << fetched.status().ToString();
  EXPECT_EQ(fetched->model_dir, root_ / "repo" / "m");
  EXPECT_EQ(fetched->version_dir, root_ / "repo" / "m" / "2");

  auto unlisted = repo->Fetch(*source, 3, {});
  ASSERT_FALSE(unlisted.ok());
  EXPECT_EQ(unlisted.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(unlisted.status().message(), HasSubstr("model 'm' has no version 3"));
  EXPECT_FALSE(repo->Fetch(*source, 0, {}).ok());
}

TEST_F(ModelRepositoryTest, FetchRefusesAnotherRepositorysModel) {
  Dir("a/m/1");
  Dir("b/m/1");
  auto a = OpenLocal(root_ / "a");
  auto b = OpenLocal(root_ / "b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  auto from_b = b->Scan("m");
  ASSERT_TRUE(from_b.ok());
  auto fetched = a->Fetch(*from_b, 1, {});
  ASSERT_FALSE(fetched.ok());
  EXPECT_EQ(fetched.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(fetched.status().message(), HasSubstr(b->key()));
}

// -------------------------------------------------------- OpenModelRepository

TEST_F(ModelRepositoryTest, OpensAPlainPathAndAFileUri) {
  Dir("repo/m/1");
  for (const std::string& uri :
       {(root_ / "repo").string(), (root_ / "repo").string() + "/",
        "file://" + (root_ / "repo").string(), "FILE://" + (root_ / "repo").string()}) {
    auto opened = OpenModelRepository(uri);
    ASSERT_TRUE(opened.ok()) << uri << ": " << opened.status().ToString();
    EXPECT_EQ((*opened)->key(), PathKey(root_ / "repo")) << uri;
    EXPECT_EQ((*opened)->key(), RepositoryKey(uri)) << uri;
    auto listed = (*opened)->List();
    ASSERT_TRUE(listed.ok());
    EXPECT_THAT(Names(*listed), ElementsAre("m"));
  }
}

TEST_F(ModelRepositoryTest, OpensARelativePath) {
  Dir("repo");
  const fs::path cwd = fs::current_path();
  fs::current_path(root_);
  auto plain = OpenModelRepository("repo");
  auto file = OpenModelRepository("file://repo");
  fs::current_path(cwd);
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ((*plain)->key(), PathKey(root_ / "repo"));
  EXPECT_EQ((*file)->key(), PathKey(root_ / "repo"));
}

TEST_F(ModelRepositoryTest, AnUnsupportedSchemeNamesTheSupportedOnes) {
  for (std::string uri : {"s3://b/p", "mlflow://x", "S3://bucket", "gs://b"}) {
    auto opened = OpenModelRepository(uri);
    ASSERT_FALSE(opened.ok()) << uri;
    EXPECT_EQ(opened.status().code(), StatusCode::kInvalidArgument) << uri;
    EXPECT_THAT(opened.status().message(), HasSubstr("'" + uri + "'"));
    EXPECT_THAT(opened.status().message(), HasSubstr("is not supported by this build"));
    EXPECT_THAT(opened.status().message(), HasSubstr("a local folder, as a path or file://PATH"));
  }
  auto s3 = OpenModelRepository("s3://b/p");
  EXPECT_THAT(s3.status().message(), HasSubstr("scheme 's3://'"));
}

TEST_F(ModelRepositoryTest, MissingEmptyAndFilePathsAreClearErrors) {
  for (std::string uri : {"", "file://"}) {
    auto opened = OpenModelRepository(uri);
    ASSERT_FALSE(opened.ok()) << uri;
    EXPECT_EQ(opened.status().code(), StatusCode::kInvalidArgument) << uri;
    EXPECT_THAT(opened.status().message(), HasSubstr("empty path")) << uri;
  }
  auto missing = OpenModelRepository((root_ / "nope").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(),
              HasSubstr("model repository '" + (root_ / "nope").string() + "' does not exist"));
  auto missing_uri = OpenModelRepository("file://" + (root_ / "nope").string());
  ASSERT_FALSE(missing_uri.ok());
  EXPECT_EQ(missing_uri.status().code(), StatusCode::kNotFound);

  Write("file", "x");
  auto file = OpenModelRepository((root_ / "file").string());
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(file.status().message(), HasSubstr("is not a directory"));
}

TEST_F(ModelRepositoryTest, APathWithSchemeLikeCharactersAfterASlashIsAFolder) {
  Dir("a:/b/m");  // "<root>/a://b" names the folder <root>/a:/b
  auto opened = OpenModelRepository((root_ / "a:").string() + "//b");
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ((*opened)->key(), PathKey(root_ / "a:" / "b"));
}

// ----------------------------------------------------------- ListRepositories

TEST_F(ModelRepositoryTest, ListRepositoriesSortsByNameStableByRepositoryOrder) {
  Dir("a/zeta/1");
  Dir("a/alpha/1");
  Dir("b/mid/1");
  Dir("b/beta/1");
  auto a = OpenLocal(root_ / "a");
  auto b = OpenLocal(root_ / "b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  auto listed = ListRepositories({b.get(), a.get()});
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  EXPECT_THAT(Names(*listed), ElementsAre("alpha", "beta", "mid", "zeta"));
  for (const ModelSource& s : *listed) {
    EXPECT_TRUE(s.status.ok()) << s.status.ToString();
    EXPECT_EQ(s.repository, s.name == "alpha" || s.name == "zeta" ? a->key() : b->key());
  }
  auto none = ListRepositories({});
  ASSERT_TRUE(none.ok());
  EXPECT_THAT(*none, IsEmpty());
}

TEST_F(ModelRepositoryTest, ListRepositoriesMarksANameInTwoRepositories) {
  Dir("a/shared/1");
  Dir("b/shared/1");
  Dir("b/only_b/1");
  auto a = OpenLocal(root_ / "a");
  auto b = OpenLocal(root_ / "b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  auto listed = ListRepositories({a.get(), b.get()});
  ASSERT_TRUE(listed.ok());
  ASSERT_THAT(*listed, SizeIs(3));
  EXPECT_EQ((*listed)[0].name, "only_b");
  EXPECT_TRUE((*listed)[0].status.ok());
  const std::string want = "model 'shared' is in more than one repository: '" +
                           (root_ / "a" / "shared").string() + "' and '" +
                           (root_ / "b" / "shared").string() +
                           "'; model names must be unique across repositories";
  for (int i : {1, 2}) {
    EXPECT_EQ((*listed)[i].name, "shared");
    EXPECT_EQ((*listed)[i].status.code(), StatusCode::kAlreadyExists);
    EXPECT_EQ((*listed)[i].status.message(), want);
  }
  EXPECT_EQ((*listed)[1].repository, a->key());  // repository order kept
  EXPECT_EQ((*listed)[2].repository, b->key());
}

TEST_F(ModelRepositoryTest, ListRepositoriesNamesEveryCopyOfThree) {
  for (const char* r : {"a", "b", "c"}) Dir(fs::path(r) / "m");
  auto a = OpenLocal(root_ / "a");
  auto b = OpenLocal(root_ / "b");
  auto c = OpenLocal(root_ / "c");
  auto listed = ListRepositories({a.get(), b.get(), c.get()});
  ASSERT_TRUE(listed.ok());
  ASSERT_THAT(*listed, SizeIs(3));
  EXPECT_THAT((*listed)[0].status.message(),
              HasSubstr("'" + (root_ / "a" / "m").string() + "', '" + (root_ / "b" / "m").string() +
                        "' and '" + (root_ / "c" / "m").string() + "'"));
}

TEST_F(ModelRepositoryTest, ListRepositoriesFailsWithTheRepositoryThatCannotBeListed) {
  auto a = OpenLocal(Dir("a"));
  auto b = OpenLocal(Dir("b"));
  fs::remove_all(root_ / "b");
  auto listed = ListRepositories({a.get(), b.get()});
  ASSERT_FALSE(listed.ok());
  EXPECT_EQ(listed.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(listed.status().message(), HasSubstr((root_ / "b").string()));
}

// -------------------------------------------------------------- RepositoryKey

TEST(RepositoryKeyTest, ParsesLocalAndRemoteLocations) {
  RepositoryLocation plain = ParseRepositoryLocation("/models/a/");
  EXPECT_TRUE(plain.local());
  EXPECT_EQ(plain.path, "/models/a/");
  RepositoryLocation file = ParseRepositoryLocation("file:///models/a");
  EXPECT_TRUE(file.local());
  EXPECT_EQ(file.path, "/models/a");
  RepositoryLocation s3 = ParseRepositoryLocation("S3://bucket//prefix/a/");
  EXPECT_FALSE(s3.local());
  EXPECT_EQ(s3.scheme, "s3");
  EXPECT_EQ(s3.path, "s3://bucket/prefix/a");
  RepositoryLocation odd = ParseRepositoryLocation("/models/a://b");
  EXPECT_TRUE(odd.local());
  EXPECT_EQ(odd.path, "/models/a://b");
  EXPECT_TRUE(ParseRepositoryLocation("://x").local());
  EXPECT_TRUE(ParseRepositoryLocation("1s3://x").local());
  EXPECT_EQ(ParseRepositoryLocation("git+ssh://h/r").scheme, "git+ssh");
}

TEST(RepositoryKeyTest, LocalSpellingsShareThePathKey) {
  const std::string want = PathKey("/models/a");
  for (std::string_view uri : {"/models/a", "/models/a/", "/models/./a", "/models/b/../a",
                               "file:///models/a", "file:///models/a/", "File:///models//a"}) {
    EXPECT_EQ(RepositoryKey(uri), want) << uri;
  }
  EXPECT_EQ(LocalRepositoryKey("/models/a/"), want);
  EXPECT_EQ(RepositoryKey("models"), PathKey(fs::current_path() / "models"));
}

TEST(RepositoryKeyTest, RemoteKeysAreNormalizedUris) {
  EXPECT_EQ(RepositoryKey("s3://bucket/prefix"), "s3://bucket/prefix");
  EXPECT_EQ(RepositoryKey("s3://bucket/prefix/"), "s3://bucket/prefix");
  EXPECT_EQ(RepositoryKey("S3://bucket//prefix///a//"), "s3://bucket/prefix/a");
  EXPECT_EQ(RepositoryKey("mlflow://host:5000/models"), "mlflow://host:5000/models");
  // Case and dot segments are the remote kind's business: kept.
  EXPECT_EQ(RepositoryKey("s3://Bucket/A/./b/.."), "s3://Bucket/A/./b/..");
  EXPECT_NE(RepositoryKey("s3://bucket/a"), RepositoryKey("s3://bucket/A"));
  EXPECT_EQ(RepositoryKey("s3://"), "s3://");
  EXPECT_EQ(RepositoryKey("s3:///"), "s3://");
}

}  // namespace
}  // namespace mm
