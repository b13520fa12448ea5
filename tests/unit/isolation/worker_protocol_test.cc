#include "isolation/worker_protocol.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace mm {
namespace {

std::span<const std::byte> AsBytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// Overwrites `size` bytes at `at` with `v`, little-endian.
void Poke(std::string& s, size_t at, uint64_t v, size_t size) {
  for (size_t i = 0; i < size; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

void PutU32(std::string& s, uint32_t v) {
  s.append(4, '\0');
  Poke(s, s.size() - 4, v, 4);
}

constexpr uint64_t kRegion = 1 << 20;
constexpr uint64_t kOneRegionSizes[1] = {kRegion};
constexpr std::span<const uint64_t> kOneRegion(kOneRegionSizes);

// Expects `result` to be INVALID_ARGUMENT with every one of `needles` in its message.
template <typename T>
void ExpectInvalid(const StatusOr<T>& result, std::initializer_list<std::string_view> needles) {
  ASSERT_FALSE(result.ok()) << "decoded although invalid";
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  for (std::string_view needle : needles) {
    EXPECT_NE(result.status().message().find(needle), std::string::npos)
        << "'" << needle << "' not in: " << result.status().message();
  }
}

// Every strict prefix of a valid payload must be rejected as truncated.
template <typename Decode>
void ExpectEveryPrefixTruncated(const std::string& payload, Decode decode) {
  for (size_t n = 0; n < payload.size(); ++n) {
    SCOPED_TRACE("prefix of " + std::to_string(n) + " of " + std::to_string(payload.size()));
    ExpectInvalid(decode(AsBytes(payload).first(n)), {"truncated"});
  }
}

ShmTensor Fp32(std::string name, std::vector<int64_t> shape, uint64_t offset = 0) {
  uint64_t count = 1;
  for (int64_t d : shape) count *= static_cast<uint64_t>(d);
  return ShmTensor{std::move(name), DataType::kFp32, std::move(shape), offset, count * 4};
}

// The first (and, unless more are added, only) request of `q`.
ExecuteItem& R(ExecuteRequest& q) {
  if (q.requests.empty()) q.requests.emplace_back();
  return q.requests[0];
}

ExecuteRequest OneInput(ShmTensor t) {
  ExecuteRequest q;
  R(q).inputs.push_back(std::move(t));
  return q;
}

// A reply of one result: `status` for the whole (not OK: `needed`), or OK
// with `outputs`.
ExecuteReply Reply(Status status, std::vector<ShmTensor> outputs, uint64_t needed = 0) {
  ExecuteReply reply;
  reply.status = std::move(status);
  reply.results.push_back({OkStatus(), std::move(outputs)});
  reply.region_bytes_needed = needed;
  return reply;
}

// Region 0 of `region` bytes, the only one mapped.
StatusOr<ExecuteRequest> DecodeExecuteIn(const ExecuteRequest& q, uint64_t region = kRegion) {
  const std::string payload = EncodeExecute(q);
  const uint64_t sizes[1] = {region};
  return DecodeExecute(AsBytes(payload), sizes);
}

// ------------------------------------------------------------------ frames

TEST(WorkerFrameTest, HeaderRoundTripsForEveryType) {
  for (auto type :
       {WorkerMessageType::kLoad, WorkerMessageType::kUnload, WorkerMessageType::kExecute,
        WorkerMessageType::kHealth, WorkerMessageType::kStats, WorkerMessageType::kRegion,
        WorkerMessageType::kMailbox, WorkerMessageType::kReply}) {
    const bool empty = type == WorkerMessageType::kUnload || type == WorkerMessageType::kHealth ||
                       type == WorkerMessageType::kStats;
    const uint32_t bytes_of_payload = empty                                 ? 0u
                                      : type == WorkerMessageType::kRegion  ? 12u
                                      : type == WorkerMessageType::kMailbox ? 8u
                                                                            : kMaxPayloadBytes;
    const FrameHeader h{type, bytes_of_payload, 0xDEADBEEF};
    std::string bytes;
    AppendFrameHeader(bytes, h);
    ASSERT_EQ(bytes.size(), kFrameHeaderBytes);
    EXPECT_EQ(bytes.substr(0, 4), "MMWK");
    auto back = DecodeFrameHeader(AsBytes(bytes));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(back->type, type);
    EXPECT_EQ(back->payload_bytes, h.payload_bytes);
    EXPECT_EQ(back->request_id, 0xDEADBEEFu);
  }
}

TEST(WorkerFrameTest, FramePrependsTheHeader) {
  const std::string payload = EncodeStatusReply({OkStatus()});
  const std::string frame = Frame(WorkerMessageType::kReply, 7, payload);
  ASSERT_EQ(frame.size(), kFrameHeaderBytes + payload.size());
  EXPECT_EQ(frame.substr(kFrameHeaderBytes), payload);
  auto h = DecodeFrameHeader(AsBytes(frame).first(kFrameHeaderBytes));
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->type, WorkerMessageType::kReply);
  EXPECT_EQ(h->payload_bytes, payload.size());
  EXPECT_EQ(h->request_id, 7u);
}

TEST(WorkerFrameTest, RejectsBadHeaders) {
  std::string good;
  AppendFrameHeader(good, {WorkerMessageType::kExecute, 10, 1});

  ExpectInvalid(DecodeFrameHeader(AsBytes(good).first(15)), {"15 bytes", "expected 16"});
  ExpectInvalid(DecodeFrameHeader(AsBytes(good + "x")), {"17 bytes", "expected 16"});

  std::string magic = good;
  magic[0] = 'X';
  ExpectInvalid(DecodeFrameHeader(AsBytes(magic)), {"magic", "0x4B574D4D"});

  std::string version = good;
  Poke(version, 4, 1, 2);
  ExpectInvalid(DecodeFrameHeader(AsBytes(version)), {"protocol version 1", "expected 4"});

  for (uint16_t type : {0, 9, 19, 28, 99, 103, 0xFFFF}) {
    std::string bad = good;
    Poke(bad, 6, type, 2);
    ExpectInvalid(DecodeFrameHeader(AsBytes(bad)),
                  {"message type " + std::to_string(type), "unknown"});
  }

  std::string oversize = good;
  Poke(oversize, 8, uint64_t{kMaxPayloadBytes} + 1, 4);
  ExpectInvalid(DecodeFrameHeader(AsBytes(oversize)),
                {"Execute payload length 16777217", "maximum of 16777216"});
  Poke(oversize, 8, 0xFFFFFFFF, 4);
  ExpectInvalid(DecodeFrameHeader(AsBytes(oversize)), {"payload length 4294967295"});

  for (auto type :
       {WorkerMessageType::kUnload, WorkerMessageType::kHealth, WorkerMessageType::kStats}) {
    std::string bytes;
    AppendFrameHeader(bytes, {type, 1, 1});
    ExpectInvalid(DecodeFrameHeader(AsBytes(bytes)),
                  {std::string(WorkerMessageTypeName(type)), "payload length 1, expected 0"});
  }
  for (uint32_t n : {0u, 8u, 13u}) {
    std::string bytes;
    AppendFrameHeader(bytes, {WorkerMessageType::kRegion, n, 1});
    ExpectInvalid(DecodeFrameHeader(AsBytes(bytes)),
                  {"Region payload length " + std::to_string(n), "expected 12"});
  }
  for (uint32_t n : {0u, 7u, 12u}) {
    std::string bytes;
    AppendFrameHeader(bytes, {WorkerMessageType::kMailbox, n, 1});
    ExpectInvalid(DecodeFrameHeader(AsBytes(bytes)),
                  {"Mailbox payload length " + std::to_string(n), "expected 8"});
  }
}

// ------------------------------------------------------------------ Region

TEST(WorkerRegionTest, RoundTripsAndRejectsBadRegions) {
  for (RegionMessage region : {RegionMessage{0, 1}, RegionMessage{kMaxRegions - 1, kRegion},
                               RegionMessage{3, std::numeric_limits<uint64_t>::max()}}) {
    const std::string payload = EncodeRegion(region);
    EXPECT_EQ(payload.size(), 12u);
    auto back = DecodeRegion(AsBytes(payload));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, region);
  }
  ExpectInvalid(DecodeRegion(AsBytes(EncodeRegion({0, 0}))), {"Region", "bytes 0"});
  ExpectInvalid(DecodeRegion(AsBytes(EncodeRegion({kMaxRegions, 1}))),
                {"Region", "id 8, expected below 8"});
  ExpectInvalid(DecodeRegion(AsBytes(EncodeRegion({0, 1}) + "x")), {"1 trailing bytes"});
  ExpectEveryPrefixTruncated(EncodeRegion({1, kRegion}),
                             [](std::span<const std::byte> p) { return DecodeRegion(p); });
}

TEST(WorkerMailboxMessageTest, RoundTripsAndRejectsAnEmptyMailbox) {
  for (uint64_t bytes : {uint64_t{1}, uint64_t{65536}, std::numeric_limits<uint64_t>::max()}) {
    const std::string payload = EncodeMailbox(bytes);
    EXPECT_EQ(payload.size(), 8u);
    auto back = DecodeMailbox(AsBytes(payload));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, bytes);
  }
  ExpectInvalid(DecodeMailbox(AsBytes(EncodeMailbox(0))), {"Mailbox", "bytes 0"});
  ExpectInvalid(DecodeMailbox(AsBytes(EncodeMailbox(1) + "x")), {"1 trailing bytes"});
  ExpectEveryPrefixTruncated(EncodeMailbox(65536),
                             [](std::span<const std::byte> p) { return DecodeMailbox(p); });
}

// -------------------------------------------------------------------- Load

LoadRequest SomeLoad() {
  return {"resnet",
          3,
          "/models/resnet/3",
          std::string("\x08\x01\x12\x00", 4),
          1 << 30,
          "onnxruntime_onnx",
          true,
          7};
}

TEST(WorkerLoadTest, RoundTrips) {
  LoadRequest max_sizes{std::string(kMaxStringBytes, 'n'),
                        std::numeric_limits<int64_t>::max(),
                        std::string(kMaxModelDirBytes, 'd'),
                        std::string(kMaxConfigBytes, '\0'),
                        std::numeric_limits<uint64_t>::max(),
                        std::string(kMaxPlatformBytes, 'p'),
                        true,
                        std::numeric_limits<uint32_t>::max()};
  LoadRequest empty_config{"m", 1, "/", "", 0, "", false};
  for (const LoadRequest& q : {SomeLoad(), max_sizes, empty_config}) {
    const std::string payload = EncodeLoad(q);
    EXPECT_LE(payload.size(), kMaxPayloadBytes);
    auto back = DecodeLoad(AsBytes(payload));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, q);
  }
}

TEST(WorkerLoadTest, RejectsEveryTruncation) {
  ExpectEveryPrefixTruncated(EncodeLoad(SomeLoad()),
                             [](std::span<const std::byte> p) { return DecodeLoad(p); });
}

TEST(WorkerLoadTest, RejectsOutOfRangeFields) {
  auto decode = [](LoadRequest q) {
    const std::string payload = EncodeLoad(q);
    return DecodeLoad(AsBytes(payload));
  };
  LoadRequest q = SomeLoad();
  q.model_name = "";
  ExpectInvalid(decode(q), {"worker message Load", "model_name", "length 0"});
  q = SomeLoad();
  q.model_name = std::string(kMaxStringBytes + 1, 'n');
  ExpectInvalid(decode(q), {"model_name", "length 65537 exceeds the maximum of 65536"});
  q = SomeLoad();
  q.version = 0;
  ExpectInvalid(decode(q), {"version 0, expected >= 1"});
  q = SomeLoad();
  q.platform = std::string(kMaxPlatformBytes + 1, 'p');
  ExpectInvalid(decode(q), {"platform", "length 257 exceeds the maximum of 256"});
  std::string two = EncodeLoad(SomeLoad());
  two[two.size() - 5] = 2;  // has_config, before the u32 instance_index
  ExpectInvalid(DecodeLoad(AsBytes(two)), {"has_config 2, expected 0 or 1"});
  q.version = -5;
  ExpectInvalid(decode(q), {"version -5"});
  q = SomeLoad();
  q.model_dir = "";
  ExpectInvalid(decode(q), {"model_dir", "length 0"});
  q.model_dir = std::string(kMaxModelDirBytes + 1, 'd');
  ExpectInvalid(decode(q), {"model_dir", "exceeds the maximum of 4096"});
  q.model_dir = std::string("/a\0b", 4);
  ExpectInvalid(decode(q), {"model_dir contains a NUL byte"});
  q = SomeLoad();
  q.config = std::string(kMaxConfigBytes + 1, 'c');
  ExpectInvalid(decode(q), {"config", "exceeds the maximum of 4194304"});

  std::string trailing = EncodeLoad(SomeLoad()) + "zz";
  ExpectInvalid(DecodeLoad(AsBytes(trailing)), {"Load", "2 trailing bytes"});

  // A length that claims more than the payload holds.
  std::string lying;
  PutU32(lying, 1000);
  lying += "abc";
  ExpectInvalid(DecodeLoad(AsBytes(lying)), {"model_name", "truncated", "3 remain"});
}

// ----------------------------------------------------------------- Execute

TEST(WorkerExecuteTest, RoundTrips) {
  ExecuteRequest empty;
  R(empty);  // one request with nothing in it
  ExecuteRequest full;
  R(full).inputs.push_back(Fp32("x", {2, 3}, 64));
  R(full).inputs.push_back(Fp32("scalar", {}, 0));  // rank 0: one element
  R(full).inputs.push_back({"text", DataType::kBytes, {3}, 100, 17});
  R(full).inputs.push_back({"nothing", DataType::kBytes, {0}, kRegion, 0});  // at the region's end
  R(full).inputs.push_back({"zero", DataType::kInt64, {0, 1LL << 62, 1LL << 62}, 0, 0});
  R(full).inputs.push_back(
      Fp32(std::string(kMaxTensorNameBytes, 'n'), std::vector<int64_t>(16, 1)));
  R(full).outputs = {"y", std::string(kMaxTensorNameBytes, 'o')};
  ExecuteRequest every_dtype;
  for (int d = 1; d <= 14; ++d) {
    const auto dtype = static_cast<DataType>(d);
    R(every_dtype)
        .inputs.push_back(
            {std::string(DataTypeName(dtype)), dtype, {5}, 0, 5 * DataTypeSize(dtype)});
  }
  for (const ExecuteRequest& q : {empty, full, every_dtype}) {
    auto back = DecodeExecuteIn(q);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, q);
  }
}

TEST(WorkerExecuteTest, RoundTripsTheMaximalMessage) {
  ExecuteRequest q;
  for (size_t i = 0; i < kMaxTensors; ++i) {
    std::string name = std::to_string(i);
    name.resize(kMaxTensorNameBytes, '.');
    R(q).inputs.push_back(Fp32(name, std::vector<int64_t>(kMaxRank, 1), i * 4));
    R(q).outputs.push_back(name);
  }
  const std::string payload = EncodeExecute(q);
  EXPECT_LE(payload.size(), kMaxPayloadBytes);
  auto back = DecodeExecute(AsBytes(payload), kOneRegion);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, q);
}

TEST(WorkerExecuteTest, RejectsEveryTruncation) {
  ExecuteRequest q;
  R(q).inputs = {Fp32("x", {2, 3}, 8), {"s", DataType::kBytes, {}, 0, 9}};
  R(q).outputs = {"y", "z"};
  ExpectEveryPrefixTruncated(
      EncodeExecute(q), [](std::span<const std::byte> p) { return DecodeExecute(p, kOneRegion); });
}

TEST(WorkerExecuteTest, RejectsBadShapesAndTypes) {
  ExecuteRequest q;
  R(q).inputs = {Fp32("a", {1}), Fp32("b", {1}), Fp32("x", std::vector<int64_t>(70, 1))};
  ExpectInvalid(DecodeExecuteIn(q), {"worker message Execute: input 2 'x': rank 70 exceeds the "
                                     "maximum of 64"});
  ExpectInvalid(DecodeExecuteIn(OneInput(Fp32("x", std::vector<int64_t>(65, 1)))),
                {"rank 65 exceeds"});
  // Rank 17 (issue 17, defect 12: valid in the server's process, once the
  // end of a worker) travels.
  EXPECT_TRUE(DecodeExecuteIn(OneInput(Fp32("x", std::vector<int64_t>(17, 1)))).ok());

  ExpectInvalid(DecodeExecuteIn(OneInput({"x", DataType::kFp32, {2, -3}, 0, 0})),
                {"input 0 'x'", "dim 1 is -3, expected >= 0"});

  for (uint32_t dtype : {0u, 15u, 255u, 256u, 0xFFFFFFFFu}) {
    ExpectInvalid(DecodeExecuteIn(OneInput({"x", static_cast<DataType>(dtype), {1}, 0, 4})),
                  {"input 0 'x'", "dtype " + std::to_string(dtype), "not a known DataType"});
  }

  ExpectInvalid(DecodeExecuteIn(OneInput({"x", DataType::kFp32, {2, 3}, 0, 23})),
                {"input 0 'x'", "bytes 23, expected 24", "FP32"});
  ExpectInvalid(DecodeExecuteIn(OneInput({"x", DataType::kInt64, {}, 0, 0})),
                {"bytes 0, expected 8"});
  // 2^31 x 2^31 elements of 4 bytes: 2^64 bytes, one past what fits.
  ExpectInvalid(DecodeExecuteIn(OneInput({"x", DataType::kFp32, {1LL << 31, 1LL << 31}, 0, 0}),
                                std::numeric_limits<uint64_t>::max()),
                {"input 0 'x'", "needs more than 2^64 bytes"});
  ExpectInvalid(DecodeExecuteIn(OneInput({"x", DataType::kUint8, {1LL << 62, 1LL << 62}, 0, 0}),
                                std::numeric_limits<uint64_t>::max()),
                {"needs more than 2^64 bytes"});
}

TEST(WorkerExecuteTest, RejectsTensorsOutsideTheRegion) {
  ExpectInvalid(DecodeExecuteIn(OneInput(Fp32("x", {4}, kRegion - 15))),
                {"input 0 'x'", "offset 1048561 + bytes 16", "region of 1048576 bytes"});
  ExpectInvalid(DecodeExecuteIn(OneInput({"x", DataType::kBytes, {1}, kRegion + 1, 0})),
                {"offset 1048577 + bytes 0"});
  ExpectInvalid(DecodeExecuteIn(OneInput({"x", DataType::kBytes, {1}, 0, kRegion + 1})),
                {"bytes 1048577 exceed"});
  // offset + bytes wraps around 2^64: still rejected, even in the largest region.
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  ExpectInvalid(DecodeExecuteIn(OneInput({"x", DataType::kBytes, {1}, max - 1, 4}), max),
                {"input 0 'x'", "exceed the shared-memory region"});
  ExpectInvalid(DecodeExecuteIn(OneInput({"x", DataType::kBytes, {1}, 8, max}), max),
                {"exceed the shared-memory region"});
  ExpectInvalid(DecodeExecuteIn(OneInput(Fp32("x", {1})), 0), {"region 0 is not mapped"});
  ExecuteRequest elsewhere = OneInput(Fp32("x", {1}));
  elsewhere.region = 1;  // only region 0 is mapped
  ExpectInvalid(DecodeExecuteIn(elsewhere), {"region 1 is not mapped (1 region slots)"});
  const std::string payload = EncodeExecute(elsewhere);
  const uint64_t two[2] = {0, 64};
  auto in_one = DecodeExecute(AsBytes(payload), two);
  ASSERT_TRUE(in_one.ok()) << in_one.status().message();
  EXPECT_EQ(in_one->region, 1u);
  EXPECT_TRUE(DecodeExecuteIn(OneInput(Fp32("x", {1}, kRegion - 4))).ok());
}

TEST(WorkerExecuteTest, RejectsBadNamesAndLists) {
  ExpectInvalid(DecodeExecuteIn(OneInput(Fp32("", {1}))), {"input 0: name: length 0"});
  ExpectInvalid(DecodeExecuteIn(OneInput(Fp32(std::string(kMaxTensorNameBytes + 1, 'n'), {1}))),
                {"input 0: name: length 4097 exceeds the maximum of 4096"});

  ExecuteRequest dup;
  R(dup).inputs = {Fp32("x", {1}), Fp32("y", {1}), Fp32("x", {1})};
  ExpectInvalid(DecodeExecuteIn(dup), {"input 2 'x': duplicate name (also input 0)"});

  ExecuteRequest too_many;
  R(too_many).inputs.resize(kMaxTensors + 1, Fp32("x", {1}));
  ExpectInvalid(DecodeExecuteIn(too_many), {"input count 1025 exceeds the maximum of 1024"});

  ExecuteRequest names;
  R(names).outputs = {"y", ""};
  ExpectInvalid(DecodeExecuteIn(names), {"output name 1", "length 0"});
  R(names).outputs = {std::string(kMaxTensorNameBytes + 1, 'y')};
  ExpectInvalid(DecodeExecuteIn(names), {"output name 0", "exceeds the maximum of 4096"});
  R(names).outputs = {"a", "b", "a"};
  ExpectInvalid(DecodeExecuteIn(names), {"output name 2 'a': duplicate name (also output name 0)"});
  R(names).outputs.assign(kMaxTensors + 1, "y");
  ExpectInvalid(DecodeExecuteIn(names), {"output name count 1025 exceeds the maximum of 1024"});

  // Counts that promise more items than the bytes could hold fail before allocating.
  // region, output_offset, decoupled_token, 1 request, empty id, no parameters
  const std::string head =
      std::string(20, '\0') + std::string("\1\0\0\0", 4) + std::string(8, '\0');
  std::string lying = head;
  PutU32(lying, 1000);
  PutU32(lying, 0);  // (room for the request's smallest encoding)
  ExpectInvalid(DecodeExecute(AsBytes(lying), kOneRegion), {"input count 1000: truncated"});
  lying = head;
  PutU32(lying, 0);
  PutU32(lying, 1000);
  ExpectInvalid(DecodeExecute(AsBytes(lying), kOneRegion), {"output name count 1000: truncated"});

  std::string trailing = EncodeExecute(OneInput(Fp32("x", {1}))) + "!";
  ExpectInvalid(DecodeExecute(AsBytes(trailing), kOneRegion), {"Execute", "1 trailing bytes"});
}

TEST(WorkerExecuteTest, OutputOffsetLiesInTheRegion) {
  ExecuteRequest q = OneInput(Fp32("x", {4}));
  q.output_offset = kRegion;  // no room for outputs, but within bounds
  auto back = DecodeExecuteIn(q);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->output_offset, kRegion);
  q.output_offset = kRegion + 1;
  ExpectInvalid(DecodeExecuteIn(q),
                {"output_offset 1048577 exceeds the shared-memory region of 1048576 bytes"});
}

TEST(WorkerExecuteTest, EscapesUnprintableNamesInErrors) {
  auto r = DecodeExecuteIn(OneInput({"a\nb", DataType::kFp32, {1}, 0, 3}));
  ExpectInvalid(r, {"input 0 'a?b'"});
}

// v3: an Execute is a list of requests, each with its id and parameters.

ExecuteRequest ThreeRequests() {
  ExecuteRequest q;
  q.output_offset = 4096;
  q.requests.resize(3);
  q.requests[0].id = "first";
  q.requests[0].parameters = {{"flag", true},
                              {"count", int64_t{-7}},
                              {"ratio", 0.25},
                              {"note", std::string("hello")},
                              {"empty", std::string()}};
  q.requests[0].inputs = {Fp32("x", {1, 2}, 0)};
  q.requests[1].id = "";  // a request without an id
  q.requests[1].inputs = {Fp32("x", {2, 2}, 64)};
  q.requests[1].outputs = {"y"};
  q.requests[2].id = std::string(kMaxStringBytes, 'i');
  q.requests[2].parameters = {{std::string(kMaxParameterKeyBytes, 'k'), false}};
  q.requests[2].inputs = {Fp32("x", {3, 2}, 128)};
  return q;
}

TEST(WorkerExecuteListTest, RoundTripsRequestsWithIdsAndParameters) {
  const ExecuteRequest q = ThreeRequests();
  auto back = DecodeExecuteIn(q);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, q);
  EXPECT_EQ(std::get<double>(back->requests[0].parameters[2].second), 0.25);
  ExpectEveryPrefixTruncated(
      EncodeExecute(q), [](std::span<const std::byte> p) { return DecodeExecute(p, kOneRegion); });
}

TEST(WorkerExecuteListTest, DecodingIntoAReusedRequestGivesTheSameMessage) {
  ExecuteRequest reused = ThreeRequests();
  reused.requests[0].parameters[3].second = int64_t{1};  // a string slot turned int
  ExecuteRequest one = OneInput(Fp32("z", {1}));
  R(one).id = "solo";
  for (const ExecuteRequest& q : {one, ThreeRequests(), one}) {
    const std::string payload = EncodeExecute(q);
    ASSERT_TRUE(DecodeExecuteInto(AsBytes(payload), kOneRegion, reused).ok());
    EXPECT_EQ(reused, q);
  }
}

TEST(WorkerExecuteListTest, RejectsBadRequestListsAndParameters) {
  ExecuteRequest none;
  ExpectInvalid(DecodeExecuteIn(none), {"request count 0, expected at least 1"});
  ExecuteRequest too_many;
  too_many.requests.resize(kMaxExecuteRequests + 1);
  ExpectInvalid(DecodeExecuteIn(too_many), {"request count 1025 exceeds the maximum of 1024"});

  ExecuteRequest q;
  R(q).id.assign(kMaxStringBytes + 1, 'i');
  ExpectInvalid(DecodeExecuteIn(q), {"request 0: id: length 65537 exceeds the maximum of 65536"});
  R(q).id = "a";
  R(q).parameters.resize(kMaxParameters + 1, {"k", true});
  ExpectInvalid(DecodeExecuteIn(q), {"parameter count 257 exceeds the maximum of 256"});
  R(q).parameters = {{"", true}};
  ExpectInvalid(DecodeExecuteIn(q), {"parameter 0: key: length 0"});
  R(q).parameters = {{std::string(kMaxParameterKeyBytes + 1, 'k'), true}};
  ExpectInvalid(DecodeExecuteIn(q), {"parameter 0: key: length 1025 exceeds the maximum of 1024"});
  R(q).parameters = {{"s", std::string(kMaxStringBytes + 1, 's')}};
  ExpectInvalid(DecodeExecuteIn(q), {"parameter 0 's': string value: length 65537 exceeds"});
  R(q).parameters = {{"a", true}, {"b", 1.5}, {"a", int64_t{2}}};
  ExpectInvalid(DecodeExecuteIn(q), {"parameter 2 'a': duplicate name (also parameter 0)"});

  // A kind out of range, a bool that is not 0 or 1 (poked into the bytes).
  R(q).parameters = {{"p", true}};
  std::string payload = EncodeExecute(q);
  // region 4, offset 8, token 8, count 4, id 4 + 1, parameter count 4, key 4 + 1: kind at 38.
  ASSERT_EQ(payload[38], 0);
  std::string bad_kind = payload;
  bad_kind[38] = 4;
  ExpectInvalid(
      DecodeExecute(AsBytes(bad_kind), kOneRegion),
      {"parameter 0 'p': kind 4, expected 0 (bool), 1 (int64), 2 (double) or 3 (string)"});
  std::string bad_bool = payload;
  bad_bool[39] = 2;
  ExpectInvalid(DecodeExecute(AsBytes(bad_bool), kOneRegion),
                {"parameter 0 'p': bool value 2, expected 0 or 1"});

  // An error in a later request names it.
  ExecuteRequest list = ThreeRequests();
  list.requests[2].inputs[0].shape = {3, -1};
  ExpectInvalid(DecodeExecuteIn(list), {"input 0 'x': dim 1 is -1", "(in request 2)"});

  // A count that promises more requests than the bytes hold fails before allocating.
  std::string lying(20, '\0');
  PutU32(lying, 1000);
  ExpectInvalid(DecodeExecute(AsBytes(lying), kOneRegion), {"request count 1000: truncated"});
}

TEST(WorkerExecuteListTest, SenderChecksNameIdsParametersAndCounts) {
  EXPECT_TRUE(CheckExecuteFits(ThreeRequests()).ok());
  ExecuteRequest none;
  EXPECT_NE(CheckExecuteFits(none).message().find("a batch of 0 requests"), std::string::npos);
  ExecuteRequest q;
  R(q).id.assign(kMaxStringBytes + 1, 'i');
  EXPECT_NE(CheckExecuteFits(q).message().find("request id of 65537 bytes"), std::string::npos);
  R(q).id.clear();
  R(q).parameters = {{"", true}};
  EXPECT_NE(CheckExecuteFits(q).message().find("request parameter name of 0 bytes"),
            std::string::npos);
  R(q).parameters = {{"s", std::string(kMaxStringBytes + 1, 's')}};
  EXPECT_NE(CheckExecuteFits(q).message().find("request parameter 's' of 65537 bytes"),
            std::string::npos);
  R(q).parameters.assign(kMaxParameters + 1, {"k", true});
  EXPECT_NE(CheckExecuteFits(q).message().find("257 request parameters"), std::string::npos);
}

TEST(WorkerExecuteListTest, ReplyCarriesAResultPerRequest) {
  ExecuteReply reply;
  reply.results.push_back({OkStatus(), {Fp32("y", {1, 2}, 4096)}});
  reply.results.push_back({InvalidArgument("request 'b' asked to fail"), {}});
  reply.results.push_back({OkStatus(), {}});
  reply.input_ns = 5;
  reply.output_ns = 6;
  EXPECT_TRUE(CheckExecuteReplyFits(reply).ok());
  const std::string payload = EncodeExecuteReply(reply);
  auto back = DecodeExecuteReply(AsBytes(payload), kRegion);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->results.size(), 3u);
  EXPECT_EQ(back->results[0].outputs, reply.results[0].outputs);
  EXPECT_EQ(back->results[1].status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(back->results[1].status.message(), "request 'b' asked to fail");
  EXPECT_TRUE(back->results[2].status.ok());
  EXPECT_EQ(back->output_ns, 6u);
  ExpectEveryPrefixTruncated(
      payload, [](std::span<const std::byte> p) { return DecodeExecuteReply(p, kRegion); });
  // A failed result's outputs are not encoded (the encoding is the status's).
  ExecuteReply with_outputs = reply;
  with_outputs.results[1].outputs = {Fp32("y", {1})};
  EXPECT_EQ(EncodeExecuteReply(with_outputs), payload);

  ExecuteReply empty;  // OK with no result
  ExpectInvalid(DecodeExecuteReply(AsBytes(EncodeExecuteReply(empty)), kRegion),
                {"result count 0, expected at least 1"});
  EXPECT_FALSE(CheckExecuteReplyFits(empty).ok());
  reply.results[2].outputs = {Fp32("z", {1}, kRegion)};
  ExpectInvalid(DecodeExecuteReply(AsBytes(EncodeExecuteReply(reply)), kRegion),
                {"output 0 'z'", "exceed the shared-memory region", "(in result 2)"});
  reply.results[2].outputs = {Fp32("z", std::vector<int64_t>(kMaxRank + 1, 1))};
  EXPECT_NE(CheckExecuteReplyFits(reply).message().find("output 'z' has 65 dims"),
            std::string::npos);
}

// ------------------------------------------------------------ sender checks
// What a sender lets through, the peer's decoder accepts; what it refuses is
// named, so that the server refuses a request instead of sending one the
// worker would end the conversation over (issue 17, defect 12).

TEST(WorkerSenderCheckTest, ExecuteWithinTheLimitsFitsAndDecodes) {
  ExecuteRequest q;
  for (size_t i = 0; i < kMaxTensors; ++i) {
    std::string name = std::to_string(i);
    name.resize(kMaxTensorNameBytes, '.');
    R(q).inputs.push_back(Fp32(name, std::vector<int64_t>(kMaxRank, 1), i * 4));
    R(q).outputs.push_back(name);
  }
  ASSERT_TRUE(CheckExecuteFits(q).ok()) << CheckExecuteFits(q).message();
  EXPECT_LE(EncodeExecute(q).size(), kMaxPayloadBytes);
  EXPECT_TRUE(DecodeExecuteIn(q).ok());
}

TEST(WorkerSenderCheckTest, ExecuteOverALimitIsRefusedNamingIt) {
  struct Case {
    ExecuteRequest q;
    std::vector<std::string_view> needles;
  };
  std::vector<Case> cases;
  cases.push_back({OneInput(Fp32("x", std::vector<int64_t>(kMaxRank + 1, 1))),
                   {"input 'x' has 65 dims", "at most 64 dims"}});
  cases.push_back({OneInput(Fp32(std::string(kMaxTensorNameBytes + 1, 'n'), {1})),
                   {"input name of 4097 bytes", "1 to 4096"}});
  cases.push_back({OneInput(Fp32("", {1})), {"input name of 0 bytes"}});
  ExecuteRequest many;
  R(many).inputs.resize(kMaxTensors + 1, Fp32("x", {1}));
  cases.push_back({many, {"1025 inputs", "at most 1024"}});
  ExecuteRequest outputs;
  R(outputs).outputs.assign(kMaxTensors + 1, "y");
  cases.push_back({outputs, {"1025 requested outputs"}});
  ExecuteRequest long_output;
  R(long_output).outputs = {std::string(kMaxTensorNameBytes + 1, 'y')};
  cases.push_back({long_output, {"requested output name of 4097 bytes"}});
  cases.push_back({OneInput({"x", DataType::kFp32, {-1}, 0, 0}), {"negative dim"}});
  for (const Case& c : cases) {
    const Status fits = CheckExecuteFits(c.q);
    ASSERT_FALSE(fits.ok());
    EXPECT_EQ(fits.code(), StatusCode::kInvalidArgument);
    for (std::string_view needle : c.needles) {
      EXPECT_NE(fits.message().find(needle), std::string::npos) << fits.message();
    }
    // ... and each is a message the worker would refuse.
    EXPECT_FALSE(DecodeExecuteIn(c.q, std::numeric_limits<uint64_t>::max()).ok()) << fits.message();
  }
}

TEST(WorkerSenderCheckTest, ExecuteReplyOverALimitIsRefused) {
  ExecuteReply ok = Reply(OkStatus(), {Fp32("y", std::vector<int64_t>(kMaxRank, 1))});
  EXPECT_TRUE(CheckExecuteReplyFits(ok).ok());
  ExecuteReply deep = ok;
  deep.results[0].outputs[0].shape.assign(kMaxRank + 1, 1);
  EXPECT_NE(CheckExecuteReplyFits(deep).message().find("output 'y' has 65 dims"),
            std::string::npos);
  ExecuteReply twice = ok;
  twice.results[0].outputs.push_back(ok.results[0].outputs[0]);
  EXPECT_NE(CheckExecuteReplyFits(twice).message().find("answered twice"), std::string::npos);
  ExecuteReply many = Reply(OkStatus(), {});
  for (size_t i = 0; i < 40; ++i) {
    many.results[0].outputs.push_back(Fp32("o" + std::to_string(i), {1}));
  }
  EXPECT_TRUE(CheckExecuteReplyFits(many).ok());
  many.results[0].outputs.push_back(many.results[0].outputs[7]);
  EXPECT_FALSE(CheckExecuteReplyFits(many).ok());
  ExecuteReply failed;  // a failure carries no outputs: nothing to check
  failed.status = Internal("x");
  failed.results = deep.results;
  EXPECT_TRUE(CheckExecuteReplyFits(failed).ok());
}

TEST(WorkerSenderCheckTest, LoadAndItsReplyOverALimitAreRefused) {
  LoadRequest load;
  load.model_name = "m";
  load.version = 1;
  load.model_dir = "/models/m";
  EXPECT_TRUE(CheckLoadFits(load).ok());
  LoadRequest big = load;
  big.config.assign(kMaxConfigBytes + 1, 'c');
  EXPECT_NE(CheckLoadFits(big).message().find("model config (serialized) of 4194305 bytes"),
            std::string::npos);
  EXPECT_FALSE(DecodeLoad(AsBytes(EncodeLoad(big))).ok());
  LoadRequest deep = load;
  deep.model_dir.assign(kMaxModelDirBytes + 1, 'd');
  EXPECT_FALSE(CheckLoadFits(deep).ok());
  LoadReply reply{OkStatus(), std::string(kMaxConfigBytes + 1, 'c'), false};
  EXPECT_NE(CheckLoadReplyFits(reply).message().find("complete config"), std::string::npos);
  reply.config.resize(kMaxConfigBytes);
  EXPECT_TRUE(CheckLoadReplyFits(reply).ok());
}

// ------------------------------------------------------------------ replies

TEST(WorkerReplyTest, StatusReplyRoundTripsEveryCode) {
  for (int c = 0; c <= static_cast<int>(StatusCode::kInternal); ++c) {
    const auto code = static_cast<StatusCode>(c);
    const StatusReply reply{Status(code, code == StatusCode::kOk ? "" : "it failed")};
    const std::string payload = EncodeStatusReply(reply);
    auto back = DecodeStatusReply(AsBytes(payload));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(back->status.code(), code);
    EXPECT_EQ(back->status.message(), reply.status.message());
  }
}

TEST(WorkerReplyTest, StatusReplyRejectsBadStatuses) {
  for (uint32_t code : {14u, 255u, 256u, 999u, 0xFFFFFFFFu}) {
    std::string bad;
    PutU32(bad, code);
    PutU32(bad, 0);
    ExpectInvalid(DecodeStatusReply(AsBytes(bad)),
                  {"worker message Reply", "status code " + std::to_string(code), "StatusCode"});
  }
  std::string ok_with_message;
  PutU32(ok_with_message, 0);
  PutU32(ok_with_message, 2);
  ok_with_message += "hi";
  ExpectInvalid(DecodeStatusReply(AsBytes(ok_with_message)), {"status message", "code OK"});

  std::string long_message;
  PutU32(long_message, static_cast<uint32_t>(StatusCode::kInternal));
  PutU32(long_message, kMaxStringBytes + 1);
  long_message.append(kMaxStringBytes + 1, 'm');
  ExpectInvalid(DecodeStatusReply(AsBytes(long_message)),
                {"status message", "exceeds the maximum of 65536"});

  std::string trailing = EncodeStatusReply({OkStatus()}) + "x";
  ExpectInvalid(DecodeStatusReply(AsBytes(trailing)), {"1 trailing bytes"});
  ExpectEveryPrefixTruncated(EncodeStatusReply({NotFound("no model m")}),
                             [](std::span<const std::byte> p) { return DecodeStatusReply(p); });
}

TEST(WorkerReplyTest, EncoderCutsLongStatusMessages) {
  const std::string payload =
      EncodeStatusReply({Internal(std::string(kMaxStringBytes + 100, 'e'))});
  auto back = DecodeStatusReply(AsBytes(payload));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->status.code(), StatusCode::kInternal);
  EXPECT_EQ(back->status.message().size(), kMaxStringBytes);
}

TEST(WorkerReplyTest, ExecuteReplyRoundTrips) {
  ExecuteReply ok = Reply(OkStatus(), {Fp32("y", {1, 10}, 128), {"s", DataType::kBytes, {}, 0, 0}});
  ok.input_ns = 1234;
  ok.output_ns = 56;
  std::string payload = EncodeExecuteReply(ok);
  auto back = DecodeExecuteReply(AsBytes(payload), kRegion);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->status.ok());
  ASSERT_EQ(back->results.size(), 1u);
  EXPECT_EQ(back->results[0].outputs, ok.results[0].outputs);
  EXPECT_EQ(back->input_ns, 1234u);
  EXPECT_EQ(back->output_ns, 56u);
  ExpectEveryPrefixTruncated(
      payload, [](std::span<const std::byte> p) { return DecodeExecuteReply(p, kRegion); });

  ExecuteReply none = Reply(OkStatus(), {});
  payload = EncodeExecuteReply(none);
  back = DecodeExecuteReply(AsBytes(payload), kRegion);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->results.size(), 1u);
  EXPECT_TRUE(back->results[0].outputs.empty());

  // A failed reply carries no outputs, only the region size it needs.
  ExecuteReply failed = Reply(ResourceExhausted("out of memory"), {Fp32("y", {1})}, 5000);
  payload = EncodeExecuteReply(failed);
  EXPECT_EQ(payload, EncodeStatusReply({failed.status}) + std::string("\x88\x13\0\0\0\0\0\0", 8));
  back = DecodeExecuteReply(AsBytes(payload), kRegion);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->status.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(back->status.message(), "out of memory");
  EXPECT_TRUE(back->results.empty());
  EXPECT_EQ(back->region_bytes_needed, 5000u);
  ExpectEveryPrefixTruncated(
      payload, [](std::span<const std::byte> p) { return DecodeExecuteReply(p, kRegion); });
}

TEST(WorkerReplyTest, ExecuteReplyRejectsBadOutputs) {
  auto decode = [](const ExecuteReply& reply, uint64_t region = kRegion) {
    const std::string payload = EncodeExecuteReply(reply);
    return DecodeExecuteReply(AsBytes(payload), region);
  };
  ExpectInvalid(decode(Reply(OkStatus(), {Fp32("y", {4}, kRegion)})),
                {"worker message Execute reply: output 0 'y'", "exceed the shared-memory region"});
  ExpectInvalid(decode(Reply(OkStatus(), {Fp32("y", std::vector<int64_t>(70, 1))})),
                {"output 0 'y': rank 70 exceeds the maximum of 64"});
  ExpectInvalid(decode(Reply(OkStatus(), {Fp32("y", {1}), Fp32("y", {1})})),
                {"output 1 'y': duplicate name"});

  // Outputs after a failed status are trailing bytes.
  std::string failed_with_body = EncodeStatusReply({Internal("x")}) + std::string(8, '\0');
  PutU32(failed_with_body, 0);
  ExpectInvalid(DecodeExecuteReply(AsBytes(failed_with_body), kRegion), {"4 trailing bytes"});
}

TEST(WorkerReplyTest, LoadReplyRoundTrips) {
  LoadReply ok{OkStatus(),
               std::string("\x0a\x03"
                           "add"
                           "\x00",
                           6),
               true};
  std::string payload = EncodeLoadReply(ok);
  auto back = DecodeLoadReply(AsBytes(payload));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->status.ok());
  EXPECT_EQ(back->config, ok.config);
  EXPECT_TRUE(back->batch_as_list);
  ExpectEveryPrefixTruncated(payload,
                             [](std::span<const std::byte> p) { return DecodeLoadReply(p); });
  std::string not_a_bool = payload;
  not_a_bool.back() = 2;
  ExpectInvalid(DecodeLoadReply(AsBytes(not_a_bool)), {"batch_as_list 2, expected 0 or 1"});

  LoadReply failed{InvalidArgument("model.onnx: not a model"), "ignored", true};
  payload = EncodeLoadReply(failed);
  EXPECT_EQ(payload, EncodeStatusReply({failed.status}));
  back = DecodeLoadReply(AsBytes(payload));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->status.message(), "model.onnx: not a model");
  EXPECT_TRUE(back->config.empty());

  std::string huge;
  PutU32(huge, 0);
  PutU32(huge, 0);
  PutU32(huge, kMaxConfigBytes + 1);
  ExpectInvalid(DecodeLoadReply(AsBytes(huge)), {"Load reply", "config", "exceeds the maximum"});
  ExpectInvalid(DecodeLoadReply(AsBytes(EncodeLoadReply(ok) + "x")), {"1 trailing bytes"});
}

TEST(WorkerReplyTest, StatsReplyRoundTrips) {
  StatsReply ok{OkStatus(), {123456789, std::numeric_limits<uint64_t>::max()}};
  std::string payload = EncodeStatsReply(ok);
  auto back = DecodeStatsReply(AsBytes(payload));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->status.ok());
  EXPECT_EQ(back->stats, ok.stats);
  ExpectEveryPrefixTruncated(payload,
                             [](std::span<const std::byte> p) { return DecodeStatsReply(p); });

  StatsReply failed{Unavailable("worker shutting down"), {1, 2}};
  payload = EncodeStatsReply(failed);
  EXPECT_EQ(payload, EncodeStatusReply({failed.status}));
  back = DecodeStatsReply(AsBytes(payload));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(back->stats, WorkerStats{});

  std::string trailing = EncodeStatsReply(ok) + "x";
  ExpectInvalid(DecodeStatsReply(AsBytes(trailing)), {"Stats reply", "1 trailing bytes"});
  std::string failed_with_body = EncodeStatusReply({Internal("x")}) + std::string(16, '\0');
  ExpectInvalid(DecodeStatsReply(AsBytes(failed_with_body)), {"16 trailing bytes"});
}

}  // namespace
}  // namespace mm
