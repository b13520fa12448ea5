// What a TorchScript module's forward graph tells before it ever runs: whether
// a run's time is bounded by its inputs' sizes (LoadedModel::inline_safe),
// whether it forks (the inter-op pool) and whether it writes into its inputs
// (which are views of the request's bytes, so such a model gets copies).
//
// The graph is inlined (submodules' methods and called functions spliced in)
// and every block walked: a prim::Loop whose trip count the inputs' values
// may drive (a `while`, or a count taken from a tensor; one derived from
// sizes and constants is bounded), prim::fork / aten::wait, and any call left after
// inlining (an interface method: unknown code) make it unbounded. Writes are
// found by libtorch's alias analysis, aliases included. Conservative: when
// the analysis itself fails, the model is unbounded and writes its inputs.
//
// Every function the archive holds (not only what forward reaches: an
// interface's implementation is chosen at run time) is searched for operators
// that reach outside the model: aten::from_file and debugprims::load_tensor
// read a file of the server's, aten::save writes one, c10d / symm_mem
// operators talk to other processes. A tenant's model must not do any of it.
#pragma once

#include <torch/script.h>

#include <string>

namespace mm {

struct ForwardGraphTraits {
  bool bounded = false;       // run time bounded by the inputs' sizes
  std::string unbounded_why;  // the node kind that made it not ("prim::Loop")
  bool forks = false;         // uses prim::fork (the inter-op thread pool)
  bool writes_inputs = true;  // some node may write into an input (or an alias of it)
  // An operator that reaches outside the model (files, other processes)
  // found in any function of the archive ("aten::from_file"); empty: none.
  std::string forbidden_op;
};

// Never throws.
ForwardGraphTraits ScanForwardGraph(torch::jit::Module& module);

}  // namespace mm
