#include "backends/onnxruntime/onnx_graph_scan.h"
#include "source_dir.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace mm {
namespace {

using ::testing::HasSubstr;

// Protobuf wire format, just what the tests need.
std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}
std::string Field(uint32_t number, const std::string& bytes) {
  return Varint(uint64_t{number} << 3 | 2) + Varint(bytes.size()) + bytes;
}
std::string IntField(uint32_t number, uint64_t v) {
  return Varint(uint64_t{number} << 3) + Varint(v);
}

// onnx.proto: NodeProto{op_type=4, attribute=5, domain=7}, GraphProto{node=1},
// AttributeProto{g=6, graphs=11}, ModelProto{ir_version=1, graph=7, functions=25},
// FunctionProto{node=7, domain=10}.
std::string Node(const std::string& op, const std::string& domain = "",
                 const std::string& attributes = "") {
  return Field(4, op) + (domain.empty() ? "" : Field(7, domain)) + attributes;
}
std::string Graph(std::initializer_list<std::string> nodes) {
  std::string g = Field(2, "graph name");  // (GraphProto.name: skipped)
  for (const auto& n : nodes) g += Field(1, n);
  g += Field(5, std::string(1000, 'w'));  // an initializer, skipped by length
  return g;
}
std::string SubgraphAttribute(const std::string& graph) { return Field(5, Field(6, graph)); }
std::string Model(const std::string& graph, const std::string& functions = "") {
  return IntField(1, 8) + Field(7, graph) + functions;
}

OnnxGraphCost Scan(const std::string& bytes) {
  auto cost = ScanOnnxGraphCost({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
  EXPECT_TRUE(cost.ok()) << cost.status().ToString();
  return cost.ok() ? *cost : OnnxGraphCost{};
}

TEST(OnnxGraphScanTest, PlainOperatorsAreBoundedByTheirInputs) {
  auto cost = Scan(Model(Graph({Node("MatMul"), Node("Add"), Node("Softmax", "ai.onnx")})));
  EXPECT_TRUE(cost.bounded_by_input_size);
  EXPECT_EQ(cost.unbounded_op, "");
  EXPECT_TRUE(
      Scan(Model(Graph({Node("TreeEnsembleClassifier", "ai.onnx.ml")}))).bounded_by_input_size);
}

TEST(OnnxGraphScanTest, ControlFlowAndValueSizedOutputsAreNot) {
  for (std::string op : {"Loop", "Scan", "If", "Range", "Tile", "Expand", "ConstantOfShape",
                         "Resize", "OneHot", "Pad"}) {
    auto cost = Scan(Model(Graph({Node("Add"), Node(op), Node("Mul")})));
    EXPECT_FALSE(cost.bounded_by_input_size) << op;
    EXPECT_EQ(cost.unbounded_op, op);
  }
}

TEST(OnnxGraphScanTest, SubgraphsAreScanned) {
  // A Range inside a subgraph attribute of an otherwise harmless node.
  const std::string inner = Graph({Node("Range")});
  auto cost = Scan(Model(Graph({Node("Add", "", SubgraphAttribute(inner))})));
  EXPECT_FALSE(cost.bounded_by_input_size);
  EXPECT_EQ(cost.unbounded_op, "Range");
  // AttributeProto.graphs (repeated) too.
  cost = Scan(Model(Graph({Node("Add", "", Field(5, Field(11, Graph({Node("Tile")}))))})));
  EXPECT_EQ(cost.unbounded_op, "Tile");
}

TEST(OnnxGraphScanTest, UnknownDomainsAreNotBoundedButLocalFunctionsAreScanned) {
  auto cost = Scan(Model(Graph({Node("FusedGemm", "com.microsoft")})));
  EXPECT_FALSE(cost.bounded_by_input_size);
  EXPECT_EQ(cost.unbounded_op, "com.microsoft:FusedGemm");
  // A call into a model-local function is as bounded as the function's body.
  const std::string good = Field(25, Field(7, Node("Add")) + Field(10, "my.functions"));
  EXPECT_TRUE(Scan(Model(Graph({Node("AddTwice", "my.functions")}), good)).bounded_by_input_size);
  const std::string looping = Field(25, Field(7, Node("Loop")) + Field(10, "my.functions"));
  cost = Scan(Model(Graph({Node("AddTwice", "my.functions")}), looping));
  EXPECT_FALSE(cost.bounded_by_input_size);
  EXPECT_EQ(cost.unbounded_op, "Loop");
}

TEST(OnnxGraphScanTest, MalformedBytesAndDeepNestingAreErrors) {
  for (std::string bad : {std::string("\x3a\x05"
                                      "ab",
                                      4),
                          std::string("\xff\xff\xff", 3), std::string("\x3b", 1),
                          Field(7, Field(1, Field(4, "Add")) + "\x0a")}) {
    auto cost = ScanOnnxGraphCost({reinterpret_cast<const uint8_t*>(bad.data()), bad.size()});
    EXPECT_FALSE(cost.ok());
    EXPECT_THAT(cost.status().message(), HasSubstr("not a well-formed ONNX protobuf"));
  }
  std::string graph = Graph({Node("Add")});
  for (int i = 0; i < 70; ++i) graph = Graph({Node("Add", "", SubgraphAttribute(graph))});
  const std::string deep = Model(graph);
  auto cost = ScanOnnxGraphCost({reinterpret_cast<const uint8_t*>(deep.data()), deep.size()});
  ASSERT_FALSE(cost.ok());
  EXPECT_THAT(cost.status().message(), HasSubstr("deeper than 64 levels"));
  EXPECT_TRUE(Scan("").bounded_by_input_size);  // empty: nothing unbounded in it
}

TEST(OnnxGraphScanTest, TheExampleModelsAreBounded) {
  const auto examples = std::filesystem::path(MMSERVE_SOURCE_DIR) / "examples" / "models";
  for (const char* name : {"add_sub", "mlp_classifier", "image_cnn", "string_int"}) {
    std::ifstream in(examples / name / "1" / "model.onnx", std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_FALSE(bytes.empty()) << name;
    EXPECT_TRUE(Scan(bytes).bounded_by_input_size) << name << ": " << Scan(bytes).unbounded_op;
  }
}

}  // namespace
}  // namespace mm
