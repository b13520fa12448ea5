// REST over HTTP/2's translation (http/http2_rest.h): a stream's header
// fields into the Router's request, and an HttpReply into the response's
// header fields and body pieces. The frames are the transport's
// (tests/integration/test_http2_rest.py).
#include "http/http2_rest.h"

#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <string>

#include "http/infer_codec.h"

namespace mm::http2_internal {
namespace {

H2Stream RestStream() {
  H2Stream s;
  s.rest = std::make_unique<H2Rest>();
  return s;
}

std::map<std::string, std::string> Fields(const RestHead& head) {
  std::map<std::string, std::string> out;
  for (size_t i = 0; i < head.size; ++i) {
    const nghttp2_nv& f = head.fields[i];
    out[std::string(reinterpret_cast<const char*>(f.name), f.namelen)] =
        std::string(reinterpret_cast<const char*>(f.value), f.valuelen);
  }
  return out;
}

TEST(Http2RestTest, HeaderFieldsBecomeTheRoutersRequest) {
  H2Stream s = RestStream();
  TakeRestHeader(s, ":method", "POST", false, 1 << 20);
  TakeRestHeader(s, ":path", "/v2/models/m/infer?x=1", false, 1 << 20);
  TakeRestHeader(s, "authorization", "Bearer k", false, 1 << 20);
  TakeRestHeader(s, "traceparent", "00-abc", false, 1 << 20);  // not traced: not kept
  TakeRestHeader(s, "inference-header-content-length", "17", false, 1 << 20);
  TakeRestHeader(s, "content-length", "100", false, 1 << 20);
  ASSERT_TRUE(AppendRestBody(*s.rest, "{\"a\":1}", 1 << 20));
  const HttpRequestView view = RestRequestView(s);
  EXPECT_EQ(view.method, HttpMethod::kPost);
  EXPECT_EQ(view.target, "/v2/models/m/infer?x=1");
  EXPECT_EQ(view.authorization, "Bearer k");
  EXPECT_EQ(view.traceparent, "");
  EXPECT_EQ(view.inference_header_length, 17u);
  ASSERT_NE(view.body, nullptr);
  EXPECT_EQ(*view.body, "{\"a\":1}");
  // Sized from content-length, with the JSON parser's padding past it.
  EXPECT_GE(view.body->capacity(), 100 + kRequestBodyPadding);
  EXPECT_TRUE(s.rest->bad_head.ok());
}

TEST(Http2RestTest, AMalformedInferenceHeaderLengthIsKeptAsTheAnswer) {
  H2Stream s = RestStream();
  TakeRestHeader(s, "inference-header-content-length", "-3", false, 1 << 20);
  EXPECT_EQ(s.rest->bad_head.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.rest->bad_head.message().find("'-3'"), std::string::npos);
}

TEST(Http2RestTest, HeadAndOtherMethods) {
  H2Stream s = RestStream();
  TakeRestHeader(s, ":method", "HEAD", false, 1 << 20);
  EXPECT_TRUE(s.rest->head_only);
  EXPECT_EQ(s.rest->method, HttpMethod::kHead);
  TakeRestHeader(s, ":method", "PATCH", false, 1 << 20);
  EXPECT_EQ(s.rest->method, HttpMethod::kOther);
}

TEST(Http2RestTest, TheBodyStopsAtTheLimit) {
  H2Rest rest;
  EXPECT_TRUE(AppendRestBody(rest, std::string(60, 'x'), 100));
  EXPECT_TRUE(AppendRestBody(rest, std::string(40, 'x'), 100));
  EXPECT_FALSE(AppendRestBody(rest, "x", 100));
  EXPECT_EQ(rest.body->size(), 100u);
  // A content-length over the limit reserves nothing.
  H2Stream s = RestStream();
  TakeRestHeader(s, "content-length", "1000000000000", false, 100);
  EXPECT_EQ(s.rest->body, nullptr);
}

TEST(Http2RestTest, TheResponseHeadHasHttp1sFieldsInLowerCase) {
  HttpReply reply;
  reply.status = 429;
  reply.body = "{\"error\":\"slow down\"}";
  reply.retry_after_s = 3;
  reply.headers = "\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store";
  RestHead head;
  RestResponseHead(reply, head);
  auto fields = Fields(head);
  EXPECT_EQ(fields[":status"], "429");
  EXPECT_EQ(fields["content-length"], std::to_string(reply.body.size()));
  EXPECT_EQ(fields["content-type"], "application/json");
  EXPECT_EQ(fields["retry-after"], "3");
  EXPECT_EQ(fields["x-content-type-options"], "nosniff");
  EXPECT_EQ(fields["cache-control"], "no-store");
  EXPECT_EQ(fields.count("inference-header-content-length"), 0u);

  HttpReply binary;
  binary.body = "{}";
  static const std::byte kData[8] = {};
  binary.tail.emplace_back(kData, 8);
  binary.binary_header = true;
  RestResponseHead(binary, head);
  fields = Fields(head);
  EXPECT_EQ(fields["content-length"], "10");
  EXPECT_EQ(fields["content-type"], "application/octet-stream");
  EXPECT_EQ(fields["inference-header-content-length"], "2");

  HttpReply denied;
  denied.status = 401;
  denied.allow = "GET";
  RestResponseHead(denied, head);
  fields = Fields(head);
  EXPECT_EQ(fields["www-authenticate"], "Bearer realm=\"mmserve\"");
  EXPECT_EQ(fields["allow"], "GET");
  EXPECT_EQ(fields["content-length"], "0");
  EXPECT_EQ(fields.count("content-type"), 0u);
}

class Counting final : public DeliveryReceipt::Settler {
 public:
  void Settle(bool delivered) override { settled = delivered ? 1 : 0; }
  int settled = -1;
};

TEST(Http2RestTest, TheBodyIsWrittenWhereItLiesAndTheReceiptRidesTheLastPiece) {
  // The tensors lie in a response's output, which the reply owns.
  auto response = std::make_unique<InferResponse>();
  auto buffer = std::make_shared<ByteBuffer>(10);
  std::memcpy(buffer->bytes.get(), "0123456789", 10);
  AttachBuffer(response->outputs.emplace_back(), buffer);
  const char* tensors = reinterpret_cast<const char*>(buffer->bytes.get());
  buffer.reset();  // the response holds it now
  HttpReply reply;
  reply.body = "{\"h\":1}";
  reply.tail.emplace_back(reinterpret_cast<const std::byte*>(tensors), 4);
  reply.tail.emplace_back(reinterpret_cast<const std::byte*>(tensors + 4), 6);
  reply.tail_owner = std::move(response);
  Counting settler;
  reply.receipt = DeliveryReceipt(&settler);
  std::deque<H2Out> pieces;
  RestBodyPieces(reply, pieces);
  ASSERT_EQ(pieces.size(), 3u);
  EXPECT_EQ(std::string(pieces[0].data(), pieces[0].size()), "{\"h\":1}");
  EXPECT_EQ(pieces[1].data(), tensors);  // not copied
  EXPECT_EQ(pieces[2].data(), tensors + 4);
  EXPECT_EQ(pieces[2].size(), 6u);
  EXPECT_EQ(reply.tail_owner, nullptr);  // the pieces share the response now
  EXPECT_EQ(std::string(pieces[2].data(), pieces[2].size()), "456789");
  EXPECT_EQ(settler.settled, -1);
  pieces[2].receipt.Settle(true);
  EXPECT_EQ(settler.settled, 1);
}

}  // namespace
}  // namespace mm::http2_internal
