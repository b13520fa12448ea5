#include "lifecycle/warmup.h"

#include <gmock/gmock.h>
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "backends/onnxruntime/onnxruntime_backend.h"
#include "core/bytes_tensor.h"
#include "fake_instance.h"
#include "source_dir.h"

namespace mm {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

inference::ModelConfig Config(const std::string& text) {
  inference::ModelConfig config;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &config)) << text;
  return config;
}

using fakes::FakeInstance;
using fakes::SeenInput;

// A unique temporary model directory, removed with everything in it.
class TempModelDir {
 public:
  TempModelDir() {
    static std::atomic<int> next{0};
    root_ = fs::temp_directory_path() /
            ("mmserve_warmup_test_" + std::to_string(::getpid()) + "_" + std::to_string(next++));
    fs::remove_all(root_);
    fs::create_directories(root_ / "m" / "warmup");
  }
  ~TempModelDir() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  fs::path root() const { return root_; }
  fs::path model() const { return root_ / "m"; }
  fs::path warmup() const { return root_ / "m" / "warmup"; }
  void Write(const fs::path& path, const std::string& bytes) const {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }

 private:
  fs::path root_;
};

std::string FloatBytes(const std::vector<float>& values) {
  std::string s(values.size() * sizeof(float), '\0');
  std::memcpy(s.data(), values.data(), s.size());
  return s;
}

template <typename T>
std::vector<T> Values(const SeenInput& input) {
  std::vector<T> out(input.bytes.size() / sizeof(T));
  std::memcpy(out.data(), input.bytes.data(), out.size() * sizeof(T));
  return out;
}

bool AllZero(const std::vector<std::byte>& bytes) {
  for (auto b : bytes) {
    if (b != std::byte{0}) return false;
  }
  return true;
}

// A non-batching model with x: FP32 [4] and y: INT64 [2,3].
const char* kPlainModel = R"(
  name: "m" max_batch_size: 0
  input [ { name: "x" data_type: TYPE_FP32 dims: [ 4 ] },
          { name: "y" data_type: TYPE_INT64 dims: [ 2, 3 ] } ]
)";

// kPlainModel plus one warmup sample whose text is `sample`.
inference::ModelConfig PlainWithSample(const std::string& sample) {
  return Config(std::string(kPlainModel) + "model_warmup [ { " + sample + " } ]");
}

const char* kBothZero = R"(
  name: "s" batch_size: 1
  inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ 4 ] zero_data: true } }
  inputs { key: "y" value: { data_type: TYPE_INT64 dims: [ 2, 3 ] zero_data: true } })";

Status Warm(const inference::ModelConfig& config, FakeInstance& instance,
            const fs::path& model_dir = "/nonexistent/m") {
  return RunWarmup(config, model_dir, instance);
}

void ExpectInvalid(const inference::ModelConfig& config, const std::string& message,
                   const fs::path& model_dir = "/nonexistent/m") {
  FakeInstance instance({.record = true});
  Status s = Warm(config, instance, model_dir);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr(message));
  EXPECT_TRUE(instance.requests().empty());
}

// ------------------------------------------------------------------- data

TEST(WarmupTest, NoSamplesRunsNothing) {
  FakeInstance instance({.record = true});
  EXPECT_TRUE(Warm(Config(kPlainModel), instance).ok());
  EXPECT_TRUE(instance.requests().empty());
}

TEST(WarmupTest, ZeroDataNonBatchingModel) {
  FakeInstance instance({.record = true});
  Status s = Warm(PlainWithSample(kBothZero), instance);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(instance.requests().size(), 1u);
  const auto r = instance.requests()[0];
  EXPECT_EQ(r.model_name, "m");
  EXPECT_TRUE(r.requested_outputs.empty());
  ASSERT_EQ(r.inputs.size(), 2u);
  EXPECT_EQ(r.inputs[0].name, "x");
  EXPECT_EQ(r.inputs[0].dtype, DataType::kFp32);
  EXPECT_EQ(r.inputs[0].shape, (Shape{4}));
  EXPECT_EQ(r.inputs[0].bytes.size(), 16u);
  EXPECT_TRUE(AllZero(r.inputs[0].bytes));
  EXPECT_EQ(r.inputs[1].name, "y");
  EXPECT_EQ(r.inputs[1].dtype, DataType::kInt64);
  EXPECT_EQ(r.inputs[1].shape, (Shape{2, 3}));
  EXPECT_EQ(r.inputs[1].bytes.size(), 48u);
  EXPECT_TRUE(AllZero(r.inputs[1].bytes));
}

TEST(WarmupTest, BatchingModelPrependsBatchSizeAndTakesAnyWildcardDim) {
  FakeInstance instance({.record = true});
  Status s = Warm(Config(R"(
    name: "m" max_batch_size: 8
    input [ { name: "x" data_type: TYPE_FP32 dims: [ -1, 3 ] } ]
    model_warmup [
      { name: "a" batch_size: 4
        inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ 5, 3 ] zero_data: true } } },
      { name: "b" batch_size: 8
        inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ 0, 3 ] random_data: true } } }
    ])"),
                  instance);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(instance.requests().size(), 2u);
  EXPECT_EQ(instance.requests()[0].inputs[0].shape, (Shape{4, 5, 3}));
  EXPECT_EQ(instance.requests()[0].inputs[0].bytes.size(), 4u * 5 * 3 * 4);
  EXPECT_EQ(instance.requests()[1].inputs[0].shape, (Shape{8, 0, 3}));
  EXPECT_TRUE(instance.requests()[1].inputs[0].bytes.empty());
}

TEST(WarmupTest, CountRunsEachSampleThatManyTimesInOrder) {
  FakeInstance instance({.record = true});
  auto config = Config(R"(
    name: "m" max_batch_size: 2
    input [ { name: "x" data_type: TYPE_INT32 dims: [ 2 ] } ]
    model_warmup [
      { name: "three" batch_size: 2 count: 3
        inputs { key: "x" value: { data_type: TYPE_INT32 dims: [ 2 ] random_data: true } } },
      { name: "once" batch_size: 1 count: 0
        inputs { key: "x" value: { data_type: TYPE_INT32 dims: [ 2 ] zero_data: true } } }
    ])");
  ASSERT_TRUE(Warm(config, instance).ok());
  ASSERT_EQ(instance.requests().size(), 4u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(instance.requests()[i].inputs[0].shape, (Shape{2, 2}));
    EXPECT_EQ(instance.requests()[i].inputs[0].bytes, instance.requests()[0].inputs[0].bytes);
  }
  EXPECT_EQ(instance.requests()[3].inputs[0].shape, (Shape{1, 2}));
}

TEST(WarmupTest, RandomDataIsDeterministicAndValidForEachType) {
  auto config = Config(R"(
    name: "m" max_batch_size: 0
    input [ { name: "f32" data_type: TYPE_FP32 dims: [ 256 ] },
            { name: "f64" data_type: TYPE_FP64 dims: [ 256 ] },
            { name: "f16" data_type: TYPE_FP16 dims: [ 256 ] },
            { name: "bf16" data_type: TYPE_BF16 dims: [ 256 ] },
            { name: "i8" data_type: TYPE_INT8 dims: [ 256 ] },
            { name: "u8" data_type: TYPE_UINT8 dims: [ 256 ] },
            { name: "i32" data_type: TYPE_INT32 dims: [ 256 ] },
            { name: "u64" data_type: TYPE_UINT64 dims: [ 256 ] },
            { name: "b" data_type: TYPE_BOOL dims: [ 256 ] } ]
    model_warmup [ { name: "r" batch_size: 1
      inputs { key: "f32" value: { data_type: TYPE_FP32 dims: [ 256 ] random_data: true } }
      inputs { key: "f64" value: { data_type: TYPE_FP64 dims: [ 256 ] random_data: true } }
      inputs { key: "f16" value: { data_type: TYPE_FP16 dims: [ 256 ] random_data: true } }
      inputs { key: "bf16" value: { data_type: TYPE_BF16 dims: [ 256 ] random_data: true } }
      inputs { key: "i8" value: { data_type: TYPE_INT8 dims: [ 256 ] random_data: true } }
      inputs { key: "u8" value: { data_type: TYPE_UINT8 dims: [ 256 ] random_data: true } }
      inputs { key: "i32" value: { data_type: TYPE_INT32 dims: [ 256 ] random_data: true } }
      inputs { key: "u64" value: { data_type: TYPE_UINT64 dims: [ 256 ] random_data: true } }
      inputs { key: "b" value: { data_type: TYPE_BOOL dims: [ 256 ] random_data: true } } } ])");
  FakeInstance first({.record = true}), second({.record = true});
  ASSERT_TRUE(Warm(config, first).ok());
  ASSERT_TRUE(Warm(config, second).ok());
  ASSERT_EQ(first.requests().size(), 1u);
  ASSERT_EQ(second.requests().size(), 1u);
  const auto in = first.requests()[0].inputs;
  ASSERT_EQ(in.size(), 9u);
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(in[i].bytes, second.requests()[0].inputs[i].bytes) << in[i].name;
    EXPECT_FALSE(AllZero(in[i].bytes)) << in[i].name;
  }
  for (float v : Values<float>(in[0])) EXPECT_TRUE(v >= 0.0f && v < 1.0f) << v;
  for (double v : Values<double>(in[1])) EXPECT_TRUE(v >= 0.0 && v < 1.0) << v;
  // Non-negative FP16/BF16 order like their bits; 1.0 is 0x3C00 / 0x3F80.
  for (uint16_t v : Values<uint16_t>(in[2])) EXPECT_LT(v, 0x3C00) << v;
  for (uint16_t v : Values<uint16_t>(in[3])) EXPECT_LT(v, 0x3F80) << v;
  // 0.5 encodes as 0x3800 in FP16 and 0x3F00 in BF16: both ranges are used.
  auto f16 = Values<uint16_t>(in[2]);
  EXPECT_TRUE(std::any_of(f16.begin(), f16.end(), [](uint16_t v) { return v >= 0x3800; }));
  EXPECT_TRUE(std::any_of(f16.begin(), f16.end(), [](uint16_t v) { return v < 0x3800; }));
  for (int8_t v : Values<int8_t>(in[4])) EXPECT_TRUE(v >= 0 && v < 100) << int{v};
  for (uint8_t v : Values<uint8_t>(in[5])) EXPECT_LT(v, 100);
  for (int32_t v : Values<int32_t>(in[6])) EXPECT_TRUE(v >= 0 && v < 100) << v;
  for (uint64_t v : Values<uint64_t>(in[7])) EXPECT_LT(v, 100u);
  for (uint8_t v : Values<uint8_t>(in[8])) EXPECT_LE(v, 1);
}

TEST(WarmupTest, BytesZeroAndRandomDataAreEmptyStrings) {
  FakeInstance instance({.record = true});
  Status s = Warm(Config(R"(
    name: "m" max_batch_size: 4
    input [ { name: "t" data_type: TYPE_STRING dims: [ 3 ] } ]
    model_warmup [
      { name: "z" batch_size: 2
        inputs { key: "t" value: { data_type: TYPE_STRING dims: [ 3 ] zero_data: true } } },
      { name: "r" batch_size: 1
        inputs { key: "t" value: { data_type: TYPE_STRING dims: [ 3 ] random_data: true } } }
    ])"),
                  instance);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(instance.requests().size(), 2u);
  const auto z = instance.requests()[0].inputs[0];
  EXPECT_EQ(z.dtype, DataType::kBytes);
  EXPECT_EQ(z.shape, (Shape{2, 3}));
  auto elements = SplitBytesTensor(z.bytes, 6, "t");
  ASSERT_TRUE(elements.ok()) << elements.status().ToString();
  for (auto e : *elements) EXPECT_TRUE(e.empty());
  const auto second_bytes = instance.requests()[1].inputs[0].bytes;  // (views point into it)
  auto random = SplitBytesTensor(second_bytes, 3, "t");
  ASSERT_TRUE(random.ok()) << random.status().ToString();
}

TEST(WarmupTest, FileDataIsSentAsIs) {
  TempModelDir dir;
  fs::create_directories(dir.warmup() / "sub");
  dir.Write(dir.warmup() / "sub" / "x.bin", FloatBytes({1.5f, -2, 3, 4}));
  std::string y(48, '\0');
  for (size_t i = 0; i < y.size(); ++i) y[i] = static_cast<char>(i);
  dir.Write(dir.warmup() / "y.bin", y);
  FakeInstance instance({.record = true});
  Status s = Warm(PlainWithSample(R"(
    name: "f" batch_size: 1
    inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ 4 ] input_data_file: "sub/x.bin" } }
    inputs { key: "y" value: { data_type: TYPE_INT64 dims: [ 2, 3 ] input_data_file: "y.bin" } })"),
                  instance, dir.model());
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(instance.requests().size(), 1u);
  EXPECT_EQ(Values<float>(instance.requests()[0].inputs[0]), (std::vector<float>{1.5f, -2, 3, 4}));
  const auto got = instance.requests()[0].inputs[1].bytes;
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(got.data()), got.size()), y);
}

TEST(WarmupTest, BytesFileMustHoldExactlyTheElementCount) {
  TempModelDir dir;
  std::string three;
  AppendBytesElement("ab", three);
  AppendBytesElement("", three);
  AppendBytesElement("xyz", three);
  dir.Write(dir.warmup() / "three.bin", three);
  std::string two;
  AppendBytesElement("abcdefgh", two);
  AppendBytesElement("ijklmnop", two);
  dir.Write(dir.warmup() / "two.bin", two);
  auto config = [](const std::string& file) {
    return Config(R"(
      name: "m" max_batch_size: 0
      input [ { name: "t" data_type: TYPE_STRING dims: [ 3 ] } ]
      model_warmup [ { name: "s" batch_size: 1
        inputs { key: "t" value: { data_type: TYPE_STRING dims: [ 3 ] input_data_file: ")" +
                  file + R"(" } } } ])");
  };
  FakeInstance instance({.record = true});
  Status s = Warm(config("three.bin"), instance, dir.model());
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(instance.requests().size(), 1u);
  const auto bytes = instance.requests()[0].inputs[0].bytes;  // (views point into it)
  auto elements = SplitBytesTensor(bytes, 3, "t");
  ASSERT_TRUE(elements.ok());
  EXPECT_EQ((*elements)[0], "ab");
  EXPECT_EQ((*elements)[2], "xyz");
  ExpectInvalid(config("two.bin"),
                "model 'm' warmup sample 's': input 't': input_data_file " +
                    (fs::canonical(dir.warmup()) / "two.bin").string() +
                    ": BYTES data holds 2 elements but its shape declares 3",
                dir.model());
}

TEST(WarmupTest, FileSizeMustMatchTheShape) {
  TempModelDir dir;
  dir.Write(dir.warmup() / "x.bin", FloatBytes({1, 2, 3}));
  ExpectInvalid(PlainWithSample(R"(
    name: "f" batch_size: 1
    inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ 4 ] input_data_file: "x.bin" } }
    inputs { key: "y" value: { data_type: TYPE_INT64 dims: [ 2, 3 ] zero_data: true } })"),
                "model 'm' warmup sample 'f': input 'x': input_data_file " +
                    (fs::canonical(dir.warmup()) / "x.bin").string() +
                    " holds 12 bytes; expected 16 (4 elements of TYPE_FP32)",
                dir.model());
}

TEST(WarmupTest, MissingFileNamesThePath) {
  TempModelDir dir;
  ExpectInvalid(PlainWithSample(R"(
    name: "f" batch_size: 1
    inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ 4 ] input_data_file: "nope.bin" } }
    inputs { key: "y" value: { data_type: TYPE_INT64 dims: [ 2, 3 ] zero_data: true } })"),
                "input 'x': input_data_file " + (dir.warmup() / "nope.bin").string() +
                    " cannot be used: it does not exist",
                dir.model());
}

TEST(WarmupTest, FileMayNotEscapeTheWarmupFolder) {
  TempModelDir dir;
  dir.Write(dir.root() / "secret.bin", FloatBytes({1, 2, 3, 4}));
  dir.Write(dir.model() / "inside_model.bin", FloatBytes({1, 2, 3, 4}));
  fs::create_symlink(dir.root() / "secret.bin", dir.warmup() / "link.bin");
  fs::create_directory_symlink(dir.root(), dir.warmup() / "up");
  auto with_file = [](const std::string& file) {
    return PlainWithSample(R"(
      name: "f" batch_size: 1
      inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ 4 ] input_data_file: ")" +
                           file + R"(" } }
      inputs { key: "y" value: { data_type: TYPE_INT64 dims: [ 2, 3 ] zero_data: true } })");
  };
  ExpectInvalid(with_file((dir.root() / "secret.bin").string()), "is absolute; expected a path",
                dir.model());
  ExpectInvalid(with_file("../inside_model.bin"), "contains '..'", dir.model());
  ExpectInvalid(with_file("sub/../../inside_model.bin"), "contains '..'", dir.model());
  ExpectInvalid(with_file("link.bin"),
                "resolves to " + fs::canonical(dir.root() / "secret.bin").string() + ", outside",
                dir.model());
  ExpectInvalid(with_file("up/secret.bin"), ", outside", dir.model());
  ExpectInvalid(with_file("."), "is not a regular file", dir.model());
  ExpectInvalid(with_file(""), "input_data_file is empty", dir.model());
}

// ------------------------------------------------------------- validation

TEST(WarmupTest, RejectsBadSamples) {
  const std::string y = R"(
    inputs { key: "y" value: { data_type: TYPE_INT64 dims: [ 2, 3 ] zero_data: true } })";
  const std::string x_ok = R"(
    inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ 4 ] zero_data: true } })";
  ExpectInvalid(PlainWithSample("batch_size: 1" + x_ok + y),
                "model 'm' warmup sample #0: name is empty");
  ExpectInvalid(PlainWithSample("name: \"s\" batch_size: 0" + x_ok + y),
                "model 'm' warmup sample 's': batch_size is 0; expected 1 to 1 (the model does "
                "not batch)");
  ExpectInvalid(PlainWithSample("name: \"s\" batch_size: 2" + x_ok + y),
                "model 'm' warmup sample 's': batch_size is 2; expected 1 to 1");
  ExpectInvalid(PlainWithSample("name: \"s\" batch_size: 1" + y),
                "model 'm' warmup sample 's': input 'x' has no warmup data; every "
                "non-optional input needs some");
  ExpectInvalid(PlainWithSample("name: \"s\" batch_size: 1" + x_ok + y + R"(
    inputs { key: "z" value: { data_type: TYPE_FP32 dims: [ 4 ] zero_data: true } })"),
                "model 'm' warmup sample 's': input 'z' is not an input of the model");
  ExpectInvalid(PlainWithSample(R"(name: "s" batch_size: 1
    inputs { key: "x" value: { data_type: TYPE_INT32 dims: [ 4 ] zero_data: true } })" +
                                y),
                "model 'm' warmup sample 's': input 'x': expected TYPE_FP32, got TYPE_INT32");
  ExpectInvalid(PlainWithSample(R"(name: "s" batch_size: 1
    inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ 2, 2 ] zero_data: true } })" +
                                y),
                "input 'x': dims [2,2] have 2 dimensions; the config's [4] has 1");
  ExpectInvalid(PlainWithSample(R"(name: "s" batch_size: 1
    inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ 5 ] zero_data: true } })" +
                                y),
                "input 'x': dims [5] do not match the config's [4]");
  ExpectInvalid(PlainWithSample(R"(name: "s" batch_size: 1
    inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ -1 ] zero_data: true } })" +
                                y),
                "input 'x': dims[0] is -1; expected a size >= 0");
  ExpectInvalid(PlainWithSample(R"(name: "s" batch_size: 1
    inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ 4 ] } })" +
                                y),
                "input 'x': no data; expected exactly one of zero_data, random_data or "
                "input_data_file");
}

TEST(WarmupTest, BatchingModelLimitsBatchSize) {
  auto config = [](int batch) {
    return Config(R"(
      name: "m" max_batch_size: 4
      input [ { name: "x" data_type: TYPE_FP32 dims: [ 2 ] } ]
      model_warmup [ { name: "s" batch_size: )" +
                  std::to_string(batch) + R"(
        inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ 2 ] zero_data: true } } } ])");
  };
  FakeInstance instance({.record = true});
  EXPECT_TRUE(Warm(config(4), instance).ok());
  ExpectInvalid(config(5), "batch_size is 5; expected 1 to 4 (max_batch_size)");
  ExpectInvalid(config(0), "batch_size is 0; expected 1 to 4 (max_batch_size)");
}

TEST(WarmupTest, OptionalInputMayBeLeftOut) {
  FakeInstance instance({.record = true});
  Status s = Warm(Config(R"(
    name: "m" max_batch_size: 0
    input [ { name: "x" data_type: TYPE_FP32 dims: [ 1 ] },
            { name: "o" data_type: TYPE_FP32 dims: [ 1 ] optional: true } ]
    model_warmup [ { name: "s" batch_size: 1
      inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ 1 ] zero_data: true } } } ])"),
                  instance);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(instance.requests().size(), 1u);
  ASSERT_EQ(instance.requests()[0].inputs.size(), 1u);
  EXPECT_EQ(instance.requests()[0].inputs[0].name, "x");
}

TEST(WarmupTest, CapsSampleSizeAndGuardsOverflow) {
  auto config = [](const std::string& dims_a, const std::string& dims_b) {
    return Config(R"(
      name: "m" max_batch_size: 0
      input [ { name: "a" data_type: TYPE_FP64 dims: [ -1, -1 ] },
              { name: "b" data_type: TYPE_FP64 dims: [ -1, -1 ] } ]
      model_warmup [ { name: "big" batch_size: 1
        inputs { key: "a" value: { data_type: TYPE_FP64 dims: )" +
                  dims_a + R"( zero_data: true } }
        inputs { key: "b" value: { data_type: TYPE_FP64 dims: )" +
                  dims_b + R"( zero_data: true } } } ])");
  };
  // One input over the cap.
  ExpectInvalid(config("[ 4096, 2049 ]", "[ 1, 1 ]"),
                "model 'm' warmup sample 'big': input 'a': shape [4096,2049] needs more than "
                "67108864 bytes; a warmup sample may hold at most 64 MiB");
  // Element count past int64.
  ExpectInvalid(config("[ 4611686018427387904, 4 ]", "[ 1, 1 ]"),
                "input 'a': shape [4611686018427387904,4] needs more than 67108864 bytes");
  // Each under the cap, together over it.
  ExpectInvalid(config("[ 2048, 2048 ]", "[ 2048, 2049 ]"),
                "model 'm' warmup sample 'big': the inputs need 67125248 bytes or more; a "
                "warmup sample may hold at most 64 MiB (67108864 bytes) of input data");
}

TEST(WarmupTest, ExecutionFailureKeepsCodeAndStops) {
  FakeInstance instance({.record = true});
  instance.FailWith(Unavailable("instance crashed"));
  auto config = PlainWithSample(std::string(kBothZero) + " count: 5");
  Status s = Warm(config, instance);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "model 'm' warmup sample 's': instance crashed");
  EXPECT_EQ(instance.requests().size(), 1u);
}

TEST(WarmupTest, StopsAtFirstBadSampleAfterRunningEarlierOnes) {
  FakeInstance instance({.record = true});
  auto config = Config(std::string(kPlainModel) + "model_warmup [ { " + kBothZero +
                       " }, { name: \"bad\" batch_size: 1 } ]");
  Status s = Warm(config, instance);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("model 'm' warmup sample 'bad': input 'x' has no warmup"));
  EXPECT_EQ(instance.requests().size(), 1u);
}

// ------------------------------------------------------- real ONNX model

// Forwards to a real instance and keeps its responses.
class RecordingInstance : public ModelInstance {
 public:
  explicit RecordingInstance(ModelInstance& inner) : inner_(inner) {}
  Status Execute(const InferRequest& request, InferResponse& response) override {
    Status s = inner_.Execute(request, response);
    if (s.ok()) {
      inputs.push_back(request.inputs);
      outputs.push_back(response.outputs);
    }
    return s;
  }
  std::vector<std::vector<Tensor>> inputs;
  std::vector<std::vector<Tensor>> outputs;

 private:
  ModelInstance& inner_;
};

TEST(WarmupTest, WarmsUpOnnxAddSub) {
  const fs::path model_dir = fs::path(MMSERVE_SOURCE_DIR) / "examples" / "models" / "add_sub";
  auto backend = OnnxRuntimeBackend::Create({});
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  LoadSpec spec;
  spec.model_name = "add_sub";
  spec.version = 1;
  spec.model_dir = model_dir;
  spec.version_dir = model_dir / "1";
  spec.config.set_name("add_sub");
  auto model = (*backend)->Load(spec);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  ASSERT_FALSE((*model)->instances.empty());

  inference::ModelConfig config = (*model)->config;
  ASSERT_TRUE(google::protobuf::TextFormat::MergeFromString(R"(
    model_warmup [
      { name: "zero" batch_size: 1
        inputs { key: "INPUT0" value: { data_type: TYPE_FP32 dims: [ 4 ] zero_data: true } }
        inputs { key: "INPUT1" value: { data_type: TYPE_FP32 dims: [ 4 ] zero_data: true } } },
      { name: "random" batch_size: 1 count: 2
        inputs { key: "INPUT0" value: { data_type: TYPE_FP32 dims: [ 4 ] random_data: true } }
        inputs { key: "INPUT1" value: { data_type: TYPE_FP32 dims: [ 4 ] random_data: true } } }
    ])",
                                                            &config));
  RecordingInstance instance(*(*model)->instances[0]);
  Status s = RunWarmup(config, model_dir, instance);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(instance.outputs.size(), 3u);
  for (size_t run = 0; run < 3; ++run) {
    ASSERT_EQ(instance.outputs[run].size(), 2u);
    const auto& out = instance.outputs[run];
    const auto& in = instance.inputs[run];
    auto sum = out[0].name == "OUTPUT0" ? out[0].as<float>() : out[1].as<float>();
    auto a = in[0].as<float>();
    auto b = in[1].as<float>();
    ASSERT_EQ(sum.size(), 4u);
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_FLOAT_EQ(sum[i], a[i] + b[i]);
      if (run == 0) EXPECT_EQ(sum[i], 0.0f);
    }
  }
}

}  // namespace
}  // namespace mm
