#include "rpc/grpc_codec.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <climits>
#include <cstring>

#include "core/bytes_tensor.h"
#include "http/infer_codec.h"
#include "rpc/infer_request_wire.h"

namespace mm {
namespace {

inference::ModelInferRequest::InferInputTensor* AddInput(inference::ModelInferRequest& msg,
                                                         const std::string& name,
                                                         const std::string& dtype,
                                                         std::vector<int64_t> shape) {
  auto* in = msg.add_inputs();
  in->set_name(name);
  in->set_datatype(dtype);
  for (int64_t d : shape) in->add_shape(d);
  return in;
}

TEST(GrpcCodecTest, TypedContentsAreViewsOrNarrowedCopies) {
  inference::ModelInferRequest msg;
  msg.set_model_name("m");
  msg.set_id("7");
  auto* f = AddInput(msg, "f", "FP32", {2});
  f->mutable_contents()->add_fp32_contents(1.5f);
  f->mutable_contents()->add_fp32_contents(-2.0f);
  auto* i8 = AddInput(msg, "i8", "INT8", {3});
  for (int v : {-128, 0, 127}) i8->mutable_contents()->add_int_contents(v);
  auto* b = AddInput(msg, "b", "BOOL", {2});
  b->mutable_contents()->add_bool_contents(true);
  b->mutable_contents()->add_bool_contents(false);
  auto* s = AddInput(msg, "s", "BYTES", {2});
  s->mutable_contents()->add_bytes_contents("ab");
  s->mutable_contents()->add_bytes_contents("");
  auto decoded = DecodeGrpcInferRequest(msg);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  const InferRequest& r = *decoded;
  EXPECT_EQ(r.model_name, "m");
  EXPECT_EQ(r.id, "7");
  ASSERT_EQ(r.inputs.size(), 4u);
  // FP32 is a view into the message.
  EXPECT_EQ(static_cast<const void*>(r.inputs[0].data.data()),
            static_cast<const void*>(f->contents().fp32_contents().data()));
  EXPECT_EQ(r.inputs[0].as<float>()[1], -2.0f);
  ASSERT_EQ(r.inputs[1].data.size(), 3u);
  EXPECT_EQ(r.inputs[1].as<int8_t>()[0], -128);
  EXPECT_EQ(r.inputs[1].as<int8_t>()[2], 127);
  EXPECT_EQ(r.inputs[2].as<uint8_t>()[0], 1);
  EXPECT_EQ(r.inputs[2].as<uint8_t>()[1], 0);
  auto parts = SplitBytesTensor(r.inputs[3].data, 2, "s");
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ((*parts)[0], "ab");
}

TEST(GrpcCodecTest, RawContentsAreViews) {
  inference::ModelInferRequest msg;
  AddInput(msg, "x", "FP16", {2});
  msg.add_raw_input_contents(std::string(4, '\1'));
  auto decoded = DecodeGrpcInferRequest(msg);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(static_cast<const void*>(decoded->inputs[0].data.data()),
            static_cast<const void*>(msg.raw_input_contents(0).data()));
}

TEST(GrpcCodecTest, RejectsInconsistentRequests) {
  auto error = [](const inference::ModelInferRequest& msg) {
    auto d = DecodeGrpcInferRequest(msg);
    EXPECT_FALSE(d.ok());
    return d.ok() ? std::string() : d.status().message();
  };
  {
    inference::ModelInferRequest msg;
    AddInput(msg, "x", "FP32", {3})->mutable_contents()->add_fp32_contents(1);
    EXPECT_NE(error(msg).find("expected 3 elements for shape [3], got 1"), std::string::npos);
  }
  {
    inference::ModelInferRequest msg;
    AddInput(msg, "x", "INT8", {1})->mutable_contents()->add_int_contents(300);
    EXPECT_NE(error(msg).find("out of range"), std::string::npos);
  }
  {
    inference::ModelInferRequest msg;
    AddInput(msg, "x", "FP16", {1})->mutable_contents()->add_fp32_contents(1);
    EXPECT_NE(error(msg).find("raw_input_contents"), std::string::npos);
  }
  {
    inference::ModelInferRequest msg;
    AddInput(msg, "x", "FP32", {1});
    AddInput(msg, "y", "FP32", {1});
    msg.add_raw_input_contents(std::string(4, '\0'));
    EXPECT_NE(error(msg).find("one per such input"), std::string::npos);
  }
  {
    inference::ModelInferRequest msg;
    AddInput(msg, "x", "FLOAT", {1});
    EXPECT_NE(error(msg).find("unknown datatype 'FLOAT'"), std::string::npos);
  }
  {
    inference::ModelInferRequest msg;
    AddInput(msg, "x", "FP32", {-1});
    EXPECT_FALSE(DecodeGrpcInferRequest(msg).ok());
  }
  {
    inference::ModelInferRequest msg;
    AddInput(msg, "x", "FP32", {1});
    EXPECT_NE(error(msg).find("has no data"), std::string::npos);
  }
  {
    inference::ModelInferRequest msg;
    (*msg.mutable_parameters())["big"].set_uint64_param(~0ULL);
    EXPECT_NE(error(msg).find("out of range"), std::string::npos);
  }
  {
    inference::ModelInferRequest msg;
    auto* in = AddInput(msg, "x", "FP32", {1});
    (*in->mutable_parameters())["shared_memory_region"].set_string_param("r");
    in->mutable_contents()->add_fp32_contents(1);
    EXPECT_NE(error(msg).find("both data and a shared memory reference"), std::string::npos);
  }
  {
    inference::ModelInferRequest msg;
    auto* in = AddInput(msg, "x", "FP32", {1});
    (*in->mutable_parameters())["shared_memory_region"].set_string_param("r");
    auto d = DecodeGrpcInferRequest(msg);
    ASSERT_TRUE(d.ok());
    EXPECT_TRUE(d->inputs[0].data.empty());
    EXPECT_EQ(std::get<std::string>(d->inputs[0].parameters.at("shared_memory_region")), "r");
  }
}

// Both transports validate alike: the same bad request, sent over HTTP (JSON
// or binary data) and over gRPC (typed or raw contents), is refused with the
// same code and the same words.
class SameWordsTest : public ::testing::Test {
 protected:
  static Status Http(const std::string& json, const std::string& binary = "") {
    auto body = std::make_shared<std::string>(json + binary);
    auto d = DecodeInferRequest(body,
                                binary.empty() ? std::nullopt : std::optional<size_t>(json.size()));
    return d.ok() ? OkStatus() : d.status();
  }
  static Status Grpc(const inference::ModelInferRequest& msg) {
    auto d = DecodeGrpcInferRequest(msg);
    return d.ok() ? OkStatus() : d.status();
  }
  static void ExpectSame(const Status& http, const Status& grpc, const std::string& want) {
    EXPECT_FALSE(http.ok());
    EXPECT_EQ(http.code(), grpc.code()) << http.message() << " / " << grpc.message();
    EXPECT_EQ(http.message(), grpc.message());
    EXPECT_NE(http.message().find(want), std::string::npos) << http.message();
  }
  // One input `x` of `dtype` [n] carried as binary data / raw contents.
  static void ExpectSameRaw(const std::string& dtype, int64_t n, const std::string& bytes,
                            const std::string& want) {
    const std::string json = R"({"inputs":[{"name":"x","datatype":")" + dtype + R"(","shape":[)" +
                             std::to_string(n) + R"(],"parameters":{"binary_data_size":)" +
                             std::to_string(bytes.size()) + "}}]}";
    inference::ModelInferRequest msg;
    AddInput(msg, "x", dtype, {n});
    msg.add_raw_input_contents(bytes);
    ExpectSame(Http(json, bytes), Grpc(msg), want);
  }
};

TEST_F(SameWordsTest, BoolBytesOtherThanZeroAndOne) {
  ExpectSameRaw("BOOL", 3, std::string("\0\1\2", 3),
                "input 'x': BOOL element 2 is 2, expected 0 or 1");
  ExpectSameRaw("BOOL", 2, std::string("\1\xff", 2), "BOOL element 1 is 255");
  inference::ModelInferRequest ok;
  AddInput(ok, "x", "BOOL", {3});
  ok.add_raw_input_contents(std::string("\0\1\1", 3));
  EXPECT_TRUE(Grpc(ok).ok());
}

TEST_F(SameWordsTest, RawSizesAndBytesFraming) {
  ExpectSameRaw("FP32", 2, "abcdef", "input 'x': shape [2] of FP32 needs 8 bytes, got 6");
  ExpectSameRaw("FP16", 2, "abc", "needs 4 bytes, got 3");
  ExpectSameRaw("BF16", 1, "abc", "needs 2 bytes, got 3");
  ExpectSameRaw("BYTES", 1, std::string("\x05\0\0\0ab", 6),
                "input 'x': BYTES element 0 declares 5 bytes but only 2 remain");
  ExpectSameRaw("BYTES", 2, std::string("\x01\0\0\0a", 5),
                "holds 1 elements but its shape declares 2");
  ExpectSameRaw("BYTES", 1, std::string("\x01\0\0\0a\0\0\0\0", 9), "holds more than the 1");
  ExpectSameRaw("BYTES", 1, std::string("\x01\0", 2), "BYTES data is truncated");
}

TEST_F(SameWordsTest, NamesAndRanges) {
  {  // an input twice
    inference::ModelInferRequest msg;
    AddInput(msg, "x", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
    AddInput(msg, "x", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
    const std::string x = R"({"name":"x","datatype":"FP32","shape":[1],"data":[1]})";
    ExpectSame(Http(R"({"inputs":[)" + x + "," + x + "]}"), Grpc(msg), "input 'x' appears twice");
  }
  {  // an output twice
    inference::ModelInferRequest msg;
    AddInput(msg, "x", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
    msg.add_outputs()->set_name("y");
    msg.add_outputs()->set_name("y");
    ExpectSame(Http(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],)"
                    R"("outputs":[{"name":"y"},{"name":"y"}]})"),
               Grpc(msg), "output 'y' is requested twice");
  }
  {  // empty names
    inference::ModelInferRequest msg;
    AddInput(msg, "", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
    ExpectSame(Http(R"({"inputs":[{"name":"","datatype":"FP32","shape":[1],"data":[1]}]})"),
               Grpc(msg), "inputs[0] has an empty 'name'");
    inference::ModelInferRequest out;
    AddInput(out, "x", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
    out.add_outputs();
    ExpectSame(Http(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],)"
                    R"("outputs":[{"name":""}]})"),
               Grpc(out), "outputs[0] has an empty 'name'");
  }
  // A narrow integer out of its range (JSON data / typed contents).
  for (const auto& [dtype, value] : std::vector<std::pair<std::string, int64_t>>{
           {"INT8", 300}, {"INT16", -40000}, {"UINT8", 256}, {"UINT16", 70000}}) {
    inference::ModelInferRequest msg;
    auto* in = AddInput(msg, "x", dtype, {2});
    if (dtype[0] == 'U') {
      in->mutable_contents()->add_uint_contents(1);
      in->mutable_contents()->add_uint_contents(static_cast<uint32_t>(value));
    } else {
      in->mutable_contents()->add_int_contents(1);
      in->mutable_contents()->add_int_contents(static_cast<int32_t>(value));
    }
    ExpectSame(Http(R"({"inputs":[{"name":"x","datatype":")" + dtype +
                    R"(","shape":[2],"data":[1,)" + std::to_string(value) + "]}]}"),
               Grpc(msg),
               "input 'x': element 1: " + std::to_string(value) + " is out of range for " + dtype);
  }
}

TEST_F(SameWordsTest, ClassificationIsUnimplementedOnBoth) {
  inference::ModelInferRequest msg;
  AddInput(msg, "x", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
  auto* out = msg.add_outputs();
  out->set_name("y");
  (*out->mutable_parameters())["classification"].set_int64_param(3);
  const Status grpc = Grpc(msg);
  const Status http = Http(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],)"
                           R"("outputs":[{"name":"y","parameters":{"class_count":3}}]})");
  EXPECT_EQ(grpc.code(), StatusCode::kUnimplemented) << grpc.message();
  EXPECT_EQ(http.code(), StatusCode::kUnimplemented) << http.message();
  EXPECT_NE(grpc.message().find("classification extension"), std::string::npos);
  // 0 asks for the tensor itself, as tritonclient's default.
  (*out->mutable_parameters())["classification"].set_int64_param(0);
  auto d = DecodeGrpcInferRequest(msg);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_TRUE(d->outputs[0].parameters.empty());
}

// The same request, field by field (tensor bytes compared, not addresses).
void ExpectSameRequest(const InferRequest& a, const InferRequest& b) {
  EXPECT_EQ(a.model_name, b.model_name);
  EXPECT_EQ(a.model_version, b.model_version);
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.parameters, b.parameters);
  ASSERT_EQ(a.inputs.size(), b.inputs.size());
  for (size_t i = 0; i < a.inputs.size(); ++i) {
    const Tensor& x = a.inputs[i];
    const Tensor& y = b.inputs[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.dtype, y.dtype);
    EXPECT_EQ(x.shape, y.shape);
    EXPECT_EQ(x.parameters, y.parameters);
    ASSERT_EQ(x.data.size(), y.data.size());
    if (!x.data.empty()) EXPECT_EQ(std::memcmp(x.data.data(), y.data.data(), x.data.size()), 0);
  }
  ASSERT_EQ(a.outputs.size(), b.outputs.size());
  for (size_t i = 0; i < a.outputs.size(); ++i) {
    EXPECT_EQ(a.outputs[i].name, b.outputs[i].name);
    EXPECT_EQ(a.outputs[i].parameters, b.outputs[i].parameters);
  }
}

TEST(GrpcCodecTest, RawContentsFromASpanDecodeAsFromTheMessage) {
  inference::ModelInferRequest msg;
  msg.set_model_name("m");
  msg.set_model_version("3");
  msg.set_id("r");
  (*msg.mutable_parameters())["priority"].set_int64_param(2);
  AddInput(msg, "a", "FP32", {2});
  auto* shm = AddInput(msg, "s", "FP32", {1});
  (*shm->mutable_parameters())["shared_memory_region"].set_string_param("region");
  AddInput(msg, "b", "BYTES", {1});
  msg.add_outputs()->set_name("y");
  float values[2] = {1, 2};
  msg.add_raw_input_contents(std::string(reinterpret_cast<const char*>(values), sizeof values));
  msg.add_raw_input_contents(std::string("\x02\0\0\0hi", 6));
  const std::string wire = msg.SerializeAsString();

  inference::ModelInferRequest parsed;
  std::vector<std::string_view> raw;
  ASSERT_TRUE(ParseModelInferRequestInPlace(wire, &parsed, &raw).ok());
  auto from_span = DecodeGrpcInferRequest(parsed, raw);
  auto from_msg = DecodeGrpcInferRequest(msg);
  ASSERT_TRUE(from_span.ok()) << from_span.status().ToString();
  ASSERT_TRUE(from_msg.ok()) << from_msg.status().ToString();
  ExpectSameRequest(*from_span, *from_msg);
  // The tensors are views of the wire bytes.
  EXPECT_EQ(static_cast<const void*>(from_span->inputs[0].data.data()),
            static_cast<const void*>(raw[0].data()));
  EXPECT_EQ(static_cast<const void*>(from_span->inputs[2].data.data()),
            static_cast<const void*>(raw[1].data()));

  // The span alone counts: msg's own raw contents are ignored.
  const std::vector<std::string_view> other = {std::string_view("\0\0\0\0\0\0\0\0", 8),
                                               std::string_view("\0\0\0\0", 4)};
  auto ignored = DecodeGrpcInferRequest(msg, other);
  ASSERT_TRUE(ignored.ok()) << ignored.status().ToString();
  EXPECT_EQ(static_cast<const void*>(ignored->inputs[0].data.data()),
            static_cast<const void*>(other[0].data()));
}

TEST(GrpcCodecTest, RawContentsFromASpanFailWithTheSameWords) {
  auto both = [](const inference::ModelInferRequest& msg) {
    inference::ModelInferRequest parsed;
    std::vector<std::string_view> raw;
    const std::string wire = msg.SerializeAsString();
    EXPECT_TRUE(ParseModelInferRequestInPlace(wire, &parsed, &raw).ok());
    auto a = DecodeGrpcInferRequest(parsed, raw);
    auto b = DecodeGrpcInferRequest(msg);
    EXPECT_FALSE(a.ok());
    EXPECT_FALSE(b.ok());
    if (a.ok() || b.ok()) return;
    EXPECT_EQ(a.status().code(), b.status().code());
    EXPECT_EQ(a.status().message(), b.status().message());
  };
  {
    inference::ModelInferRequest msg;
    AddInput(msg, "x", "FP32", {1});
    AddInput(msg, "y", "FP32", {1});
    msg.add_raw_input_contents(std::string(4, '\0'));
    both(msg);
  }
  {
    inference::ModelInferRequest msg;
    AddInput(msg, "x", "FP32", {2});
    msg.add_raw_input_contents(std::string(6, '\0'));
    both(msg);
  }
  {
    inference::ModelInferRequest msg;
    AddInput(msg, "x", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
    msg.add_raw_input_contents(std::string(4, '\0'));
    both(msg);
  }
}

std::string Flatten(const GrpcResponseParts& parts) {
  std::string out;
  for (const auto& piece : parts.pieces) {
    const auto bytes = parts.bytes(piece);
    out.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  return out;
}

std::string GrpcPrefix(size_t size) {
  std::string out(1, '\0');
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(size >> shift));
  return out;
}

Tensor Output(std::string name, DataType dtype, Shape shape, std::string_view bytes) {
  Tensor t;
  t.name = std::move(name);
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.data = {reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()};
  return t;
}

// The parts on the wire are the length-prefixed message EncodeGrpcInferResponse
// fills, byte for byte, and its tensors are not copied.
void ExpectPartsAreTheMessage(const InferResponse& response) {
  inference::ModelInferResponse message;
  EncodeGrpcInferResponse(response, &message);
  const std::string serialized = SerializeDeterministic(message);
  auto parts = EncodeGrpcInferResponseParts(response);
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  GrpcResponseParts moved = std::move(*parts);  // offsets, not pointers, into head
  EXPECT_EQ(Flatten(moved), GrpcPrefix(serialized.size()) + serialized);
  EXPECT_EQ(moved.total, serialized.size() + 5);
  size_t tensors = 0;
  for (const auto& piece : moved.pieces) {
    EXPECT_GT(piece.size, 0u);
    if (piece.in_head) continue;
    while (response.outputs[tensors].data.empty()) ++tensors;
    EXPECT_EQ(piece.data, response.outputs[tensors].data.data());
    EXPECT_EQ(piece.size, response.outputs[tensors].data.size());
    ++tensors;
  }
  for (; tensors < response.outputs.size(); ++tensors) {
    EXPECT_TRUE(response.outputs[tensors].data.empty());
  }
  // With at most one entry per map, protobuf's own order is the same.
  bool small_maps = true;
  for (const Tensor& t : response.outputs) small_maps = small_maps && t.parameters.size() <= 1;
  if (small_maps) EXPECT_EQ(Flatten(moved).substr(5), message.SerializeAsString());
}

TEST(GrpcCodecTest, ResponsePartsAreTheSerializedMessage) {
  InferResponse empty;
  ExpectPartsAreTheMessage(empty);

  auto named = [] {
    InferResponse r;
    r.model_name = "m";
    r.model_version = "1";
    r.id = "req";
    return r;
  };
  ExpectPartsAreTheMessage(named());

  static const float values[3] = {1, 2, 3};
  const std::string_view floats(reinterpret_cast<const char*>(values), sizeof values);
  const std::string big(1 << 20, '\x11');  // a 3-byte length
  const std::string medium(200, '\x22');   // a 2-byte length
  InferResponse several = named();
  several.outputs.push_back(Output("y", DataType::kFp32, {3}, floats));
  several.outputs.push_back(Output("big", DataType::kUint8, {1 << 20}, big));
  several.outputs.push_back(Output("medium", DataType::kInt8, {1, 200}, medium));
  ExpectPartsAreTheMessage(several);

  InferResponse with_empty = named();
  with_empty.outputs.push_back(Output("e", DataType::kFp32, {0}, ""));
  with_empty.outputs.push_back(Output("y", DataType::kFp32, {3}, floats));
  Tensor in_shm = Output("s", DataType::kFp32, {3}, "");
  in_shm.parameters["shared_memory_region"] = std::string("out-region");
  in_shm.parameters["shared_memory_byte_size"] = int64_t{12};
  in_shm.parameters["shared_memory_offset"] = int64_t{0};
  with_empty.outputs.push_back(in_shm);
  with_empty.outputs.push_back(Output("e2", DataType::kBytes, {0}, ""));
  ExpectPartsAreTheMessage(with_empty);

  InferResponse with_parameters = named();
  Tensor p = Output("y", DataType::kFp32, {3}, floats);
  p.parameters["a_bool"] = true;
  p.parameters["a_double"] = 0.5;
  p.parameters["a_string"] = std::string("s");
  p.parameters["an_int"] = int64_t{-7};
  with_parameters.outputs.push_back(p);
  with_parameters.outputs.push_back(Output("z", DataType::kFp32, {3}, floats));
  ExpectPartsAreTheMessage(with_parameters);

  // Pieces alternate: the head up to a tensor's bytes, the tensor, ...
  auto parts = EncodeGrpcInferResponseParts(several);
  ASSERT_TRUE(parts.ok());
  ASSERT_EQ(parts->pieces.size(), 6u);
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(parts->pieces[i].in_head, i % 2 == 0) << i;
  EXPECT_EQ(parts->pieces[0].head_offset, 0u);
  EXPECT_EQ(parts->pieces[4].head_offset + parts->pieces[4].size, parts->head.size());
  EXPECT_EQ(parts->pieces[5].data, reinterpret_cast<const std::byte*>(medium.data()));
  // ... and the head's rest, after a last tensor that is empty.
  auto tail = EncodeGrpcInferResponseParts(with_empty);
  ASSERT_TRUE(tail.ok());
  ASSERT_EQ(tail->pieces.size(), 3u);
  EXPECT_TRUE(tail->pieces[2].in_head);
  EXPECT_EQ(tail->pieces[2].head_offset + tail->pieces[2].size, tail->head.size());
}

TEST(GrpcCodecTest, ResponsePartsOverTwoGiBAreRefused) {
  // Reserved, never touched: only the size is read.
  const size_t size = size_t{INT_MAX};
  void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  InferResponse response;
  response.model_name = "m";
  response.outputs.push_back(
      Output("y", DataType::kUint8, {INT_MAX}, std::string_view(static_cast<char*>(p), size)));
  auto parts = EncodeGrpcInferResponseParts(response);
  munmap(p, size);
  ASSERT_FALSE(parts.ok());
  EXPECT_EQ(parts.status().code(), StatusCode::kResourceExhausted);
  // model_name (3 bytes), the output's metadata (name 3, datatype 7, shape
  // 7, with its own tag and length: 19), the tensor's tag and 5-byte length,
  // the tensor.
  const size_t want = 3 + 19 + 1 + 5 + size;
  EXPECT_EQ(parts.status().message(),
            "the response is " + std::to_string(want) +
                " bytes, over the 2 GiB a protobuf message can hold; ask for fewer outputs or use "
                "shared memory for them");
}

TEST(GrpcCodecTest, EncodesOutputsAsRawContents) {
  InferResponse r;
  r.model_name = "m";
  r.model_version = "1";
  r.id = "x";
  static const float values[2] = {1, 2};
  r.outputs.push_back(Tensor{"y",
                             DataType::kFp32,
                             {2},
                             {reinterpret_cast<const std::byte*>(values), sizeof values},
                             nullptr,
                             {}});
  inference::ModelInferResponse out;
  EncodeGrpcInferResponse(r, &out);
  EXPECT_EQ(out.model_name(), "m");
  EXPECT_EQ(out.id(), "x");
  ASSERT_EQ(out.outputs_size(), 1);
  EXPECT_EQ(out.outputs(0).datatype(), "FP32");
  EXPECT_EQ(out.outputs(0).shape(0), 2);
  ASSERT_EQ(out.raw_output_contents(0).size(), 8u);
  EXPECT_EQ(std::memcmp(out.raw_output_contents(0).data(), values, 8), 0);
}

}  // namespace
}  // namespace mm
