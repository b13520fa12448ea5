#include "repository/s3/part_md5.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "core/unique_fd.h"

namespace mm::s3_internal {
namespace {

using ::testing::HasSubstr;

// An unlinked temporary file holding `bytes`; the caller holds it in a
// UniqueFd.
int FileWith(const std::string& bytes) {
  std::string path = testing::TempDir() + "part_md5_XXXXXX";
  const int fd = mkstemp(path.data());
  EXPECT_GE(fd, 0);
  unlink(path.c_str());
  EXPECT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  return fd;
}

S3Client::Target TargetOf(int fd, uint64_t size, std::string etag) {
  S3Client::Target t;
  t.object.key = "m/1/model.onnx";
  t.object.size = size;
  t.object.etag = std::move(etag);
  t.fd = fd;
  return t;
}

// Every digest the worker gives until `count` came (no timing: it waits on
// the worker as long as it takes).
std::vector<std::pair<size_t, StatusOr<std::string>>> Digests(Md5Worker& worker, size_t count) {
  std::vector<std::pair<size_t, StatusOr<std::string>>> all;
  while (all.size() < count) {
    worker.Wait(std::chrono::milliseconds(100));
    for (auto& d : worker.TakeDigests()) all.push_back(std::move(d));
  }
  return all;
}

TEST(PartMd5Test, AnEtagIsAnMd5OnlyAs32LowerCaseHexDigits) {
  EXPECT_TRUE(IsMd5Etag("9e107d9d372bb6826bd81d3542a419d6"));
  EXPECT_FALSE(IsMd5Etag("9E107D9D372BB6826BD81D3542A419D6"));
  EXPECT_FALSE(IsMd5Etag("9e107d9d372bb6826bd81d3542a419d6-3"));  // multipart
  EXPECT_FALSE(IsMd5Etag("9e107d9d372bb6826bd81d3542a419d"));
  EXPECT_FALSE(IsMd5Etag(""));
}

TEST(PartMd5Test, SpansCoverTheObjectInPartsOfTheSize) {
  S3Object o;
  o.size = 10;
  const std::vector<Span> spans = SpansOf(o, 4);
  ASSERT_EQ(spans.size(), 3u);
  EXPECT_EQ(spans[0].offset, 0u);
  EXPECT_EQ(spans[1].offset, 4u);
  EXPECT_EQ(spans[2].offset, 8u);
  EXPECT_EQ(spans[2].length, 2u);
  o.size = 0;
  EXPECT_TRUE(SpansOf(o, 4).empty());
}

TEST(PartMd5Test, PartsDoneInAnyOrderGiveTheObjectsMd5) {
  // Parts of 4 bytes: the first is mapped, the others (not page-aligned) read.
  const std::string fox = "The quick brown fox jumps over the lazy dog";
  UniqueFd small(FileWith(fox));
  // Parts of a page: mapped.
  std::string pattern(10000, '\0');
  for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<char>((i * 7) % 251);
  UniqueFd big(FileWith(pattern));
  // A target whose MD5 is not checked (its CRC32 is, say).
  UniqueFd other(FileWith("x"));

  const std::vector<S3Client::Target> targets = {
      TargetOf(small.get(), fox.size(), "9e107d9d372bb6826bd81d3542a419d6"),
      TargetOf(other.get(), 1, "unchecked"),
      TargetOf(big.get(), pattern.size(), "018b2477dacde0f3980e695a1d86f43f")};
  {
    // (The worker keeps a reference to its targets: they outlive it.)
    const std::vector<S3Client::Target> two = {targets[0], targets[1]};
    Md5Worker small_parts(two, {true, false}, 4);
    const size_t parts = SpansOf(targets[0].object, 4).size();  // 11
    for (size_t p = parts; p-- > 0;) small_parts.PartDone(0, p);
    auto digests = Digests(small_parts, 1);
    ASSERT_EQ(digests.size(), 1u);
    EXPECT_EQ(digests[0].first, 0u);
    ASSERT_TRUE(digests[0].second.ok()) << digests[0].second.status().message();
    EXPECT_EQ(*digests[0].second, targets[0].object.etag);
    EXPECT_FALSE(small_parts.busy());
  }
  const std::vector<S3Client::Target> one = {targets[2]};
  Md5Worker page_parts(one, {true}, 4096);
  page_parts.PartDone(0, 1);
  page_parts.PartDone(0, 2);
  EXPECT_TRUE(page_parts.TakeDigests().empty());  // part 0 is missing: no digest can be
  page_parts.PartDone(0, 0);
  auto digests = Digests(page_parts, 1);
  ASSERT_TRUE(digests[0].second.ok()) << digests[0].second.status().message();
  EXPECT_EQ(*digests[0].second, one[0].object.etag);
}

TEST(PartMd5Test, ARestartedObjectIsHashedAfresh) {
  const std::string fox = "The quick brown fox jumps over the lazy dog";
  UniqueFd fd(FileWith(fox));
  const std::vector<S3Client::Target> targets = {
      TargetOf(fd.get(), fox.size(), "9e107d9d372bb6826bd81d3542a419d6")};
  Md5Worker worker(targets, {true}, 16);
  worker.PartDone(0, 0);
  worker.PartDone(0, 1);
  worker.PartDone(0, 2);
  auto first = Digests(worker, 1);
  ASSERT_TRUE(first[0].second.ok());
  // A new download of the object (its digest was taken): hashed from the start.
  worker.Restart(0);
  worker.PartDone(0, 2);
  worker.PartDone(0, 0);
  worker.PartDone(0, 1);
  auto second = Digests(worker, 1);
  ASSERT_TRUE(second[0].second.ok());
  EXPECT_EQ(*second[0].second, *first[0].second);
}

TEST(PartMd5Test, AFileShorterThanItsPartsIsAnErrorNotADigest) {
  UniqueFd fd(FileWith("12345678"));  // 8 of the object's 12 bytes
  const std::vector<S3Client::Target> targets = {
      TargetOf(fd.get(), 12, "00000000000000000000000000000000")};
  Md5Worker worker(targets, {true}, 4);
  for (size_t p = 0; p < 3; ++p) worker.PartDone(0, p);
  auto digests = Digests(worker, 1);
  ASSERT_FALSE(digests[0].second.ok());
  EXPECT_THAT(std::string(digests[0].second.status().message()), HasSubstr("shorter than written"));
}

}  // namespace
}  // namespace mm::s3_internal
