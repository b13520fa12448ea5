// Reads an ONNX model's bytes (the ModelProto protobuf) just far enough to
// list the operators its graphs use, without a schema or a copy: the wire
// format is walked in place, and initializers (the weights) are skipped by
// their length.
//
// The ONNX Runtime backend asks it one question: is this graph's run time
// bounded by its inputs' sizes, so that a small request may run on a
// transport's I/O thread? Control flow (Loop, Scan, If) runs as long as its
// inputs' values say; other operators size their outputs from input values
// (Range, Tile, Expand, ConstantOfShape, Resize, ...). An operator from a
// domain the scanner does not know (custom operators) might do anything.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "core/status.h"

namespace mm {

struct OnnxGraphCost {
  // True when no operator of the model (main graph, subgraphs, local
  // functions) can make its run time depend on its inputs' values.
  bool bounded_by_input_size = true;
  // When not: the first operator that decided it, as "domain:op_type" or
  // "op_type" for the default domain.
  std::string unbounded_op;
};

// INVALID_ARGUMENT when `model` is not a well-formed protobuf, or nests
// subgraphs deeper than 64 levels.
StatusOr<OnnxGraphCost> ScanOnnxGraphCost(std::span<const uint8_t> model);

}  // namespace mm
