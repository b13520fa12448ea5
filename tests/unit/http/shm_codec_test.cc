#include "http/shm_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mm {
namespace {

using ::testing::HasSubstr;

TEST(ShmCodecTest, DecodesRegister) {
  auto r = DecodeShmRegisterRequest(R"({"key":"/region","offset":16,"byte_size":1024})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->key, "/region");
  EXPECT_EQ(r->offset, 16u);
  EXPECT_EQ(r->byte_size, 1024u);
  // The offset is optional; unknown fields are ignored.
  r = DecodeShmRegisterRequest(R"({"byte_size":8,"key":"/k","extra":[1]})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->offset, 0u);
  EXPECT_EQ(r->byte_size, 8u);
}

void ExpectInvalid(std::string_view body, std::string_view part) {
  auto r = DecodeShmRegisterRequest(body);
  ASSERT_FALSE(r.ok()) << body;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << body;
  EXPECT_THAT(r.status().message(), HasSubstr(part)) << body;
}

TEST(ShmCodecTest, RejectsMalformedRegister) {
  ExpectInvalid("", "not valid JSON");
  ExpectInvalid("{", "not valid JSON");
  ExpectInvalid("[]", "must be a JSON object");
  ExpectInvalid(R"({"byte_size":8})", "has no \"key\"");
  ExpectInvalid(R"({"key":"/k"})", "has no \"byte_size\"");
  ExpectInvalid(R"({"key":7,"byte_size":8})", "\"key\" must be a string");
  ExpectInvalid(R"({"key":"/k","byte_size":-1})", "\"byte_size\" must be a non-negative integer");
  ExpectInvalid(R"({"key":"/k","byte_size":8,"offset":1.5})",
                "\"offset\" must be a non-negative integer");
  ExpectInvalid(R"({"key":"/k","byte_size":"8"})", "\"byte_size\" must be a non-negative integer");
}

TEST(ShmCodecTest, EncodesStatus) {
  EXPECT_EQ(EncodeShmStatus({}), "[]");
  std::vector<SharedMemoryManager::RegionInfo> regions = {
      {"in", "/in", 0, 64}, {"o\"ut", "/out", 8, 18446744073709551615u}};
  EXPECT_EQ(EncodeShmStatus(regions),
            R"([{"name":"in","key":"/in","offset":0,"byte_size":64},)"
            R"({"name":"o\"ut","key":"/out","offset":8,"byte_size":18446744073709551615}])");
}

}  // namespace
}  // namespace mm
