// Fuzzes the ONNX graph scanner (backends/onnxruntime/onnx_graph_scan.h),
// which reads model files from tenants' repositories.
#include <cstddef>
#include <cstdint>

#include "backends/onnxruntime/onnx_graph_scan.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto cost = mm::ScanOnnxGraphCost({data, size});
  if (cost.ok() && !cost->bounded_by_input_size && cost->unbounded_op.empty()) __builtin_trap();
  return 0;
}
