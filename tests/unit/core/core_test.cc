#include <gtest/gtest.h>

#include <cstring>

#include "core/bytes_tensor.h"
#include "core/data_type.h"
#include "core/shape.h"

namespace mm {
namespace {

TEST(DataTypeTest, NamesRoundTrip) {
  for (int i = 1; i <= 14; ++i) {
    auto t = static_cast<DataType>(i);
    auto back = DataTypeFromName(DataTypeName(t));
    ASSERT_TRUE(back.has_value()) << DataTypeName(t);
    EXPECT_EQ(*back, t);
  }
  EXPECT_FALSE(DataTypeFromName("FLOAT").has_value());
  EXPECT_FALSE(DataTypeFromName("INVALID").has_value());
  EXPECT_EQ(DataTypeSize(DataType::kFp16), 2u);
  EXPECT_EQ(DataTypeSize(DataType::kInt64), 8u);
  EXPECT_EQ(DataTypeSize(DataType::kBytes), 0u);
  EXPECT_EQ(DataTypeConfigName(DataType::kBytes), "TYPE_STRING");
}

TEST(ShapeTest, ElementCountRejectsNegativeAndOverflow) {
  EXPECT_EQ(*ElementCount(Shape{2, 3, 4}, "x"), 24);
  EXPECT_EQ(*ElementCount(Shape{}, "x"), 1);
  EXPECT_EQ(*ElementCount(Shape{0, 5}, "x"), 0);
  auto neg = ElementCount(Shape{2, -1}, "input 'x'");
  ASSERT_FALSE(neg.ok());
  EXPECT_NE(neg.status().message().find("input 'x'"), std::string::npos);
  EXPECT_FALSE(ElementCount(Shape{1LL << 40, 1LL << 40}, "x").ok());
  EXPECT_EQ(ShapeToString(Shape{-1, 4}, true), "[?,4]");
  EXPECT_TRUE(ShapeMatches(Shape{-1, 4}, Shape{7, 4}));
  EXPECT_FALSE(ShapeMatches(Shape{-1, 4}, Shape{7, 5}));
  EXPECT_FALSE(ShapeMatches(Shape{-1, 4}, Shape{4}));
}

TEST(BytesTensorTest, SplitsAndRejectsBadLayouts) {
  std::string buf;
  AppendBytesElement("ab", buf);
  AppendBytesElement("", buf);
  AppendBytesElement("xyz", buf);
  std::span<const std::byte> data(reinterpret_cast<const std::byte*>(buf.data()), buf.size());
  auto parts = SplitBytesTensor(data, 3, "x");
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  EXPECT_EQ((*parts)[0], "ab");
  EXPECT_EQ((*parts)[1], "");
  EXPECT_EQ((*parts)[2], "xyz");
  EXPECT_FALSE(SplitBytesTensor(data, 2, "x").ok());
  EXPECT_FALSE(SplitBytesTensor(data, 4, "x").ok());
  EXPECT_FALSE(SplitBytesTensor(data.first(data.size() - 1), 3, "x").ok());
  EXPECT_FALSE(SplitBytesTensor(data.first(2), 1, "x").ok());
}

}  // namespace
}  // namespace mm
