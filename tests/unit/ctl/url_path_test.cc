#include "ctl/url_path.h"

#include <gtest/gtest.h>

namespace mm {
namespace {

TEST(PercentEncodeSegmentTest, KeepsUnreservedAndEncodesTheRest) {
  EXPECT_EQ(PercentEncodeSegment("add_sub-1.0~x"), "add_sub-1.0~x");
  EXPECT_EQ(PercentEncodeSegment("a b/c%d?e#f"), "a%20b%2Fc%25d%3Fe%23f");
  EXPECT_EQ(PercentEncodeSegment("é"), "%C3%A9");
  EXPECT_EQ(PercentEncodeSegment(std::string_view("\0\xff", 2)), "%00%FF");
  EXPECT_EQ(PercentEncodeSegment(""), "");
}

TEST(ModelPathTest, BuildsTheApiPaths) {
  EXPECT_EQ(ModelPath("add_sub", "", ""), "/v2/models/add_sub");
  EXPECT_EQ(ModelPath("add_sub", "", "stats"), "/v2/models/add_sub/stats");
  EXPECT_EQ(ModelPath("my model", "2", "infer"), "/v2/models/my%20model/versions/2/infer");
  EXPECT_EQ(RepositoryModelPath("team/a", "load"), "/v2/repository/models/team%2Fa/load");
  EXPECT_EQ(RepositoryModelPath("m", "unload"), "/v2/repository/models/m/unload");
}

}  // namespace
}  // namespace mm
