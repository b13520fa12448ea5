#include "ctl/infer_request.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mm {
namespace {

using ::testing::HasSubstr;

TEST(InferBodyTest, JsonInputsOnly) {
  PreparedInput x;
  x.name = "x";
  x.datatype = "FP32";
  x.shape = {1, 2};
  x.json_data = "[[1,2]]";
  const InferBody b = BuildInferBody({x}, {});
  EXPECT_FALSE(b.header_length.has_value());
  EXPECT_EQ(b.body, R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[[1,2]]}],)"
                    R"("parameters":{"binary_data_output":false}})");
}

TEST(InferBodyTest, BinaryInputsFollowTheHeaderInOrder) {
  PreparedInput a, b, c;
  a.name = "a";
  a.datatype = "UINT8";
  a.shape = {2};
  a.binary = true;
  a.binary_data = "\x01\x02";
  b.name = "b";
  b.datatype = "INT32";
  b.shape = {1};
  b.json_data = "[7]";
  c.name = "c\"q";
  c.datatype = "BOOL";
  c.shape = {1};
  c.binary = true;
  c.binary_data = "\x01";
  const InferBody r = BuildInferBody({a, b, c}, {"OUT0", "OUT1"});
  ASSERT_TRUE(r.header_length.has_value());
  const std::string json = r.body.substr(0, *r.header_length);
  EXPECT_EQ(json,
            R"({"inputs":[{"name":"a","datatype":"UINT8","shape":[2],)"
            R"("parameters":{"binary_data_size":2}},)"
            R"({"name":"b","datatype":"INT32","shape":[1],"data":[7]},)"
            R"({"name":"c\"q","datatype":"BOOL","shape":[1],"parameters":{"binary_data_size":1}}],)"
            R"("outputs":[{"name":"OUT0","parameters":{"binary_data":false}},)"
            R"({"name":"OUT1","parameters":{"binary_data":false}}],)"
            R"("parameters":{"binary_data_output":false}})");
  EXPECT_EQ(r.body.substr(*r.header_length), std::string("\x01\x02\x01"));
}

TEST(InferOutputsTest, PrintsEachOutput) {
  constexpr char kReply[] = R"({"model_name":"add_sub","model_version":"1","outputs":[
    {"name":"OUTPUT0","datatype":"FP32","shape":[4],"data":[0,11,22.5,33]},
    {"name":"OUTPUT1","datatype":"FP32","shape":[4],"data":[0,-9,"NaN","Infinity"]},
    {"name":"S","datatype":"BYTES","shape":[1,2],"data":["a\"b","c"]},
    {"name":"B","datatype":"BOOL","shape":[2],"data":[true,false]},
    {"name":"BIN","datatype":"INT8","shape":[3],"parameters":{"binary_data_size":3}}]})";
  auto text = FormatInferOutputs(kReply, std::nullopt, 20);
  ASSERT_TRUE(text.ok()) << text.status().message();
  EXPECT_EQ(*text,
            "OUTPUT0: FP32 [4] = [0, 11, 22.5, 33]\n"
            "OUTPUT1: FP32 [4] = [0, -9, NaN, Infinity]\n"
            "S: BYTES [1,2] = [\"a\\\"b\", \"c\"]\n"
            "B: BOOL [2] = [true, false]\n"
            "BIN: INT8 [3] = (3 bytes of binary data)\n");
}

TEST(InferOutputsTest, TruncatesLongDataAndReadsOnlyTheJsonHeader) {
  std::string data;
  for (int i = 0; i < 25; ++i) data += (i ? "," : "") + std::to_string(i);
  const std::string json =
      R"({"outputs":[{"name":"y","datatype":"INT64","shape":[25],"data":[)" + data + "]}]}";
  auto text = FormatInferOutputs(json + "\x01\x02garbage", json.size(), 20);
  ASSERT_TRUE(text.ok()) << text.status().message();
  EXPECT_EQ(*text,
            "y: INT64 [25] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, "
            "19, …] (25 values)\n");
  auto all = FormatInferOutputs(json, std::nullopt, 0);
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(*all, HasSubstr("23, 24]\n"));
}

TEST(InferOutputsTest, RefusesWhatIsNotAResponse) {
  EXPECT_FALSE(FormatInferOutputs("{}", std::nullopt, 20).ok());
  EXPECT_FALSE(FormatInferOutputs("[", std::nullopt, 20).ok());
}

}  // namespace
}  // namespace mm
