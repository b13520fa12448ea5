#include "observability/trace_context.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

namespace mm {
namespace {

constexpr char kSpecExample[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(TraceContextTest, ParsesTheSpecExample) {
  auto ctx = ParseTraceparent(kSpecExample);
  ASSERT_TRUE(ctx.has_value());
  EXPECT_EQ(ToHex(ctx->trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(ToHex(ctx->span_id), "00f067aa0ba902b7");
  EXPECT_EQ(ctx->flags, 1);
  EXPECT_TRUE(ctx->sampled());

  auto unsampled = ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  ASSERT_TRUE(unsampled.has_value());
  EXPECT_FALSE(unsampled->sampled());
}

TEST(TraceContextTest, KeepsVersion00FlagsWhole) {
  auto ctx = ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03");
  ASSERT_TRUE(ctx.has_value());
  EXPECT_EQ(ctx->flags, 3);
  EXPECT_TRUE(ctx->sampled());
  ctx = ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fe");
  ASSERT_TRUE(ctx.has_value());
  EXPECT_FALSE(ctx->sampled());
}

TEST(TraceContextTest, TrimsOptionalWhitespace) {
  auto ctx = ParseTraceparent(std::string(" \t") + kSpecExample + "\t  ");
  ASSERT_TRUE(ctx.has_value());
  EXPECT_EQ(FormatTraceparent(*ctx), kSpecExample);
}

TEST(TraceContextTest, RejectsInvalidValues) {
  const std::vector<std::string> invalid = {
      "",
      "00",
      // uppercase hex is not allowed anywhere
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
      "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
      // non-hex characters
      "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
      "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-x1",
      // version ff is forbidden
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      // all-zero ids
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
      // version 00 is exactly 55 characters
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-010",
      // wrong separators or field lengths
      "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
      "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
      "000-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      // a higher version must be followed by '-' or end after the flags
      "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
      "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
      // whitespace inside, or other than OWS around
      "00-4bf92f3577b34da6a3ce929d0e0e4736 -00f067aa0ba902b7-01",
      std::string("\n") + kSpecExample,
  };
  for (const std::string& value : invalid) {
    EXPECT_FALSE(ParseTraceparent(value).has_value()) << "'" << value << "'";
  }
}

TEST(TraceContextTest, AcceptsHigherVersionsPerTheSpec) {
  auto ctx = ParseTraceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  ASSERT_TRUE(ctx.has_value());
  EXPECT_TRUE(ctx->sampled());
  ctx = ParseTraceparent(
      "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like");
  ASSERT_TRUE(ctx.has_value());
  EXPECT_EQ(ToHex(ctx->trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(ToHex(ctx->span_id), "00f067aa0ba902b7");
  // Only the sampled bit of an unknown version's flags is understood.
  ctx = ParseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff-");
  ASSERT_TRUE(ctx.has_value());
  EXPECT_EQ(ctx->flags, 1);
  // A higher version is re-sent as version 00.
  EXPECT_EQ(FormatTraceparent(*ctx), kSpecExample);
}

TEST(TraceContextTest, FormatAndParseRoundTrip) {
  for (int i = 0; i < 100; ++i) {
    TraceContext ctx = NewRootContext(i % 2 == 0);
    const std::string header = FormatTraceparent(ctx);
    ASSERT_EQ(header.size(), 55u);
    EXPECT_EQ(header.substr(0, 3), "00-");
    auto parsed = ParseTraceparent(header);
    ASSERT_TRUE(parsed.has_value()) << header;
    EXPECT_EQ(*parsed, ctx);
    EXPECT_EQ(parsed->sampled(), i % 2 == 0);
  }
}

TEST(TraceContextTest, HexIsLowercaseTwoDigitsPerByte) {
  std::array<uint8_t, 4> bytes = {0x00, 0x0f, 0xa0, 0xff};
  EXPECT_EQ(ToHex(bytes), "000fa0ff");
  std::string out = "x";
  AppendHex(out, bytes.data(), 2);
  EXPECT_EQ(out, "x000f");
}

TEST(TraceContextTest, IdsAreNeverZeroAndDistinct) {
  std::set<std::string> trace_ids;
  std::set<std::string> span_ids;
  constexpr int kIds = 10000;
  for (int i = 0; i < kIds; ++i) {
    TraceContext ctx = NewRootContext(true);
    EXPECT_FALSE(IsZeroId(ctx.trace_id));
    EXPECT_FALSE(IsZeroId(ctx.span_id));
    trace_ids.insert(ToHex(ctx.trace_id));
    auto span = NewSpanId();
    EXPECT_FALSE(IsZeroId(span));
    span_ids.insert(ToHex(span));
  }
  EXPECT_EQ(trace_ids.size(), static_cast<size_t>(kIds));
  EXPECT_EQ(span_ids.size(), static_cast<size_t>(kIds));
}

TEST(TraceContextTest, ThreadsDrawDifferentIds) {
  constexpr int kThreads = 4;
  constexpr int kIds = 1000;
  std::vector<std::vector<std::string>> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&ids, t] {
      for (int i = 0; i < kIds; ++i) ids[t].push_back(ToHex(NewTraceId()));
    });
  }
  for (auto& thread : threads) thread.join();
  std::set<std::string> all;
  for (const auto& v : ids) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kIds));
}

}  // namespace
}  // namespace mm
