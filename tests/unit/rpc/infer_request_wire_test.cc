#include "rpc/infer_request_wire.h"

#include <google/protobuf/stubs/logging.h>
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <climits>
#include <functional>
#include <string>
#include <vector>

#include "rpc/grpc_codec.h"

namespace mm {
namespace {

using inference::ModelInferRequest;

// Wire format by hand, for messages protobuf's serializer would not write.
std::string Varint(uint64_t v) {
  std::string out;
  for (; v >= 0x80; v >>= 7) out.push_back(static_cast<char>((v & 0x7f) | 0x80));
  out.push_back(static_cast<char>(v));
  return out;
}
std::string Tag(uint32_t field, uint32_t wire_type) {
  return Varint((uint64_t{field} << 3) | wire_type);
}
std::string Field(uint32_t field, std::string_view bytes) {
  return Tag(field, 2) + Varint(bytes.size()) + std::string(bytes);
}
std::string Raw(std::string_view bytes) { return Field(7, bytes); }

bool Inside(std::string_view view, std::string_view buffer) {
  return std::less_equal<>()(buffer.data(), view.data()) &&
         std::less_equal<>()(view.data() + view.size(), buffer.data() + buffer.size());
}

// ParseModelInferRequestInPlace agrees with protobuf's own parse of `wire`:
// both refuse it, or both accept it with the same fields and raw contents
// (views into `wire`, or into the message's own raw contents after a group).
::testing::AssertionResult SameAsProtobuf(std::string_view wire) {
  ModelInferRequest want;
  const bool want_ok = want.ParseFromArray(wire.data(), static_cast<int>(wire.size()));
  ModelInferRequest got;
  std::vector<std::string_view> raw;
  const Status status = ParseModelInferRequestInPlace(wire, &got, &raw);
  if (status.ok() != want_ok) {
    return ::testing::AssertionFailure() << "protobuf " << (want_ok ? "accepts" : "refuses")
                                         << " it, we say " << status.ToString();
  }
  if (!want_ok) {
    if (status.code() != StatusCode::kInvalidArgument || !raw.empty() || got.ByteSizeLong() != 0) {
      return ::testing::AssertionFailure() << "refused as " << status.ToString();
    }
    return ::testing::AssertionSuccess();
  }
  if (static_cast<int>(raw.size()) != want.raw_input_contents_size()) {
    return ::testing::AssertionFailure()
           << raw.size() << " raw contents, protobuf has " << want.raw_input_contents_size();
  }
  const bool own = got.raw_input_contents_size() > 0;  // parsed whole (a group)
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != want.raw_input_contents(static_cast<int>(i))) {
      return ::testing::AssertionFailure() << "raw content " << i << " differs";
    }
    const std::string_view where = own ? std::string_view(got.raw_input_contents(i)) : wire;
    if (!Inside(raw[i], where)) {
      return ::testing::AssertionFailure() << "raw content " << i << " is a copy";
    }
  }
  if (own && SerializeDeterministic(got) != SerializeDeterministic(want)) {
    return ::testing::AssertionFailure() << "the message differs";
  }
  ModelInferRequest want_rest = want;
  want_rest.clear_raw_input_contents();
  got.clear_raw_input_contents();
  if (SerializeDeterministic(got) != SerializeDeterministic(want_rest)) {
    return ::testing::AssertionFailure() << "the other fields differ";
  }
  return ::testing::AssertionSuccess();
}

// A request as tritonclient sends one: metadata, then the raw contents.
ModelInferRequest Typical(std::vector<std::string> raw) {
  ModelInferRequest msg;
  msg.set_model_name("simple");
  msg.set_model_version("2");
  msg.set_id("req-1");
  (*msg.mutable_parameters())["priority"].set_int64_param(3);
  (*msg.mutable_parameters())["sequence_id"].set_uint64_param(9);
  for (size_t i = 0; i < raw.size(); ++i) {
    auto* in = msg.add_inputs();
    in->set_name("INPUT" + std::to_string(i));
    in->set_datatype("UINT8");
    in->add_shape(static_cast<int64_t>(raw[i].size()));
    msg.add_raw_input_contents(raw[i]);
  }
  auto* out = msg.add_outputs();
  out->set_name("OUTPUT0");
  (*out->mutable_parameters())["binary_data"].set_bool_param(true);
  return msg;
}

TEST(InferRequestWireTest, NoRawContents) {
  ModelInferRequest msg = Typical({});
  auto* in = msg.add_inputs();
  in->set_name("x");
  in->set_datatype("FP32");
  in->add_shape(2);
  in->mutable_contents()->add_fp32_contents(1.5f);
  in->mutable_contents()->add_fp32_contents(2.5f);
  const std::string wire = msg.SerializeAsString();
  ModelInferRequest got;
  std::vector<std::string_view> raw;
  ASSERT_TRUE(ParseModelInferRequestInPlace(wire, &got, &raw).ok());
  EXPECT_TRUE(raw.empty());
  EXPECT_EQ(SerializeDeterministic(got), SerializeDeterministic(msg));
  EXPECT_TRUE(SameAsProtobuf(wire));
  EXPECT_TRUE(SameAsProtobuf(""));
}

TEST(InferRequestWireTest, RawContentsAtTheEndAreViewsOfTheWire) {
  const ModelInferRequest msg = Typical({"abcd", "", std::string(300, '\7')});
  const std::string wire = msg.SerializeAsString();
  ModelInferRequest got;
  std::vector<std::string_view> raw;
  ASSERT_TRUE(ParseModelInferRequestInPlace(wire, &got, &raw).ok());
  ASSERT_EQ(raw.size(), 3u);
  EXPECT_EQ(raw[0], "abcd");
  EXPECT_EQ(raw[1], "");
  EXPECT_EQ(raw[2], std::string(300, '\7'));
  for (std::string_view v : raw) EXPECT_TRUE(Inside(v, wire));
  EXPECT_EQ(got.raw_input_contents_size(), 0);
  EXPECT_EQ(got.model_name(), "simple");
  EXPECT_EQ(got.inputs_size(), 3);
  EXPECT_TRUE(SameAsProtobuf(wire));
}

TEST(InferRequestWireTest, AFourMiBTensorIsNotCopied) {
  const std::string big(4 << 20, '\x5a');
  for (bool interleaved : {false, true}) {
    const std::string wire =
        interleaved ? Raw(big) + Field(1, "m") + Raw("x") : Typical({big}).SerializeAsString();
    ModelInferRequest got;
    std::vector<std::string_view> raw;
    ASSERT_TRUE(ParseModelInferRequestInPlace(wire, &got, &raw).ok());
    ASSERT_FALSE(raw.empty());
    EXPECT_EQ(raw[0].size(), big.size());
    EXPECT_TRUE(Inside(raw[0], wire)) << interleaved;
    EXPECT_EQ(raw[0], big);
    EXPECT_TRUE(SameAsProtobuf(wire));
  }
}

TEST(InferRequestWireTest, RawContentsBetweenOtherFields) {
  ModelInferRequest::InferInputTensor input;
  input.set_name("x");
  input.set_datatype("BYTES");
  input.add_shape(1);
  const std::string wire = Raw("first") + Field(1, "m") + Raw("") +
                           Field(5, input.SerializeAsString()) + Raw("third") + Field(3, "id-9") +
                           Field(6, "") + Raw("fourth");
  ModelInferRequest got;
  std::vector<std::string_view> raw;
  ASSERT_TRUE(ParseModelInferRequestInPlace(wire, &got, &raw).ok());
  ASSERT_EQ(raw.size(), 4u);
  EXPECT_EQ(raw[0], "first");
  EXPECT_EQ(raw[1], "");
  EXPECT_EQ(raw[2], "third");
  EXPECT_EQ(raw[3], "fourth");
  for (std::string_view v : raw) EXPECT_TRUE(Inside(v, wire));
  EXPECT_EQ(got.model_name(), "m");
  EXPECT_EQ(got.id(), "id-9");
  ASSERT_EQ(got.inputs_size(), 1);
  EXPECT_EQ(got.inputs(0).datatype(), "BYTES");
  EXPECT_EQ(got.outputs_size(), 1);
  EXPECT_EQ(got.raw_input_contents_size(), 0);
  EXPECT_TRUE(SameAsProtobuf(wire));
}

TEST(InferRequestWireTest, TheLastOfASingularFieldWinsAndRepeatedFieldsAppend) {
  inference::InferParameter one;
  one.set_int64_param(1);
  inference::InferParameter two;
  two.set_string_param("two");
  auto entry = [](std::string_view key, const inference::InferParameter& value) {
    return Field(4, Field(1, key) + Field(2, value.SerializeAsString()));
  };
  ModelInferRequest::InferInputTensor a;
  a.set_name("a");
  ModelInferRequest::InferInputTensor b;
  b.set_name("b");
  const std::string wire = Field(1, "first") + entry("k", one) + Raw("r0") +
                           Field(5, a.SerializeAsString()) + Field(1, "second") + Raw("r1") +
                           entry("k", two) + Field(5, b.SerializeAsString()) + Field(2, "v1");
  ModelInferRequest got;
  std::vector<std::string_view> raw;
  ASSERT_TRUE(ParseModelInferRequestInPlace(wire, &got, &raw).ok());
  EXPECT_EQ(got.model_name(), "second");
  EXPECT_EQ(got.parameters().at("k").string_param(), "two");
  ASSERT_EQ(got.inputs_size(), 2);
  EXPECT_EQ(got.inputs(0).name(), "a");
  EXPECT_EQ(got.inputs(1).name(), "b");
  EXPECT_EQ(raw.size(), 2u);
  EXPECT_TRUE(SameAsProtobuf(wire));
  // Without raw contents between them, the same rules.
  EXPECT_TRUE(SameAsProtobuf(Field(1, "first") + Field(1, "second") + Raw("r")));
}

TEST(InferRequestWireTest, ReplacesWhatMsgAndRawHeld) {
  ModelInferRequest got;
  got.set_id("old");
  got.add_raw_input_contents("old raw");
  std::vector<std::string_view> raw = {"stale"};
  const std::string wire = Field(1, "m") + Raw("new");
  ASSERT_TRUE(ParseModelInferRequestInPlace(wire, &got, &raw).ok());
  EXPECT_EQ(got.id(), "");
  EXPECT_EQ(got.raw_input_contents_size(), 0);
  ASSERT_EQ(raw.size(), 1u);
  EXPECT_EQ(raw[0], "new");
}

TEST(InferRequestWireTest, MalformedMessagesAreRefusedWithTheTransportsWords) {
  const std::vector<std::string> bad = {
      std::string("\x80", 1),                                        // a tag cut short
      Tag(1, 2) + "\x05" + "abc",                                    // a length past the end
      Tag(1, 2),                                                     // no length
      Tag(0, 2) + Varint(1) + "x",                                   // field 0
      std::string(1, '\0'),                                          // tag 0
      Tag(9, 6),                                                     // wire type 6
      Tag(9, 7),                                                     // wire type 7
      Tag(9, 4),                                                     // an end of group, no start
      Tag(9, 0) + std::string(10, '\x80') + "\x01",                  // an 11-byte varint
      Tag(9, 0) + "\x80",                                            // a varint cut short
      Tag(9, 1) + "1234567",                                         // fixed64 cut short
      Tag(9, 5) + "123",                                             // fixed32 cut short
      std::string("\xba\x80\x80\x80\x80\x00", 6),                    // a 6-byte tag
      Tag(7, 2) + std::string("\x81\x80\x80\x80\x80\x00", 6) + "x",  // a 6-byte length
      Tag(7, 2) + std::string("\xff\xff\xff\xff\x0f", 5),            // a 4 GiB length
      Field(1, "\xff\xfe"),                                          // model_name not UTF-8
      Raw("ok") + Field(5,
                        "\x0a\x05"
                        "ab"),  // a bad input message
  };
  google::protobuf::LogSilencer quiet;  // protobuf logs the UTF-8 it refuses
  for (const std::string& wire : bad) {
    ModelInferRequest got;
    std::vector<std::string_view> raw;
    const Status status = ParseModelInferRequestInPlace(wire, &got, &raw);
    ASSERT_FALSE(status.ok()) << ::testing::PrintToString(wire);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(status.message(),
              "the request message is not a valid inference.ModelInferRequest (protobuf); "
              "expected the message of the method the path names");
    EXPECT_TRUE(raw.empty());
    EXPECT_TRUE(SameAsProtobuf(wire)) << ::testing::PrintToString(wire);
  }
}

TEST(InferRequestWireTest, UnusualButValidEncodingsAsProtobufReadsThem) {
  // A tag and a length in more bytes than they need, a tag whose bits past
  // 32 protobuf drops (still field 7, wire type 2), unknown fields of every
  // wire type.
  const std::vector<std::string> good = {
      std::string("\xba\x00", 2) + Varint(1) + "a",
      Tag(7, 2) + std::string("\x81\x00", 2) + "a" + Field(1, "m"),
      std::string("\xba\x80\x80\x80\x10", 5) + Varint(2) + "ab",
      Tag(7, 2) + std::string("\x82\x80\x80\x80\x00", 5) + "ab",
      Tag(99, 0) + std::string(9, '\xff') + "\x01" + Raw("r") + Tag(99, 1) + "12345678" +
          Tag(99, 5) + "1234" + Field(99, "unknown") + Field(1, "m"),
      Tag(536870911, 0) + Varint(1) + Raw("highest field number"),
  };
  for (const std::string& wire : good) {
    ModelInferRequest got;
    std::vector<std::string_view> raw;
    EXPECT_TRUE(ParseModelInferRequestInPlace(wire, &got, &raw).ok())
        << ::testing::PrintToString(wire);
    EXPECT_FALSE(raw.empty());
    EXPECT_TRUE(SameAsProtobuf(wire)) << ::testing::PrintToString(wire);
  }
}

TEST(InferRequestWireTest, Field7OfAnotherWireTypeIsAnUnknownFieldAsInProtobuf) {
  for (const std::string& odd :
       {Tag(7, 0) + Varint(300), Tag(7, 1) + "12345678", Tag(7, 5) + "1234"}) {
    const std::string wire = Raw("a") + odd + Field(1, "m") + Raw("b");
    ModelInferRequest got;
    std::vector<std::string_view> raw;
    ASSERT_TRUE(ParseModelInferRequestInPlace(wire, &got, &raw).ok());
    ASSERT_EQ(raw.size(), 2u);
    EXPECT_EQ(raw[0], "a");
    EXPECT_EQ(raw[1], "b");
    EXPECT_TRUE(Inside(raw[1], wire));
    EXPECT_EQ(got.GetReflection()->GetUnknownFields(got).field_count(), 1);
    EXPECT_TRUE(SameAsProtobuf(wire));
  }
}

TEST(InferRequestWireTest, GroupsAreJudgedByProtobuf) {
  const std::string group = Tag(100, 3) + Tag(1, 0) + Varint(5) + Raw("in a group") + Tag(100, 4);
  for (const std::string& wire : {
           group,                                        // an unknown group: accepted
           Raw("a") + group + Field(1, "m") + Raw("b"),  // beside raw contents
           Tag(100, 3) + Tag(1, 0) + Varint(5),          // never ended
           Tag(100, 3) + Tag(101, 4),                    // ended as another group
           Tag(100, 3) + Tag(100, 3) + Tag(100, 4),      // one of two ended
           Tag(0, 3) + Tag(0, 4),                        // field 0
       }) {
    EXPECT_TRUE(SameAsProtobuf(wire)) << ::testing::PrintToString(wire);
  }
  {
    // Raw contents then point into the message, which protobuf parsed whole.
    const std::string wire = Raw("a") + group + Raw("b");
    ModelInferRequest got;
    std::vector<std::string_view> raw;
    ASSERT_TRUE(ParseModelInferRequestInPlace(wire, &got, &raw).ok());
    ASSERT_EQ(raw.size(), 2u);
    EXPECT_EQ(raw[1], "b");
    ASSERT_EQ(got.raw_input_contents_size(), 2);
    EXPECT_EQ(raw[1].data(), got.raw_input_contents(1).data());
  }
  // Protobuf's nesting limit decides how deep groups go.
  for (int depth : {99, 100, 101, 102}) {
    std::string wire;
    for (int i = 0; i < depth; ++i) wire += Tag(100, 3);
    for (int i = 0; i < depth; ++i) wire += Tag(100, 4);
    EXPECT_TRUE(SameAsProtobuf(wire)) << depth;
  }
}

TEST(InferRequestWireTest, EveryPrefixAndEveryMutationAgreesWithProtobuf) {
  ModelInferRequest::InferInputTensor input;
  input.set_name("x");
  input.set_datatype("FP32");
  input.add_shape(2);
  input.mutable_contents()->add_fp32_contents(1);
  const std::vector<std::string> messages = {
      Typical({"abcd", "", std::string(130, 'z')}).SerializeAsString(),
      Raw("r0") + Field(1, "m") + Raw("") + Field(5, input.SerializeAsString()) +
          Field(1, "second") + Raw(std::string(200, 'q')) + Field(3, "id"),
      Tag(7, 0) + Varint(1ULL << 40) + Raw("a") + Tag(50, 1) + "12345678" + Tag(51, 5) + "1234" +
          Tag(100, 3) + Raw("g") + Tag(100, 4) + Raw("b"),
  };
  const unsigned char kValues[] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
                                   0x0a, 0x0f, 0x10, 0x32, 0x38, 0x39, 0x3a, 0x3b, 0x3c,
                                   0x3d, 0x3f, 0x7f, 0x80, 0x81, 0xba, 0xff};
  google::protobuf::LogSilencer quiet;  // protobuf logs the UTF-8 it refuses
  for (const std::string& wire : messages) {
    ASSERT_TRUE(SameAsProtobuf(wire));
    for (size_t n = 0; n < wire.size(); ++n) {
      ASSERT_TRUE(SameAsProtobuf(std::string_view(wire).substr(0, n))) << "prefix of " << n;
    }
    for (size_t at = 0; at < wire.size(); ++at) {
      std::string mutated = wire;
      for (unsigned char v : kValues) {
        mutated[at] = static_cast<char>(v);
        ASSERT_TRUE(SameAsProtobuf(mutated)) << "byte " << at << " set to " << int{v};
      }
      ASSERT_TRUE(SameAsProtobuf(wire.substr(0, at) + wire.substr(at + 1)))
          << "byte " << at << " dropped";
    }
  }
}

TEST(InferRequestWireTest, OverTwoGiBIsRefusedUnread) {
  // Reserved, never touched: the size alone refuses it.
  const size_t size = size_t{INT_MAX} + 1;
  void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  ModelInferRequest got;
  std::vector<std::string_view> raw;
  const Status status = ParseModelInferRequestInPlace(
      std::string_view(static_cast<const char*>(p), size), &got, &raw);
  munmap(p, size);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("not a valid inference.ModelInferRequest"), std::string::npos);
}

}  // namespace
}  // namespace mm
