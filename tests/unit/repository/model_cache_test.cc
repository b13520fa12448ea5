#include "repository/model_cache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

namespace mm {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

bool AcceptAll(const fs::path&) { return true; }

class ModelCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("mm_model_cache_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::shared_ptr<ModelCache> Open(uint64_t capacity = 0) {
    auto cache = ModelCache::Open({dir_, capacity});
    EXPECT_TRUE(cache.ok()) << cache.status().ToString();
    return cache.ok() ? *cache : nullptr;
  }

  // Writes `bytes` bytes as <dir>/1/model.onnx and a config beside it.
  static void Fill(const fs::path& dir, uint64_t bytes) {
    fs::create_directories(dir / "1");
    std::ofstream(dir / "config.pbtxt") << "name: \"m\"";  // 9 bytes
    std::ofstream(dir / "1" / "model.onnx", std::ios::binary)
        << std::string(static_cast<size_t>(bytes - 9), 'x');
  }

  // Stages, fills and commits entry `id` of `bytes` (at least 9); returns the pinned hit.
  static ModelCache::Hit Put(ModelCache& cache, const std::string& id, uint64_t bytes) {
    auto staging = cache.Stage(id, bytes);
    EXPECT_TRUE(staging.ok()) << staging.status().ToString();
    if (!staging.ok()) return {};
    Fill((*staging)->dir(), bytes);
    auto hit = cache.Commit(std::move(*staging));
    EXPECT_TRUE(hit.ok()) << hit.status().ToString();
    return hit.ok() ? std::move(*hit) : ModelCache::Hit{};
  }

  static bool Has(ModelCache& cache, const std::string& id) {
    return cache.Find(id, AcceptAll).has_value();
  }

  // The folders under <dir>/.staging.
  size_t StagingFolders() const {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_ / ".staging")) ++n;
    return n;
  }

  fs::path dir_;
};

TEST_F(ModelCacheTest, CommittedEntryIsFound) {
  auto cache = Open();
  ASSERT_NE(cache, nullptr);
  EXPECT_FALSE(cache->Find("v1", AcceptAll).has_value());

  auto staging = cache->Stage("v1", 100);
  ASSERT_TRUE(staging.ok()) << staging.status().ToString();
  const fs::path staged = (*staging)->dir();
  EXPECT_TRUE(fs::is_directory(staged));
  EXPECT_TRUE(fs::is_empty(staged));
  EXPECT_EQ(cache->usage().bytes, 100u);  // a staging counts
  EXPECT_EQ(cache->usage().entries, 0u);
  // Not visible before Commit.
  EXPECT_FALSE(cache->Find("v1", AcceptAll).has_value());
  Fill(staged, 100);

  auto committed = cache->Commit(std::move(*staging));
  ASSERT_TRUE(committed.ok()) << committed.status().ToString();
  EXPECT_EQ(committed->dir, dir_ / "v1");
  EXPECT_NE(committed->lease, nullptr);
  EXPECT_FALSE(fs::exists(staged));
  EXPECT_EQ(StagingFolders(), 0u);

  int verified = 0;
  auto hit = cache->Find("v1", [&](const fs::path& dir) {
    ++verified;
    EXPECT_EQ(dir, dir_ / "v1");
    return fs::file_size(dir / "1" / "model.onnx") == 91;
  });
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(verified, 1);
  EXPECT_EQ(hit->dir, dir_ / "v1");
  EXPECT_TRUE(fs::is_regular_file(hit->dir / "config.pbtxt"));
  EXPECT_EQ(fs::file_size(hit->dir / "1" / "model.onnx"), 91u);

  ModelCache::Usage usage = cache->usage();
  EXPECT_EQ(usage.bytes, 100u);
  EXPECT_EQ(usage.entries, 1u);
  EXPECT_EQ(usage.pinned, 1u);
  EXPECT_EQ(usage.evictions, 0u);
  committed->lease.reset();
  EXPECT_EQ(cache->usage().pinned, 1u);  // still by `hit`
  hit->lease.reset();
  EXPECT_EQ(cache->usage().pinned, 0u);
  // A null verify accepts.
  EXPECT_TRUE(cache->Find("v1", nullptr).has_value());
}

TEST_F(ModelCacheTest, AStagingDroppedWithoutCommitLeavesNothing) {
  auto cache = Open(1000);
  ASSERT_NE(cache, nullptr);
  fs::path staged;
  {
    auto staging = cache->Stage("v1", 600);
    ASSERT_TRUE(staging.ok()) << staging.status().ToString();
    staged = (*staging)->dir();
    Fill(staged, 600);
    EXPECT_EQ(cache->usage().bytes, 600u);
    // The staged bytes count against the cap.
    auto second = cache->Stage("v2", 600);
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.status().code(), StatusCode::kResourceExhausted);
  }
  EXPECT_FALSE(fs::exists(staged));
  EXPECT_EQ(StagingFolders(), 0u);
  EXPECT_FALSE(fs::exists(dir_ / "v1"));
  ModelCache::Usage usage = cache->usage();
  EXPECT_EQ(usage.bytes, 0u);
  EXPECT_EQ(usage.entries, 0u);
  EXPECT_FALSE(cache->Find("v1", AcceptAll).has_value());
  // The room is back.
  EXPECT_TRUE(cache->Stage("v2", 600).ok());
}

TEST_F(ModelCacheTest, AStagingMayOutliveItsCache) {
  auto cache = Open();
  ASSERT_NE(cache, nullptr);
  auto staging = cache->Stage("v1", 10);
  ASSERT_TRUE(staging.ok());
  const fs::path staged = (*staging)->dir();
  cache.reset();
  staging->reset();
  EXPECT_FALSE(fs::exists(staged));
}

TEST_F(ModelCacheTest, EntriesAreFoundAgainAfterARestart) {
  {
    auto cache = Open();
    ASSERT_NE(cache, nullptr);
    Put(*cache, "v1", 100);
    ModelCache::Hit held = Put(*cache, "v2", 250);
    // A staging in progress when the process ends: its folder stays behind.
    auto staging = cache->Stage("v3", 50);
    ASSERT_TRUE(staging.ok());
    Fill((*staging)->dir(), 50);
    // A crash cannot run destructors; mimic the leftover by copying it.
    fs::copy((*staging)->dir(), dir_ / ".staging" / "v3.leftover", fs::copy_options::recursive);
    staging->reset();
    // A lease that outlives its cache does nothing when released.
    cache.reset();
    held.lease.reset();
  }
  fs::create_directories(dir_ / ".staging" / "v4.7" / "1");
  std::ofstream(dir_ / ".staging" / "v4.7" / "1" / "model.onnx") << "partial";
  // Files and folders that are not entries are not counted.
  std::ofstream(dir_ / "notes.txt") << "not an entry";
  fs::create_directories(dir_ / ".hidden");

  auto cache = Open();
  ASSERT_NE(cache, nullptr);
  EXPECT_TRUE(fs::is_directory(dir_ / ".staging"));
  EXPECT_EQ(StagingFolders(), 0u);
  ModelCache::Usage usage = cache->usage();
  EXPECT_EQ(usage.entries, 2u);
  EXPECT_EQ(usage.bytes, 350u);
  EXPECT_EQ(usage.pinned, 0u);
  auto hit = cache->Find("v1", AcceptAll);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(fs::file_size(hit->dir / "1" / "model.onnx"), 91u);
  EXPECT_TRUE(Has(*cache, "v2"));
  EXPECT_FALSE(Has(*cache, "v3"));
  EXPECT_FALSE(Has(*cache, "notes.txt"));
}

TEST_F(ModelCacheTest, TheOrderOfUseSurvivesARestart) {
  {
    auto cache = Open();
    ASSERT_NE(cache, nullptr);
    Put(*cache, "a", 100);
    Put(*cache, "b", 100);
    Put(*cache, "c", 100);
  }
  // An entry's folder keeps its last use as its mtime: b oldest, then c, then a.
  const auto now = fs::file_time_type::clock::now();
  fs::last_write_time(dir_ / "b", now - std::chrono::hours(3));
  fs::last_write_time(dir_ / "c", now - std::chrono::hours(2));
  fs::last_write_time(dir_ / "a", now - std::chrono::hours(1));

  auto cache = Open(300);
  ASSERT_NE(cache, nullptr);
  EXPECT_EQ(cache->usage().bytes, 300u);
  auto staging = cache->Stage("d", 150);
  ASSERT_TRUE(staging.ok()) << staging.status().ToString();
  EXPECT_FALSE(fs::exists(dir_ / "b"));
  EXPECT_FALSE(fs::exists(dir_ / "c"));
  EXPECT_TRUE(fs::exists(dir_ / "a"));
  EXPECT_EQ(cache->usage().evictions, 2u);
}

TEST_F(ModelCacheTest, ASecondOpenOfTheSameFolderFails) {
  auto first = Open();
  ASSERT_NE(first, nullptr);
  auto second = ModelCache::Open({dir_, 0});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr("in use by another mmserve process"));
  // The failed Open removed nothing of the first one's.
  Put(*first, "v1", 10);
  EXPECT_TRUE(Has(*first, "v1"));
  // Once the first is gone, the folder opens.
  first.reset();
  auto third = ModelCache::Open({dir_, 0});
  ASSERT_TRUE(third.ok()) << third.status().ToString();
  EXPECT_TRUE(Has(**third, "v1"));
}

TEST_F(ModelCacheTest, OpenRefusesWhatIsNotAFolder) {
  auto empty = ModelCache::Open({fs::path(), 0});
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);

  fs::create_directories(dir_);
  std::ofstream(dir_ / "file") << "x";
  auto file = ModelCache::Open({dir_ / "file", 0});
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kInvalidArgument) << file.status().ToString();
  EXPECT_THAT(file.status().message(), HasSubstr("is not a folder"));

  // Below a file, no folder can be made.
  auto below = ModelCache::Open({dir_ / "file" / "cache", 0});
  ASSERT_FALSE(below.ok());
  EXPECT_EQ(below.status().code(), StatusCode::kFailedPrecondition) << below.status().ToString();
}

TEST_F(ModelCacheTest, EvictsTheLeastRecentlyUsedUnpinnedEntry) {
  auto cache = Open(300);
  ASSERT_NE(cache, nullptr);
  Put(*cache, "a", 100);  // leases dropped at once: unpinned
  Put(*cache, "b", 100);
  Put(*cache, "c", 100);
  EXPECT_EQ(cache->usage().bytes, 300u);
  // Touch a: b is now the least recently used.
  ASSERT_TRUE(cache->Find("a", AcceptAll).has_value());

  auto staging = cache->Stage("d", 100);
  ASSERT_TRUE(staging.ok()) << staging.status().ToString();
  EXPECT_FALSE(fs::exists(dir_ / "b"));
  // Moved aside under the lock, deleted after it: nothing of b is left.
  for (const auto& e : fs::directory_iterator(dir_ / ".staging")) {
    EXPECT_EQ(e.path().filename().string().rfind("trash.", 0), std::string::npos) << e.path();
  }
  EXPECT_TRUE(fs::exists(dir_ / "a"));
  EXPECT_TRUE(fs::exists(dir_ / "c"));
  ModelCache::Usage usage = cache->usage();
  EXPECT_EQ(usage.evictions, 1u);
  EXPECT_EQ(usage.entries, 2u);
  EXPECT_EQ(usage.bytes, 300u);
  Fill((*staging)->dir(), 100);
  ASSERT_TRUE(cache->Commit(std::move(*staging)).ok());
  EXPECT_FALSE(Has(*cache, "b"));

  // Commit counts as a use too: c is next, then a.
  ASSERT_TRUE(cache->Stage("e", 100).ok());
  EXPECT_FALSE(fs::exists(dir_ / "c"));
  EXPECT_TRUE(fs::exists(dir_ / "a"));
  EXPECT_TRUE(fs::exists(dir_ / "d"));
  EXPECT_EQ(cache->usage().evictions, 2u);

  // A version as large as the cap empties it.
  ASSERT_TRUE(cache->Stage("f", 300).ok());
  EXPECT_EQ(cache->usage().entries, 0u);
  EXPECT_EQ(cache->usage().evictions, 4u);
}

TEST_F(ModelCacheTest, APinnedEntryIsNeverEvicted) {
  auto cache = Open(300);
  ASSERT_NE(cache, nullptr);
  ModelCache::Hit a = Put(*cache, "a", 100);  // the oldest, but pinned
  Put(*cache, "b", 100);
  ModelCache::Hit c = Put(*cache, "c", 100);

  auto staging = cache->Stage("d", 100);
  ASSERT_TRUE(staging.ok()) << staging.status().ToString();
  EXPECT_TRUE(fs::exists(dir_ / "a"));
  EXPECT_FALSE(fs::exists(dir_ / "b"));
  EXPECT_TRUE(fs::exists(dir_ / "c"));
  Fill((*staging)->dir(), 100);
  auto d = cache->Commit(std::move(*staging));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(cache->usage().pinned, 3u);

  // All pinned: no room.
  auto full = cache->Stage("e", 100);
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.status().code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(full.status().message(), HasSubstr("--model-cache-size"));
  EXPECT_THAT(full.status().message(), HasSubstr("is full"));
  EXPECT_EQ(cache->usage().evictions, 1u);
  EXPECT_TRUE(fs::exists(dir_ / "a"));
  EXPECT_TRUE(fs::exists(dir_ / "c"));
  EXPECT_TRUE(fs::exists(dir_ / "d"));

  // Releasing a lease makes room: that entry goes.
  c.lease.reset();
  auto staging_e = cache->Stage("e", 100);
  ASSERT_TRUE(staging_e.ok()) << staging_e.status().ToString();
  EXPECT_FALSE(fs::exists(dir_ / "c"));
  EXPECT_TRUE(fs::exists(dir_ / "a"));
  EXPECT_TRUE(fs::exists(dir_ / "d"));
  EXPECT_EQ(cache->usage().evictions, 2u);
}

TEST_F(ModelCacheTest, AnEntryVerifyRefusesIsEvictedAndCanBeFetchedAgain) {
  auto cache = Open(1000);
  ASSERT_NE(cache, nullptr);
  Put(*cache, "v1", 100);
  fs::remove(dir_ / "v1" / "1" / "model.onnx");  // e.g. removed by hand

  auto verify = [](const fs::path& dir) { return fs::exists(dir / "1" / "model.onnx"); };
  EXPECT_FALSE(cache->Find("v1", verify).has_value());
  EXPECT_FALSE(fs::exists(dir_ / "v1"));
  ModelCache::Usage usage = cache->usage();
  EXPECT_EQ(usage.entries, 0u);
  EXPECT_EQ(usage.bytes, 0u);
  EXPECT_EQ(usage.pinned, 0u);

  // Fetched again.
  ModelCache::Hit hit = Put(*cache, "v1", 100);
  EXPECT_EQ(hit.dir, dir_ / "v1");
  auto found = cache->Find("v1", verify);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(cache->usage().entries, 1u);
  EXPECT_EQ(cache->usage().bytes, 100u);
}

TEST_F(ModelCacheTest, AnEntryVerifyRefusesStaysWhilePinned) {
  auto cache = Open();
  ASSERT_NE(cache, nullptr);
  ModelCache::Hit held = Put(*cache, "v1", 100);
  EXPECT_FALSE(cache->Find("v1", [](const fs::path&) { return false; }).has_value());
  // A loaded version still uses it.
  EXPECT_TRUE(fs::exists(dir_ / "v1" / "1" / "model.onnx"));
  EXPECT_EQ(cache->usage().pinned, 1u);
  held.lease.reset();
  EXPECT_EQ(cache->usage().pinned, 0u);
}

TEST_F(ModelCacheTest, CommittingAnIdAlreadyPinnedReturnsTheExistingEntry) {
  auto cache = Open(1000);
  ASSERT_NE(cache, nullptr);
  ModelCache::Hit first = Put(*cache, "v1", 100);
  std::ofstream(dir_ / "v1" / "marker") << "first";

  // Fetched a second time at once.
  auto staging = cache->Stage("v1", 100);
  ASSERT_TRUE(staging.ok()) << staging.status().ToString();
  const fs::path staged = (*staging)->dir();
  Fill(staged, 100);
  EXPECT_EQ(cache->usage().bytes, 200u);
  auto second = cache->Commit(std::move(*staging));
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->dir, first.dir);
  EXPECT_TRUE(fs::exists(dir_ / "v1" / "marker"));  // the first's folder, untouched
  EXPECT_FALSE(fs::exists(staged));
  EXPECT_EQ(StagingFolders(), 0u);
  ModelCache::Usage usage = cache->usage();
  EXPECT_EQ(usage.bytes, 100u);
  EXPECT_EQ(usage.entries, 1u);
  EXPECT_EQ(usage.pinned, 1u);

  // Both leases pin it.
  first.lease.reset();
  EXPECT_EQ(cache->usage().pinned, 1u);
  second->lease.reset();
  EXPECT_EQ(cache->usage().pinned, 0u);
}

TEST_F(ModelCacheTest, CommittingAnIdPresentButUnpinnedReplacesIt) {
  auto cache = Open(1000);
  ASSERT_NE(cache, nullptr);
  Put(*cache, "v1", 100);
  std::ofstream(dir_ / "v1" / "marker") << "first";
  ModelCache::Hit hit = Put(*cache, "v1", 200);
  EXPECT_EQ(hit.dir, dir_ / "v1");
  EXPECT_FALSE(fs::exists(dir_ / "v1" / "marker"));
  ModelCache::Usage usage = cache->usage();
  EXPECT_EQ(usage.bytes, 200u);
  EXPECT_EQ(usage.entries, 1u);
}

TEST_F(ModelCacheTest, BadIdsAreRefused) {
  auto cache = Open();
  ASSERT_NE(cache, nullptr);
  for (const std::string& id :
       {std::string(".x"), std::string("a/b"), std::string(""), std::string(201, 'a'),
        std::string(".."), std::string("."), std::string(".staging"), std::string("a b"),
        std::string("a\\b"), std::string("a\0b", 3), std::string("\xc3\xa9")}) {
    SCOPED_TRACE(id);
    auto staging = cache->Stage(id, 1);
    ASSERT_FALSE(staging.ok());
    EXPECT_EQ(staging.status().code(), StatusCode::kInvalidArgument);
    EXPECT_FALSE(cache->Find(id, AcceptAll).has_value());
  }
  EXPECT_FALSE(cache->Find("../" + dir_.filename().string(), AcceptAll).has_value());
  // The longest id, and every character an id may hold.
  EXPECT_TRUE(cache->Stage(std::string(200, 'a'), 1).ok());
  EXPECT_TRUE(cache->Stage("Az09._-x", 1).ok());
  EXPECT_EQ(cache->usage().bytes, 0u);
}

TEST_F(ModelCacheTest, AVersionLargerThanTheCapIsRefused) {
  auto cache = Open(1000);
  ASSERT_NE(cache, nullptr);
  Put(*cache, "v1", 100);
  auto staging = cache->Stage("big", 1001);
  ASSERT_FALSE(staging.ok());
  EXPECT_EQ(staging.status().code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(staging.status().message(), HasSubstr("--model-cache-size"));
  // Nothing was evicted for it.
  EXPECT_TRUE(Has(*cache, "v1"));
  EXPECT_EQ(cache->usage().evictions, 0u);
  EXPECT_TRUE(cache->Stage("fits", 900).ok());
}

TEST_F(ModelCacheTest, NoCapHoldsEverything) {
  auto cache = Open(0);
  ASSERT_NE(cache, nullptr);
  for (int i = 0; i < 5; ++i) Put(*cache, "v" + std::to_string(i), 1000);
  ModelCache::Usage usage = cache->usage();
  EXPECT_EQ(usage.capacity, 0u);
  EXPECT_EQ(usage.entries, 5u);
  EXPECT_EQ(usage.bytes, 5000u);
  EXPECT_EQ(usage.evictions, 0u);
}

}  // namespace
}  // namespace mm
