#include "backends/pytorch/torch_graph.h"

#include <torch/csrc/jit/ir/alias_analysis.h>
#include <torch/csrc/jit/passes/inliner.h>

namespace mm {

namespace {

void ScanBlock(const torch::jit::Block& block, ForwardGraphTraits& traits) {
  for (const torch::jit::Node* node : block.nodes()) {
    const c10::Symbol kind = node->kind();
    const bool forks = kind == c10::prim::fork || kind == c10::prim::forkClosure ||
                       kind == c10::aten::wait || kind == c10::prim::awaitable;
    const bool unknown = kind == c10::prim::CallMethod || kind == c10::prim::CallFunction;
    if (forks) traits.forks = true;
    if ((forks || unknown || kind == c10::prim::Loop) && traits.bounded) {
      traits.bounded = false;
      traits.unbounded_why = kind.toQualString();
    }
    for (const torch::jit::Block* inner : node->blocks()) ScanBlock(*inner, traits);
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
  } catch (const std::exception& e) {
    traits.bounded = false;
    traits.unbounded_why = std::string("an unreadable graph (") + e.what() + ")";
    traits.writes_inputs = true;
  }
  return traits;
}

}  // namespace mm
