// OutputShapePlan: an ONNX model's output shape as its graph declares it in
// terms of its inputs' shapes, so that the backend can allocate a run's
// outputs itself, before the run, and hand them to ONNX Runtime to write
// into. ONNX Runtime then skips its own output allocations: about 20 fewer
// heap allocations and a quarter less time per Run of a small model
// (measured on add_sub; docs/benchmarks.md, issue 27).
//
// A dimension is known when the graph fixes it (a size) or names it (a
// dim_param such as "batch") as a dimension of an input is named: the run's
// size is then that input's. Anything else (an unnamed dynamic dimension, a
// name no input has) leaves the output unplanned, and ONNX Runtime allocates
// it as before.
//
// A declaration can be wrong: ONNX Runtime loads a model whose declared
// output shape differs from what its graph computes, and then refuses a run
// whose preallocated output has the declared shape. The backend runs again
// without preallocated outputs (onnxruntime_backend.cc), so a wrong
// declaration costs time, never a wrong answer.
//
// Pure (no ONNX Runtime here); unit-tested in output_plan_test.cc.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace mm {

// A tensor as a graph declares it: per dimension a size (>= 0), or -1 with
// the dimension's name ("" when it has none).
struct DeclaredTensor {
  std::string name;
  std::vector<int64_t> dims;
  std::vector<std::string> dim_names;  // one per dim
};

class OutputShapePlan {
 public:
  OutputShapePlan() = default;  // unknown

  // The plan for `output` in a graph with these `inputs`.
  static OutputShapePlan Make(const DeclaredTensor& output, std::span<const DeclaredTensor> inputs);

  // Whether every dimension is fixed or follows an input's.
  bool known() const { return known_; }

  // The output's shape for a run on `inputs` (a request's tensors, found by
  // name), written into `shape` (its capacity is reused). False, with `shape`
  // unspecified, when the plan is unknown, an input it follows is missing or
  // has too few dimensions, or the inputs that share a dimension's name
  // disagree on its size (ONNX Runtime would then say what is wrong).
  bool Resolve(std::span<const Tensor> inputs, std::vector<int64_t>& shape) const;

 private:
  struct Source {  // a named dimension's place in an input
    std::string input;
    size_t axis = 0;
  };
  struct Dim {
    int64_t size = -1;            // >= 0: fixed
    std::vector<Source> sources;  // size < 0: every input dimension so named
  };
  bool known_ = false;
  std::vector<Dim> dims_;
};

}  // namespace mm
