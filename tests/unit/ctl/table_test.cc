#include "ctl/table.h"

#include <gtest/gtest.h>

namespace mm {
namespace {

TEST(DisplayWidthTest, CountsCodePoints) {
  EXPECT_EQ(DisplayWidth(""), 0u);
  EXPECT_EQ(DisplayWidth("abc"), 3u);
  EXPECT_EQ(DisplayWidth("…"), 1u);
  EXPECT_EQ(DisplayWidth("héllo"), 5u);
}

TEST(TruncateToWidthTest, EndsWithEllipsisAndNeverSplitsACodePoint) {
  EXPECT_EQ(TruncateToWidth("abcdef", 10), "abcdef");
  EXPECT_EQ(TruncateToWidth("abcdef", 6), "abcdef");
  EXPECT_EQ(TruncateToWidth("abcdef", 4), "abc…");
  EXPECT_EQ(TruncateToWidth("abcdef", 1), "…");
  EXPECT_EQ(TruncateToWidth("abcdef", 0), "");
  EXPECT_EQ(TruncateToWidth("ééééé", 3), "éé…");
  EXPECT_EQ(DisplayWidth(TruncateToWidth("ééééé", 3)), 3u);
}

TEST(TableTest, AlignsColumnsToTheWidestCell) {
  Table t({{"NAME"}, {"N", Align::kRight}, {"NOTE"}});
  t.AddRow({"a", "1", "x"});
  t.AddRow({"longer", "1234", ""});
  EXPECT_EQ(t.Render(),
            "NAME       N  NOTE\n"
            "a          1  x\n"
            "longer  1234\n");
}

TEST(TableTest, MissingCellsAreEmptyAndControlCharactersBecomeSpaces) {
  Table t({{"A"}, {"B"}});
  t.AddRow({"x\ny\x1b[2J"});
  t.AddRow({"p", "q", "dropped"});
  EXPECT_EQ(t.rows(), 2u);
  EXPECT_EQ(t.Render(),
            "A        B\n"
            "x y [2J\n"
            "p        q\n");
}

TEST(TableTest, ShrinksTheChosenColumnToFit) {
  Table t({{"NAME"}, {"REASON"}});
  t.AddRow({"m", "a very long reason that does not fit"});
  const std::string out = t.Render(20, 1);
  EXPECT_EQ(out,
            "NAME  REASON\n"
            "m     a very long r…\n");
  // Without a width, everything is shown.
  EXPECT_EQ(t.Render(0, 1),
            "NAME  REASON\n"
            "m     a very long reason that does not fit\n");
}

TEST(TableTest, CutsLinesStillTooWide) {
  Table t({{"AAAAAAAAAA"}, {"BBBBBBBBBB"}});
  t.AddRow({"1", "2"});
  // REASON-like column 1 may shrink only to its header's width: the line is cut.
  EXPECT_EQ(t.Render(15, 1),
            "AAAAAAAAAA  BB…\n"
            "1           2\n");
}

TEST(TableTest, RightAlignedColumnsPadOnTheLeftWithUtf8) {
  Table t({{"K"}, {"V", Align::kRight}});
  t.AddRow({"é", "…"});
  t.AddRow({"ab", "xyz"});
  EXPECT_EQ(t.Render(),
            "K     V\n"
            "é     …\n"
            "ab  xyz\n");
}

}  // namespace
}  // namespace mm
