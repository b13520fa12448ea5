// gRPC's length-prefixed messages, grpc-timeout and grpc-message, as the
// native HTTP/2 transport will use them: messages split anywhere across DATA
// payloads, limits, and the specification's edge cases.
#include "http/grpc_framing.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <string>
#include <vector>

namespace mm {
namespace {

std::string Framed(const std::vector<std::string>& messages) {
  std::string out;
  for (const std::string& m : messages) {
    AppendGrpcMessagePrefix(out, static_cast<uint32_t>(m.size()));
    out += m;
  }
  return out;
}

// Feeds `bytes` in pieces of `piece` bytes; the messages delivered.
std::vector<std::string> FeedInPieces(GrpcMessageReader& reader, std::string_view bytes,
                                      size_t piece, Status* status) {
  std::vector<std::string> got;
  *status = OkStatus();
  for (size_t i = 0; i < bytes.size() && status->ok(); i += piece) {
    *status = reader.Feed(bytes.substr(i, piece), [&](std::string_view m) {
      got.emplace_back(m);
      return OkStatus();
    });
  }
  return got;
}

TEST(GrpcFramingTest, PrefixIsAFlagAndABigEndianLength) {
  std::string out;
  AppendGrpcMessagePrefix(out, 0x01020304);
  EXPECT_EQ(out, std::string("\x00\x01\x02\x03\x04", 5));
}

TEST(GrpcFramingTest, MessagesComeOutWholeHoweverTheBytesAreSplit) {
  const std::vector<std::string> messages = {"first", "", std::string(1000, 'x'), "last one"};
  const std::string bytes = Framed(messages);
  for (size_t piece : {size_t{1}, size_t{2}, size_t{5}, size_t{7}, size_t{64}, bytes.size()}) {
    GrpcMessageReader reader(1 << 20);
    Status status;
    EXPECT_EQ(FeedInPieces(reader, bytes, piece, &status), messages) << "pieces of " << piece;
    EXPECT_TRUE(status.ok()) << status.message();
    EXPECT_TRUE(reader.Finish().ok());
    EXPECT_EQ(reader.messages(), messages.size());
  }
}

TEST(GrpcFramingTest, AMessageWhollyInOnePieceIsNotCopied) {
  const std::string bytes = Framed({"abc"});
  GrpcMessageReader reader(100);
  const char* seen = nullptr;
  ASSERT_TRUE(reader
                  .Feed(bytes,
                        [&](std::string_view m) {
                          seen = m.data();
                          return OkStatus();
                        })
                  .ok());
  EXPECT_EQ(seen, bytes.data() + kGrpcPrefixBytes);
}

TEST(GrpcFramingTest, TakeHandsOverAGatheredMessageAndCopiesAView) {
  // Gathered from two pieces: the reader's buffer itself is handed over.
  const std::string bytes = Framed({std::string(1000, 'x'), "abc"});
  GrpcMessageReader reader(2000);
  std::vector<std::string> taken;
  std::vector<const char*> seen;
  auto take = [&](std::string_view m) {
    seen.push_back(m.data());
    taken.push_back(reader.Take(m));
    return OkStatus();
  };
  ASSERT_TRUE(reader.Feed(std::string_view(bytes).substr(0, 500), take).ok());
  ASSERT_TRUE(reader.Feed(std::string_view(bytes).substr(500), take).ok());
  ASSERT_EQ(taken.size(), 2u);
  EXPECT_EQ(taken[0], std::string(1000, 'x'));
  EXPECT_EQ(taken[0].data(), seen[0]);  // not copied
  EXPECT_EQ(taken[1], "abc");           // whole in the piece: a copy
  EXPECT_NE(taken[1].data(), seen[1]);
  // The next message gathers into a fresh buffer.
  const std::string more = Framed({std::string(300, 'y')});
  ASSERT_TRUE(reader.Feed(std::string_view(more).substr(0, 100), take).ok());
  ASSERT_TRUE(reader.Feed(std::string_view(more).substr(100), take).ok());
  ASSERT_EQ(taken.size(), 3u);
  EXPECT_EQ(taken[2], std::string(300, 'y'));
  EXPECT_EQ(taken[0], std::string(1000, 'x'));  // untouched
}

TEST(GrpcFramingTest, AnOversizedMessageFailsBeforeItsBytesArrive) {
  GrpcMessageReader reader(10);
  std::string prefix;
  AppendGrpcMessagePrefix(prefix, 11);
  int delivered = 0;
  Status s = reader.Feed(prefix, [&](std::string_view) {
    ++delivered;
    return OkStatus();
  });
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("11 bytes"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("limit of 10 bytes"), std::string::npos) << s.message();
  // The stream stays failed.
  EXPECT_EQ(reader
                .Feed(Framed({"ok"}),
                      [&](std::string_view) {
                        ++delivered;
                        return OkStatus();
                      })
                .code(),
            StatusCode::kResourceExhausted);
  EXPECT_EQ(delivered, 0);
  EXPECT_EQ(reader.Finish().code(), StatusCode::kResourceExhausted);
}

TEST(GrpcFramingTest, CompressedAndMalformedFlagsAreRefused) {
  GrpcMessageReader compressed(100);
  auto none = [](std::string_view) { return OkStatus(); };
  Status s = compressed.Feed(std::string("\x01\x00\x00\x00\x01x", 6), none);
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented);
  EXPECT_NE(s.message().find("without a grpc-encoding"), std::string::npos) << s.message();
  GrpcMessageReader malformed(100);
  s = malformed.Feed(std::string("\x07\x00\x00\x00\x00", 5), none);
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_NE(s.message().find("is 7; expected 0 or 1"), std::string::npos) << s.message();
}

// `text` compressed by zlib: a zlib stream (gRPC's deflate) or a gzip one.
std::string Compress(std::string_view text, bool gzip) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + (gzip ? 16 : 0), 8,
                         Z_DEFAULT_STRATEGY),
            Z_OK);
  std::string out(deflateBound(&zs, text.size()) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  zs.avail_in = static_cast<uInt>(text.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// One message with the compressed flag.
std::string CompressedFrame(const std::string& body) {
  std::string out;
  AppendGrpcMessagePrefix(out, static_cast<uint32_t>(body.size()));
  out[0] = 1;
  return out + body;
}

TEST(GrpcFramingTest, GzipAndDeflateMessagesAreInflated) {
  const std::string text(5000, 'q');
  for (auto [encoding, gzip] :
       {std::pair{GrpcEncoding::kGzip, true}, std::pair{GrpcEncoding::kDeflate, false}}) {
    GrpcMessageReader reader(100000, encoding);
    std::vector<std::string> got;
    // A compressed message and a plain one, split byte by byte.
    const std::string wire = CompressedFrame(Compress(text, gzip)) + Framed({"plain"});
    for (char c : wire) {
      ASSERT_TRUE(reader
                      .Feed(std::string_view(&c, 1),
                            [&](std::string_view m) {
                              got.emplace_back(m);
                              return OkStatus();
                            })
                      .ok());
    }
    EXPECT_TRUE(reader.Finish().ok());
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0], text);
    EXPECT_EQ(got[1], "plain");
  }
  EXPECT_EQ(ParseGrpcEncoding("gzip"), GrpcEncoding::kGzip);
  EXPECT_EQ(ParseGrpcEncoding("deflate"), GrpcEncoding::kDeflate);
  EXPECT_EQ(ParseGrpcEncoding("identity"), GrpcEncoding::kIdentity);
  EXPECT_FALSE(ParseGrpcEncoding("snappy").has_value());
}

TEST(GrpcFramingTest, AMessageThatInflatesPastTheLimitOrNotAtAllFails) {
  auto none = [](std::string_view) { return OkStatus(); };
  // A small message that inflates to a megabyte, over a 64 KiB limit.
  GrpcMessageReader bomb(64 << 10, GrpcEncoding::kGzip);
  Status s = bomb.Feed(CompressedFrame(Compress(std::string(1 << 20, '\0'), true)), none);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("inflates to over"), std::string::npos) << s.message();
  GrpcMessageReader garbage(1000, GrpcEncoding::kDeflate);
  s = garbage.Feed(CompressedFrame("not deflate at all"), none);
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  GrpcMessageReader truncated(100000, GrpcEncoding::kGzip);
  std::string cut = Compress(std::string(3000, 'z'), true);
  cut.resize(cut.size() / 2);
  EXPECT_EQ(truncated.Feed(CompressedFrame(cut), none).code(), StatusCode::kInternal);
}

TEST(GrpcFramingTest, AHandlersFailureStopsTheStream) {
  GrpcMessageReader reader(100);
  int calls = 0;
  Status s = reader.Feed(Framed({"a", "b", "c"}), [&](std::string_view) {
    return ++calls == 2 ? InvalidArgument("second is bad") : OkStatus();
  });
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(calls, 2);
}

TEST(GrpcFramingTest, FinishNamesWhatIsMissing) {
  GrpcMessageReader in_prefix(100);
  auto none = [](std::string_view) { return OkStatus(); };
  ASSERT_TRUE(in_prefix.Feed(std::string("\x00\x00", 2), none).ok());
  EXPECT_NE(in_prefix.Finish().message().find("prefix (2 of 5 bytes)"), std::string::npos);
  GrpcMessageReader in_message(100);
  const std::string bytes = Framed({"abcdef"});
  ASSERT_TRUE(in_message.Feed(std::string_view(bytes).substr(0, 8), none).ok());
  EXPECT_NE(in_message.Finish().message().find("(3 of 6 bytes)"), std::string::npos)
      << in_message.Finish().message();
}

TEST(GrpcFramingTest, TimeoutUnitsAndLimits) {
  using std::chrono::nanoseconds;
  EXPECT_EQ(*ParseGrpcTimeout("1H"), std::chrono::hours(1));
  EXPECT_EQ(*ParseGrpcTimeout("2M"), std::chrono::minutes(2));
  EXPECT_EQ(*ParseGrpcTimeout("3S"), std::chrono::seconds(3));
  EXPECT_EQ(*ParseGrpcTimeout("250m"), std::chrono::milliseconds(250));
  EXPECT_EQ(*ParseGrpcTimeout("7u"), std::chrono::microseconds(7));
  EXPECT_EQ(*ParseGrpcTimeout("99999999n"), nanoseconds(99999999));
  EXPECT_EQ(*ParseGrpcTimeout("0m"), nanoseconds(0));
  EXPECT_EQ(*ParseGrpcTimeout("99999999H"), nanoseconds::max());  // saturates
  for (const char* bad : {"", "m", "10", "123456789m", "1x", "-1S", "1.5S", " 1S", "1s"}) {
    auto t = ParseGrpcTimeout(bad);
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(t.status().message().find("expected 1 to 8 digits and a unit"), std::string::npos);
  }
}

TEST(GrpcFramingTest, MessagesArePercentEncodedBothWays) {
  EXPECT_EQ(PercentEncodeGrpcMessage("model 'x': 50% done"), "model 'x': 50%25 done");
  EXPECT_EQ(PercentEncodeGrpcMessage("line\nnext"), "line%0Anext");
  EXPECT_EQ(PercentEncodeGrpcMessage("caf\xc3\xa9"), "caf%C3%A9");
  for (const std::string& s :
       {std::string("plain"), std::string("a%b\r\n\x7f\xff"), std::string("\0x", 2)}) {
    EXPECT_EQ(PercentDecodeGrpcMessage(PercentEncodeGrpcMessage(s)), s);
  }
  // A malformed escape is kept as it is.
  EXPECT_EQ(PercentDecodeGrpcMessage("100%"), "100%");
  EXPECT_EQ(PercentDecodeGrpcMessage("%zz%4"), "%zz%4");
  EXPECT_EQ(PercentDecodeGrpcMessage("%41%62"), "Ab");
}

}  // namespace
}  // namespace mm
