// ReadRequestHead: Beast's parsed head -> HttpRequestView (method, target,
// Inference-Header-Content-Length, Authorization, traceparent), parsed from
// raw bytes as a connection parses them.
#include "http/request_head.h"

#include <gtest/gtest.h>

#include <array>
#include <memory_resource>
#include <optional>
#include <string>

namespace mm {
namespace {

// Parses `raw` (one complete request) as HttpServer does and reads its head.
class RequestHeadTest : public ::testing::Test {
 protected:
  Status Read(std::string_view raw, bool traced = false) {
    arena_.release();
    parser_.reset();
    parser_.emplace(std::piecewise_construct, std::make_tuple(),
                    std::make_tuple(RequestAllocator(&arena_)));
    parser_->eager(true);
    beast::error_code ec;
    parser_->put(net::buffer(raw.data(), raw.size()), ec);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_TRUE(parser_->is_done());
    return ReadRequestHead(parser_->get(), view_, target_, authorization_,
                           traced ? &traceparent_ : nullptr);
  }

  std::array<std::byte, 4096> buffer_;
  std::pmr::monotonic_buffer_resource arena_{buffer_.data(), buffer_.size()};
  std::optional<RequestParser> parser_;
  HttpRequestView view_;
  std::string target_, authorization_, traceparent_;
};

TEST_F(RequestHeadTest, MethodsMapAndOthersAreOther) {
  const std::pair<const char*, HttpMethod> cases[] = {
      {"GET", HttpMethod::kGet},       {"HEAD", HttpMethod::kHead},
      {"POST", HttpMethod::kPost},     {"PUT", HttpMethod::kPut},
      {"DELETE", HttpMethod::kDelete}, {"OPTIONS", HttpMethod::kOther},
      {"PATCH", HttpMethod::kOther},
  };
  for (const auto& [verb, method] : cases) {
    ASSERT_TRUE(
        Read(std::string(verb) + " /v2 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").ok())
        << verb;
    EXPECT_EQ(view_.method, method) << verb;
  }
}

TEST_F(RequestHeadTest, TargetIsCopiedWithItsQuery) {
  ASSERT_TRUE(Read("GET /v2/models/a%20b/ready?x=1 HTTP/1.1\r\nHost: x\r\n\r\n").ok());
  EXPECT_EQ(view_.target, "/v2/models/a%20b/ready?x=1");
  // The view points into the caller's string, not into the parser's arena.
  EXPECT_EQ(view_.target.data(), target_.data());
}

TEST_F(RequestHeadTest, InferenceHeaderLength) {
  ASSERT_TRUE(Read("POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\n"
                   "Inference-Header-Content-Length: 42\r\nContent-Length: 0\r\n\r\n")
                  .ok());
  ASSERT_TRUE(view_.inference_header_length.has_value());
  EXPECT_EQ(*view_.inference_header_length, 42u);
  // The field name is case-insensitive, and 0 is a length.
  ASSERT_TRUE(Read("POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\n"
                   "inference-header-content-length: 0\r\nContent-Length: 0\r\n\r\n")
                  .ok());
  EXPECT_EQ(view_.inference_header_length, 0u);
  // Absent: none, even when the previous request of the connection had one.
  ASSERT_TRUE(
      Read("POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").ok());
  EXPECT_FALSE(view_.inference_header_length.has_value());
}

TEST_F(RequestHeadTest, BadInferenceHeaderLengthIsInvalidArgumentQuotingIt) {
  for (const char* bad : {"-1", "12abc", "abc", "", "1.5", "0x10", "99999999999999999999999"}) {
    Status s = Read(std::string("POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\n"
                                "Inference-Header-Content-Length: ") +
                    bad + "\r\nContent-Length: 0\r\n\r\n");
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << "'" << bad << "'";
    EXPECT_NE(s.message().find("Inference-Header-Content-Length must be a non-negative integer"),
              std::string::npos)
        << s.message();
  }
}

TEST_F(RequestHeadTest, AuthorizationIsCopiedAndClearedWhenAbsent) {
  ASSERT_TRUE(Read("GET /v2/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k-1\r\n\r\n").ok());
  EXPECT_EQ(view_.authorization, "Bearer k-1");
  EXPECT_EQ(view_.authorization.data(), authorization_.data());
  ASSERT_TRUE(Read("GET /v2/models HTTP/1.1\r\nHost: x\r\n\r\n").ok());
  EXPECT_EQ(view_.authorization, "");
}

TEST_F(RequestHeadTest, TraceparentOnlyWhenTraced) {
  const char* raw =
      "GET /v2 HTTP/1.1\r\nHost: x\r\n"
      "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n";
  ASSERT_TRUE(Read(raw, /*traced=*/false).ok());
  EXPECT_EQ(view_.traceparent, "");
  ASSERT_TRUE(Read(raw, /*traced=*/true).ok());
  EXPECT_EQ(view_.traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  ASSERT_TRUE(Read("GET /v2 HTTP/1.1\r\nHost: x\r\n\r\n", /*traced=*/true).ok());
  EXPECT_EQ(view_.traceparent, "");
}

TEST_F(RequestHeadTest, TheFirstOfARepeatedNameCountsAndLookalikesDoNot) {
  // The walk over the fields answers as Beast's lookup would: the first field
  // of a name, whatever its case and wherever it is; a name of the same
  // length but other letters is another header.
  ASSERT_TRUE(Read("POST /v2/models/m/infer HTTP/1.1\r\n"
                   "Inference-Header-Content-Lengtx: 7\r\n"
                   "tracepareny: 00-x\r\n"
                   "AUTHORIZATION: Bearer first\r\nHost: x\r\n"
                   "INFERENCE-HEADER-CONTENT-LENGTH: 5\r\n"
                   "TraceParent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"
                   "Authorization: Bearer second\r\n"
                   "Inference-Header-Content-Length: 9\r\n"
                   "traceparent: 00-other\r\nContent-Length: 0\r\n\r\n",
                   /*traced=*/true)
                  .ok());
  EXPECT_EQ(view_.authorization, "Bearer first");
  EXPECT_EQ(view_.inference_header_length, 5u);
  EXPECT_EQ(view_.traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  // The same fields Beast's own lookups find.
  const auto& head = parser_->get();
  auto value = [&head](beast::string_view name) {
    const auto v = head.find(name)->value();
    return std::string(v.data(), v.size());
  };
  EXPECT_EQ(value("authorization"), "Bearer first");
  EXPECT_EQ(value("inference-header-content-length"), "5");
  EXPECT_EQ(value("TRACEPARENT"), view_.traceparent);
  // The lookalikes alone are not the headers.
  ASSERT_TRUE(Read("POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\n"
                   "Inference-Header-Content-Lengtx: 7\r\ntracepareny: 00-x\r\n"
                   "Content-Length: 0\r\n\r\n",
                   /*traced=*/true)
                  .ok());
  EXPECT_FALSE(view_.inference_header_length.has_value());
  EXPECT_EQ(view_.traceparent, "");
  // A bad first value is refused even when a good one follows.
  EXPECT_EQ(Read("POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\n"
                 "Inference-Header-Content-Length: x\r\n"
                 "Inference-Header-Content-Length: 3\r\nContent-Length: 0\r\n\r\n")
                .code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace mm
