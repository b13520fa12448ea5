#include "http/json_writer.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

namespace mm {
namespace {

std::string Str(std::string_view s) {
  std::string out;
  AppendJsonString(out, s);
  return out;
}

// Parses `json` (a JSON string literal) back, to prove the writer's output is valid JSON.
std::string ParseString(const std::string& json) {
  simdjson::dom::parser parser;
  std::string_view v;
  EXPECT_EQ(parser.parse(json).get_string().get(v), simdjson::SUCCESS) << json;
  return std::string(v);
}

TEST(JsonWriterTest, EscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(Str("plain"), "\"plain\"");
  EXPECT_EQ(Str(""), "\"\"");
  EXPECT_EQ(Str("a\"b\\c/d"), "\"a\\\"b\\\\c/d\"");
  EXPECT_EQ(Str("\n\r\t\b\f"), "\"\\n\\r\\t\\b\\f\"");
  EXPECT_EQ(Str(std::string("\x01\x1f\x7f", 3)), "\"\\u0001\\u001f\x7f\"");
  EXPECT_EQ(Str(std::string("a\0b", 3)), "\"a\\u0000b\"");
  const std::string tricky = std::string("q\"\\\n\x02 end\0", 11);
  EXPECT_EQ(ParseString(Str(tricky)), tricky);
}

TEST(JsonWriterTest, KeepsValidUtf8AndReplacesInvalidBytes) {
  const std::string utf8 = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80";  // café € 😀
  EXPECT_EQ(Str(utf8), "\"" + utf8 + "\"");
  EXPECT_EQ(ParseString(Str(utf8)), utf8);
  const std::string kFffd = "\xEF\xBF\xBD";
  EXPECT_EQ(Str("\x80"), "\"" + kFffd + "\"");
  EXPECT_EQ(Str("a\xC0\x80z"), "\"a" + kFffd + kFffd + "z\"");                      // overlong NUL
  EXPECT_EQ(Str("\xED\xA0\x80"), "\"" + kFffd + kFffd + kFffd + "\"");              // surrogate
  EXPECT_EQ(Str("\xE2\x82"), "\"" + kFffd + kFffd + "\"");                          // truncated
  EXPECT_EQ(Str("\xF4\x90\x80\x80"), "\"" + kFffd + kFffd + kFffd + kFffd + "\"");  // > U+10FFFF
  for (std::string bad : {"\xFF", "x\xC3", "\xF0\x9F\x98"}) {
    EXPECT_FALSE(IsValidUtf8(bad));
    ParseString(Str(bad));  // still valid JSON
  }
  EXPECT_TRUE(IsValidUtf8(utf8));
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));
}

TEST(JsonWriterTest, Numbers) {
  std::string out;
  AppendJsonInt(out, std::numeric_limits<int64_t>::min());
  out += ' ';
  AppendJsonUint(out, std::numeric_limits<uint64_t>::max());
  out += ' ';
  AppendJsonDouble(out, 0.1);
  out += ' ';
  AppendJsonDouble(out, 1e300);
  out += ' ';
  AppendJsonDouble(out, -0.0);
  out += ' ';
  AppendJsonFloat(out, 0.1f);
  out += ' ';
  AppendJsonFloat(out, 3.0f);
  out += ' ';
  AppendJsonBool(out, true);
  out += ' ';
  AppendJsonBool(out, false);
  EXPECT_EQ(out, "-9223372036854775808 18446744073709551615 0.1 1e+300 -0.0 0.1 3 true false");
}

TEST(JsonWriterTest, DoublesRoundTrip) {
  for (double d :
       {0.1, 1.0 / 3, 6.02214076e23, 5e-324, std::numeric_limits<double>::max(), -123456.789}) {
    std::string out;
    AppendJsonDouble(out, d);
    EXPECT_EQ(std::strtod(out.c_str(), nullptr), d) << out;
  }
}

TEST(JsonWriterTest, LargeIntegralValuesAreScientificNotBareDigits) {
  // Bare digits past 64 bits ("18446744073709552000") are a JSON integer
  // strict readers refuse; found by the generate_request fuzzer.
  std::string out;
  AppendJsonDouble(out, 18446744073709551615.0);
  out += ' ';
  AppendJsonFloat(out, 1e20f);
  out += ' ';
  AppendJsonDouble(out, -1e16);
  out += ' ';
  AppendJsonDouble(out, 123456789012345.0);  // 15 digits stay digits
  EXPECT_EQ(out, "1.8446744073709552e+19 1e+20 -1e+16 123456789012345");
}

TEST(JsonWriterTest, NanAndInfinityAreStrings) {
  std::string out;
  AppendJsonDouble(out, std::nan(""));
  out += ',';
  AppendJsonFloat(out, std::numeric_limits<float>::infinity());
  out += ',';
  AppendJsonDouble(out, -std::numeric_limits<double>::infinity());
  EXPECT_EQ(out, "\"NaN\",\"Infinity\",\"-Infinity\"");
}

TEST(JsonWriterTest, KeyAndParameters) {
  std::string out;
  AppendJsonKey(out, "k\"");
  EXPECT_EQ(out, "\"k\\\"\":");
  Parameters p{{"b", true}, {"d", 2.5}, {"i", int64_t{-3}}, {"s", std::string("x\ny")}};
  out.clear();
  AppendJsonParameters(out, p);
  EXPECT_EQ(out, "{\"b\":true,\"d\":2.5,\"i\":-3,\"s\":\"x\\ny\"}");
  out.clear();
  AppendJsonParameters(out, {});
  EXPECT_EQ(out, "{}");
}

}  // namespace
}  // namespace mm
