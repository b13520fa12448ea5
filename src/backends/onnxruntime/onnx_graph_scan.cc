#include "backends/onnxruntime/onnx_graph_scan.h"

#include <algorithm>
#include <array>
#include <set>
#include <string_view>
#include <vector>

namespace mm {
namespace {

// Field numbers of onnx.proto (onnx/onnx.proto3, IR version 10).
constexpr uint32_t kModelGraph = 7;        // ModelProto.graph
constexpr uint32_t kModelFunctions = 25;   // ModelProto.functions
constexpr uint32_t kGraphNode = 1;         // GraphProto.node
constexpr uint32_t kNodeOpType = 4;        // NodeProto.op_type
constexpr uint32_t kNodeAttribute = 5;     // NodeProto.attribute
constexpr uint32_t kNodeDomain = 7;        // NodeProto.domain
constexpr uint32_t kAttributeGraph = 6;    // AttributeProto.g
constexpr uint32_t kAttributeGraphs = 11;  // AttributeProto.graphs
constexpr uint32_t kFunctionNode = 7;      // FunctionProto.node
constexpr uint32_t kFunctionDomain = 10;   // FunctionProto.domain
constexpr int kMaxDepth = 64;

// Default-domain operators whose run time follows their inputs' values.
constexpr std::array<std::string_view, 14> kUnboundedOps = {
    "Loop", "Scan",   "If",       "SequenceMap", "Range",  "ConstantOfShape", "Expand",
    "Tile", "Resize", "Upsample", "Pad",         "OneHot", "CenterCropPad",   "Col2Im"};

bool IsDefaultDomain(std::string_view domain) { return domain.empty() || domain == "ai.onnx"; }

// A cursor over protobuf wire format.
class Wire {
 public:
  explicit Wire(std::span<const uint8_t> bytes) : p_(bytes.data()), end_(p_ + bytes.size()) {}
  bool done() const { return p_ == end_; }

  // The next field's number and wire type; false at a malformed tag.
  bool Tag(uint32_t* field, uint32_t* type) {
    uint64_t tag = 0;
    if (!Varint(&tag) || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff) return false;
    *field = static_cast<uint32_t>(tag >> 3);
    *type = static_cast<uint32_t>(tag & 7);
    return true;
  }
  bool Varint(uint64_t* out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return false;
      const uint8_t b = *p_++;
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        *out = v;
        return true;
      }
    }
    return false;
  }
  // A length-delimited field's bytes.
  bool Bytes(std::span<const uint8_t>* out) {
    uint64_t n = 0;
    if (!Varint(&n) || n > static_cast<uint64_t>(end_ - p_)) return false;
    *out = {p_, static_cast<size_t>(n)};
    p_ += n;
    return true;
  }
  // Skips a field of wire type `type` (groups are not used by onnx.proto).
  bool Skip(uint32_t type) {
    uint64_t ignored = 0;
    std::span<const uint8_t> bytes;
    switch (type) {
      case 0:
        return Varint(&ignored);
      case 1:
        return Advance(8);
      case 2:
        return Bytes(&bytes);
      case 5:
        return Advance(4);
      default:
        return false;
    }
  }

 private:
  bool Advance(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) return false;
    p_ += n;
    return true;
  }
  const uint8_t* p_;
  const uint8_t* const end_;
};

std::string_view AsText(std::span<const uint8_t> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

class Scanner {
 public:
  Status Model(std::span<const uint8_t> bytes) {
    // Local functions first: a node in one of their domains calls one, whose
    // body is scanned on its own.
    std::vector<std::span<const uint8_t>> graphs;
    std::vector<std::span<const uint8_t>> functions;
    Wire w(bytes);
    while (!w.done()) {
      uint32_t field = 0, type = 0;
      if (!w.Tag(&field, &type)) return Malformed();
      if (type == 2 && (field == kModelGraph || field == kModelFunctions)) {
        std::span<const uint8_t> sub;
        if (!w.Bytes(&sub)) return Malformed();
        (field == kModelGraph ? graphs : functions).push_back(sub);
      } else if (!w.Skip(type)) {
        return Malformed();
      }
    }
    for (auto f : functions) MM_RETURN_IF_ERROR(FunctionDomain(f));
    for (auto f : functions) MM_RETURN_IF_ERROR(Nodes(f, kFunctionNode, 0));
    for (auto g : graphs) MM_RETURN_IF_ERROR(Nodes(g, kGraphNode, 0));
    return OkStatus();
  }
  OnnxGraphCost result() const { return cost_; }

 private:
  static Status Malformed() {
    return InvalidArgument("the model is not a well-formed ONNX protobuf");
  }

  Status FunctionDomain(std::span<const uint8_t> bytes) {
    Wire w(bytes);
    while (!w.done()) {
      uint32_t field = 0, type = 0;
      if (!w.Tag(&field, &type)) return Malformed();
      if (field == kFunctionDomain && type == 2) {
        std::span<const uint8_t> domain;
        if (!w.Bytes(&domain)) return Malformed();
        function_domains_.emplace(AsText(domain));
      } else if (!w.Skip(type)) {
        return Malformed();
      }
    }
    return OkStatus();
  }

  // The nodes (field `node_field`) of a GraphProto or FunctionProto.
  Status Nodes(std::span<const uint8_t> bytes, uint32_t node_field, int depth) {
    if (depth > kMaxDepth) {
      return InvalidArgument("the model nests subgraphs deeper than " + std::to_string(kMaxDepth) +
                             " levels");
    }
    Wire w(bytes);
    while (!w.done()) {
      uint32_t field = 0, type = 0;
      if (!w.Tag(&field, &type)) return Malformed();
      if (field == node_field && type == 2) {
        std::span<const uint8_t> node;
        if (!w.Bytes(&node)) return Malformed();
        MM_RETURN_IF_ERROR(Node(node, depth));
      } else if (!w.Skip(type)) {
        return Malformed();
      }
    }
    return OkStatus();
  }

  Status Node(std::span<const uint8_t> bytes, int depth) {
    std::string_view op_type, domain;
    Wire w(bytes);
    while (!w.done()) {
      uint32_t field = 0, type = 0;
      if (!w.Tag(&field, &type)) return Malformed();
      std::span<const uint8_t> sub;
      if (type == 2 && (field == kNodeOpType || field == kNodeDomain || field == kNodeAttribute)) {
        if (!w.Bytes(&sub)) return Malformed();
        if (field == kNodeOpType) op_type = AsText(sub);
        if (field == kNodeDomain) domain = AsText(sub);
        if (field == kNodeAttribute) MM_RETURN_IF_ERROR(Attribute(sub, depth));
      } else if (!w.Skip(type)) {
        return Malformed();
      }
    }
    if (!cost_.bounded_by_input_size) return OkStatus();
    bool unbounded = false;
    if (IsDefaultDomain(domain)) {
      unbounded =
          std::find(kUnboundedOps.begin(), kUnboundedOps.end(), op_type) != kUnboundedOps.end();
    } else {
      // The ONNX-ML operators are bounded by their inputs and the model;
      // a local function's body is scanned itself; anything else is unknown.
      unbounded =
          domain != "ai.onnx.ml" && function_domains_.find(domain) == function_domains_.end();
    }
    if (unbounded) {
      cost_.bounded_by_input_size = false;
      cost_.unbounded_op = IsDefaultDomain(domain)
                               ? std::string(op_type)
                               : std::string(domain) + ":" + std::string(op_type);
    }
    return OkStatus();
  }

  // A node attribute's subgraphs (Loop's body, If's branches, ...).
  Status Attribute(std::span<const uint8_t> bytes, int depth) {
    Wire w(bytes);
    while (!w.done()) {
      uint32_t field = 0, type = 0;
      if (!w.Tag(&field, &type)) return Malformed();
      if (type == 2 && (field == kAttributeGraph || field == kAttributeGraphs)) {
        std::span<const uint8_t> graph;
        if (!w.Bytes(&graph)) return Malformed();
        MM_RETURN_IF_ERROR(Nodes(graph, kGraphNode, depth + 1));
      } else if (!w.Skip(type)) {
        return Malformed();
      }
    }
    return OkStatus();
  }

  OnnxGraphCost cost_;
  std::set<std::string, std::less<>> function_domains_;
};

}  // namespace

StatusOr<OnnxGraphCost> ScanOnnxGraphCost(std::span<const uint8_t> model) {
  Scanner scanner;
  MM_RETURN_IF_ERROR(scanner.Model(model));
  return scanner.result();
}

}  // namespace mm
