#include "backends/pytorch/torch_graph.h"

#include <torch/csrc/jit/ir/alias_analysis.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/passes/inliner.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <string_view>

namespace mm {

namespace {

// Whether `value` (an int) follows from the inputs' sizes and constants
// alone: a loop with such a trip count runs a number of times its inputs'
// sizes bound (BatchNorm's check loops over the input's dimensions). A
// `while` loop's trip count is the largest int (its condition decides), and
// an int taken from a tensor's values (aten::Int, item) is not bounded.
bool SizeDerived(const torch::jit::Value* value, int depth = 0) {
  if (depth > 32) return false;
  const torch::jit::Node* node = value->node();
  const c10::Symbol kind = node->kind();
  if (kind == c10::prim::Constant) {
    const std::optional<c10::IValue> constant = torch::jit::toIValue(value);
    return constant && constant->isInt() &&
           constant->toInt() != std::numeric_limits<int64_t>::max();
  }
  static const c10::Symbol kSizes[] = {
      c10::Symbol::fromQualString("aten::len"), c10::Symbol::fromQualString("aten::dim"),
      c10::Symbol::fromQualString("aten::size"), c10::Symbol::fromQualString("aten::numel")};
  if (std::find(std::begin(kSizes), std::end(kSizes), kind) != std::end(kSizes)) return true;
  static const c10::Symbol kArithmetic[] = {
      c10::aten::add,      c10::aten::sub, c10::aten::mul,
      c10::aten::floordiv, c10::aten::neg, c10::Symbol::fromQualString("aten::__range_length"),
      c10::prim::min,      c10::prim::max, c10::aten::__getitem__};
  if (std::find(std::begin(kArithmetic), std::end(kArithmetic), kind) == std::end(kArithmetic)) {
    return false;
  }
  for (const torch::jit::Value* input : node->inputs()) {
    if (!SizeDerived(input, depth + 1)) return false;
  }
  return true;
}

void ScanBlock(const torch::jit::Block& block, ForwardGraphTraits& traits) {
  for (const torch::jit::Node* node : block.nodes()) {
    const c10::Symbol kind = node->kind();
    const bool forks = kind == c10::prim::fork || kind == c10::prim::forkClosure ||
                       kind == c10::aten::wait || kind == c10::prim::awaitable;
    const bool unknown = kind == c10::prim::CallMethod || kind == c10::prim::CallFunction;
    if (forks) traits.forks = true;
    const bool unbounded_loop = kind == c10::prim::Loop && !SizeDerived(node->input(0));
    if ((forks || unknown || unbounded_loop) && traits.bounded) {
      traits.bounded = false;
      traits.unbounded_why = kind.toQualString();
    }
    for (const torch::jit::Block* inner : node->blocks()) ScanBlock(*inner, traits);
  }
}

bool Forbidden(c10::Symbol kind) {
  static const c10::Symbol kOps[] = {
      c10::Symbol::fromQualString("aten::from_file"),
      c10::Symbol::fromQualString("aten::save"),
      c10::Symbol::fromQualString("debugprims::load_tensor"),
  };
  for (c10::Symbol op : kOps) {
    if (kind == op) return true;
  }
  const std::string_view ns = kind.toQualString();
  return ns.starts_with("c10d::") || ns.starts_with("_c10d_functional::") ||
         ns.starts_with("c10d_functional::") || ns.starts_with("symm_mem::") ||
         ns.starts_with("dist_c10d::") || ns.starts_with("rpc::");
}

void FindForbidden(const torch::jit::Block& block, std::string& found) {
  for (const torch::jit::Node* node : block.nodes()) {
    if (!found.empty()) return;
    if (Forbidden(node->kind())) {
      found = node->kind().toQualString();
      return;
    }
    for (const torch::jit::Block* inner : node->blocks()) FindForbidden(*inner, found);
  }
}

}  // namespace

ForwardGraphTraits ScanForwardGraph(torch::jit::Module& module) {
  ForwardGraphTraits traits;
  try {
    std::shared_ptr<torch::jit::Graph> graph = module.get_method("forward").graph()->copy();
    torch::jit::Inline(*graph);
    traits.bounded = true;
    ScanBlock(*graph->block(), traits);
    torch::jit::AliasDb alias_db(graph);
    bool writes = false;
    // Input 0 is the module itself.
    for (size_t i = 1; i < graph->inputs().size(); ++i) {
      if (alias_db.hasWriters(graph->inputs()[i])) writes = true;
    }
    traits.writes_inputs = writes;
    for (torch::jit::Function* function : module._ivalue()->compilation_unit()->get_functions()) {
      if (!traits.forbidden_op.empty()) break;
      if (function->isGraphFunction()) {
        FindForbidden(*torch::jit::toGraphFunction(*function).graph()->block(),
                      traits.forbidden_op);
      }
    }
  } catch (const std::exception& e) {
    traits.bounded = false;
    traits.unbounded_why = std::string("an unreadable graph (") + e.what() + ")";
    traits.writes_inputs = true;
  }
  return traits;
}

}  // namespace mm
