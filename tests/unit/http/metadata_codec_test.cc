#include "http/metadata_codec.h"

#include <gtest/gtest.h>

namespace mm {
namespace {

TEST(MetadataCodecTest, Server) {
  ServerMetadata md{"mmserve", "1.2", {"model_repository", "statistics"}};
  EXPECT_EQ(EncodeServerMetadata(md),
            R"({"name":"mmserve","version":"1.2","extensions":["model_repository","statistics"]})");
  EXPECT_EQ(EncodeServerMetadata({}), R"({"name":"","version":"","extensions":[]})");
}

TEST(MetadataCodecTest, Model) {
  ModelMetadata md;
  md.name = "add\"sub";
  md.versions = {"1", "3"};
  md.platform = "onnxruntime_onnx";
  md.inputs = {{"INPUT0", DataType::kFp32, {-1, 16}}};
  md.outputs = {{"OUT", DataType::kBytes, {}}, {"N", DataType::kInt64, {2}}};
  EXPECT_EQ(EncodeModelMetadata(md),
            R"({"name":"add\"sub","versions":["1","3"],"platform":"onnxruntime_onnx",)"
            R"("inputs":[{"name":"INPUT0","datatype":"FP32","shape":[-1,16]}],)"
            R"("outputs":[{"name":"OUT","datatype":"BYTES","shape":[]},)"
            R"({"name":"N","datatype":"INT64","shape":[2]}]})");
}

}  // namespace
}  // namespace mm
