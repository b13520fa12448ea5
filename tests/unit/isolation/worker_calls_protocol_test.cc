#include "isolation/worker_calls_protocol.h"

#include <gtest/gtest.h>

#include <bit>
#include <cstring>
#include <string>
#include <vector>

namespace mm {
namespace {

std::span<const std::byte> AsBytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

template <typename T>
void ExpectInvalid(const StatusOr<T>& result, std::initializer_list<std::string_view> needles) {
  ASSERT_FALSE(result.ok()) << "decoded although invalid";
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  for (std::string_view needle : needles) {
    EXPECT_NE(result.status().message().find(needle), std::string::npos)
        << "'" << needle << "' not in: " << result.status().message();
  }
}

template <typename Decode>
void ExpectEveryPrefixRejected(const std::string& payload, Decode decode) {
  for (size_t n = 0; n < payload.size(); ++n) {
    SCOPED_TRACE("prefix of " + std::to_string(n) + " of " + std::to_string(payload.size()));
    auto r = decode(AsBytes(payload).first(n));
    EXPECT_FALSE(r.ok());
  }
}

// BYTES elements serialized (u32 length + bytes each).
std::string Serialized(std::initializer_list<std::string_view> items) {
  std::string out;
  for (std::string_view item : items) {
    const auto n = static_cast<uint32_t>(item.size());
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
    out.append(item);
  }
  return out;
}

struct Fixture {
  std::string floats = std::string(6 * 4, '\x01');
  std::string strings = Serialized({"a", "", "hello"});

  InferCallMessage Infer() const {
    InferCallMessage m;
    m.model_name = "callee";
    m.model_version = "2";
    m.request_id = "req-7";
    m.parameters = {{"timeout", int64_t{1000}}, {"flag", true}, {"s", std::string("x")}};
    m.inputs = {CallTensor{"X", DataType::kFp32, {2, 3}, AsBytes(floats)},
                CallTensor{"TEXT", DataType::kBytes, {3}, AsBytes(strings)},
                CallTensor{"EMPTY", DataType::kInt64, {0, 4}, {}}};
    m.outputs = {"Y", "Z"};
    return m;
  }
};

TEST(WorkerCallsProtocolTest, InferRoundTripsWithTensorsViewingTheFrame) {
  Fixture f;
  const InferCallMessage m = f.Infer();
  ASSERT_TRUE(CheckInferCallFits(m).ok());
  WireParts parts;
  EncodeInferCall(m, parts);
  // The tensor bytes are not copied into the encoding: they are inserts.
  EXPECT_EQ(parts.inserts.size(), 2u);
  EXPECT_EQ(parts.inserts[0].second.data(), AsBytes(f.floats).data());
  const std::string payload = parts.Flatten();
  EXPECT_EQ(payload.size(), parts.size());
  auto back = DecodeInferCall(AsBytes(payload));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, m);
  // The decoded tensors view the payload itself, aligned.
  for (const CallTensor& t : back->inputs) {
    if (!t.data.empty()) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data.data()) % kTensorAlignment, 0u) << t.name;
    }
  }
  const auto* begin = AsBytes(payload).data();
  EXPECT_GE(back->inputs[0].data.data(), begin);
  EXPECT_LE(back->inputs[0].data.data() + back->inputs[0].data.size(), begin + payload.size());
  // Canonical: the decoded message encodes to the same bytes.
  WireParts again;
  EncodeInferCall(*back, again);
  EXPECT_EQ(again.Flatten(), payload);
  // iovecs cover the payload in order.
  std::vector<iovec> iov;
  parts.AppendIovecs(iov);
  std::string joined;
  for (const iovec& v : iov) joined.append(static_cast<const char*>(v.iov_base), v.iov_len);
  EXPECT_EQ(joined, payload);
  ExpectEveryPrefixRejected(payload, [](auto p) { return DecodeInferCall(p); });
}

TEST(WorkerCallsProtocolTest, TensorsAreCheckedAgainstTheirShapeAndFraming) {
  Fixture f;
  InferCallMessage m = f.Infer();
  const std::string five(5, 'x');
  m.inputs = {CallTensor{"X", DataType::kFp32, {2}, AsBytes(five)}};
  WireParts parts;
  EncodeInferCall(m, parts);
  ExpectInvalid(DecodeInferCall(AsBytes(parts.Flatten())),
                {"input 0 'X'", "bytes 5", "2 elements of FP32"});

  // BYTES whose framing does not fill the tensor, or claims more elements.
  const std::string broken = Serialized({"abc"}) + "z";
  m.inputs = {CallTensor{"T", DataType::kBytes, {1}, AsBytes(broken)}};
  EncodeInferCall(m, parts);
  ExpectInvalid(DecodeInferCall(AsBytes(parts.Flatten())), {"input 0 'T'", "not 1 elements"});
  const std::string one = Serialized({"abc"});
  m.inputs = {CallTensor{"T", DataType::kBytes, {2}, AsBytes(one)}};
  EncodeInferCall(m, parts);
  ExpectInvalid(DecodeInferCall(AsBytes(parts.Flatten())), {"not 2 elements"});
  const std::string lying_length = std::string("\xff\xff\xff\x7f", 4) + "ab";
  m.inputs = {CallTensor{"T", DataType::kBytes, {1}, AsBytes(lying_length)}};
  EncodeInferCall(m, parts);
  ExpectInvalid(DecodeInferCall(AsBytes(parts.Flatten())), {"not 1 elements"});

  // Negative dims, unknown dtypes, duplicate names.
  m.inputs = {CallTensor{"X", DataType::kFp32, {-1}, {}}};
  EncodeInferCall(m, parts);
  ExpectInvalid(DecodeInferCall(AsBytes(parts.Flatten())), {"dim 0 is -1"});
  m.inputs = {CallTensor{"X", static_cast<DataType>(200), {1}, {}}};
  EncodeInferCall(m, parts);
  ExpectInvalid(DecodeInferCall(AsBytes(parts.Flatten())), {"dtype 200"});
  m.inputs = {CallTensor{"X", DataType::kInt64, {0}, {}},
              CallTensor{"X", DataType::kInt64, {0}, {}}};
  EncodeInferCall(m, parts);
  ExpectInvalid(DecodeInferCall(AsBytes(parts.Flatten())), {"duplicate name"});
  EXPECT_NE(CheckInferCallFits(m).message().find("appears twice"), std::string::npos);

  // A shape whose element count overflows.
  m.inputs = {CallTensor{"X", DataType::kFp32, {1ll << 40, 1ll << 40}, {}}};
  EncodeInferCall(m, parts);
  ExpectInvalid(DecodeInferCall(AsBytes(parts.Flatten())), {"more than 2^64 elements"});

  // A byte count larger than what remains fails before anything is read.
  std::string payload = parts.Flatten();
  m.inputs = {CallTensor{"X", DataType::kUint8, {4}, AsBytes(five).first(4)}};
  EncodeInferCall(m, parts);
  payload = parts.Flatten();
  payload.resize(payload.size() - 6);  // the tensor's last bytes and the output list gone
  ExpectInvalid(DecodeInferCall(AsBytes(payload)), {"truncated"});
}

TEST(WorkerCallsProtocolTest, RespondAndInferResponseRoundTrip) {
  const std::string data(8, '\x02');
  RespondMessage r;
  r.token = 9;
  r.index = 3;
  r.final = false;
  r.body.has_response = true;
  r.body.parameters = {{"p", 1.5}};
  r.body.outputs = {CallTensor{"OUT", DataType::kInt32, {2}, AsBytes(data)}};
  WireParts parts;
  EncodeRespond(r, parts);
  std::string payload = parts.Flatten();
  auto back = DecodeRespond(AsBytes(payload));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, r);
  ExpectEveryPrefixRejected(payload, [](auto p) { return DecodeRespond(p); });

  // An error response, and the final flag alone.
  r.body = ResponseBody{NotFound("no such thing"), false, {}, {}};
  EncodeRespond(r, parts);
  back = DecodeRespond(AsBytes(parts.Flatten()));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->body.status.code(), StatusCode::kNotFound);
  EXPECT_EQ(back->body.status.message(), "no such thing");
  r.body = ResponseBody{};
  r.final = true;
  EncodeRespond(r, parts);
  back = DecodeRespond(AsBytes(parts.Flatten()));
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->final);
  EXPECT_FALSE(back->body.has_response);

  // Nothing without the final flag is no message; token 0 is no Execute's.
  r.final = false;
  EncodeRespond(r, parts);
  ExpectInvalid(DecodeRespond(AsBytes(parts.Flatten())), {"no response and no final flag"});
  r.final = true;
  r.token = 0;
  EncodeRespond(r, parts);
  ExpectInvalid(DecodeRespond(AsBytes(parts.Flatten())), {"token 0"});
  r.token = 1;
  EncodeRespond(r, parts);
  payload = parts.Flatten();
  payload[12] = 2;  // final
  ExpectInvalid(DecodeRespond(AsBytes(payload)), {"final 2, expected 0 or 1"});

  InferResponseMessage ir;
  ir.final = true;
  ir.body.has_response = true;
  ir.body.outputs = {CallTensor{"OUT", DataType::kInt32, {2}, AsBytes(data)}};
  EncodeInferResponse(ir, parts);
  payload = parts.Flatten();
  auto ir_back = DecodeInferResponse(AsBytes(payload));
  ASSERT_TRUE(ir_back.ok());
  EXPECT_EQ(*ir_back, ir);
  ExpectEveryPrefixRejected(payload, [](auto p) { return DecodeInferResponse(p); });
  payload.push_back('\0');
  ExpectInvalid(DecodeInferResponse(AsBytes(payload)), {"1 trailing bytes"});
}

TEST(WorkerCallsProtocolTest, SmallMessagesRoundTrip) {
  auto ready = DecodeModelReady(AsBytes(EncodeModelReady({"m", "3"})));
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->name, "m");
  EXPECT_EQ(ready->version, "3");
  ExpectInvalid(DecodeModelReady(AsBytes(EncodeModelReady({"", ""}))), {"name: length 0"});

  MetricSpec spec;
  spec.family = "requests_total";
  spec.description = "How many";
  spec.kind = MetricKind::kHistogram;
  spec.labels = {{"a", "1"}, {"b", ""}};
  spec.buckets = {0.5, 1, 2.5};
  const std::string encoded = EncodeMetricCreate(spec);
  auto spec_back = DecodeMetricCreate(AsBytes(encoded));
  ASSERT_TRUE(spec_back.ok()) << spec_back.status().message();
  EXPECT_EQ(spec_back->family, spec.family);
  EXPECT_EQ(spec_back->labels, spec.labels);
  EXPECT_EQ(spec_back->buckets, spec.buckets);
  EXPECT_EQ(spec_back->kind, MetricKind::kHistogram);
  EXPECT_EQ(EncodeMetricCreate(*spec_back), encoded);
  ExpectEveryPrefixRejected(encoded, [](auto p) { return DecodeMetricCreate(p); });
  std::string bad_kind = encoded;
  bad_kind[4 + spec.family.size() + 4 + spec.description.size()] = 3;
  ExpectInvalid(DecodeMetricCreate(AsBytes(bad_kind)), {"kind 3"});

  auto update = DecodeMetricUpdate(AsBytes(EncodeMetricUpdate({7, MetricOp::kSet, -2.5})));
  ASSERT_TRUE(update.ok());
  EXPECT_EQ(update->id, 7u);
  EXPECT_EQ(update->op, MetricOp::kSet);
  EXPECT_EQ(update->value, -2.5);
  std::string bad_op = EncodeMetricUpdate({7, MetricOp::kSet, 1});
  bad_op[8] = 9;
  ExpectInvalid(DecodeMetricUpdate(AsBytes(bad_op)), {"op 9"});

  auto id = DecodeMetricId(AsBytes(EncodeMetricId(42)), "MetricValue");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(*id, 42u);
  ExpectInvalid(DecodeMetricId(AsBytes(std::string(7, '\0')), "MetricValue"),
                {"MetricValue", "truncated"});

  auto reply = DecodeCallReply(AsBytes(EncodeCallReply({OkStatus(), EncodeF64Body(0.25)})));
  ASSERT_TRUE(reply.ok());
  auto value = DecodeF64Body(reply->body);
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(*value, 0.25);
  reply = DecodeCallReply(AsBytes(EncodeCallReply({Unavailable("down"), "ignored"})));
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->status.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(reply->body.empty());
  ExpectInvalid(DecodeBoolBody(std::string(1, '\2')), {"ready 2"});
  ASSERT_TRUE(DecodeU64Body(EncodeU64Body(5)).ok());

  auto ref = DecodeRequestRef(AsBytes(EncodeRequestRef({3, 4})));
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(*ref, (RequestRef{3, 4}));
  ExpectInvalid(DecodeRequestRef(AsBytes(EncodeRequestRef({3, 4}) + "x")), {"IsCancelled"});
}

TEST(WorkerCallsProtocolTest, SendersCheckTheLimits) {
  ResponseBody body;
  body.has_response = true;
  body.outputs = {CallTensor{"", DataType::kFp32, {}, {}}};
  EXPECT_NE(CheckResponseBodyFits(body).message().find("output name of 0 bytes"),
            std::string::npos);
  body.outputs = {CallTensor{"x", DataType::kFp32, std::vector<int64_t>(65, 1), {}}};
  EXPECT_NE(CheckResponseBodyFits(body).message().find("has 65 dims"), std::string::npos);
  MetricSpec spec;
  EXPECT_FALSE(CheckMetricSpecFits(spec).ok());
  spec.family = "f";
  EXPECT_TRUE(CheckMetricSpecFits(spec).ok());
  for (int i = 0; i < 65; ++i) spec.labels["l" + std::to_string(i)] = "v";
  EXPECT_NE(CheckMetricSpecFits(spec).message().find("65 metric labels"), std::string::npos);
}

TEST(WorkerCallsProtocolTest, FrameHeadersBoundCallMessages) {
  std::string h;
  AppendFrameHeader(h, {WorkerMessageType::kInfer, kMaxCallPayloadBytes, 1});
  EXPECT_TRUE(DecodeFrameHeader(AsBytes(h)).ok());
  h.clear();
  AppendFrameHeader(h, {WorkerMessageType::kInfer, kMaxCallPayloadBytes + 1, 1});
  ExpectInvalid(DecodeFrameHeader(AsBytes(h)), {"Infer payload length"});
  h.clear();
  AppendFrameHeader(h, {WorkerMessageType::kModelReady, kMaxPayloadBytes + 1, 1});
  ExpectInvalid(DecodeFrameHeader(AsBytes(h)), {"ModelReady payload length"});
  h.clear();
  AppendFrameHeader(h, {WorkerMessageType::kCalls, 1, 1});
  ExpectInvalid(DecodeFrameHeader(AsBytes(h)), {"Calls payload length 1, expected 0"});
}

}  // namespace
}  // namespace mm
