#include "backends/onnxruntime/output_plan.h"

namespace mm {

OutputShapePlan OutputShapePlan::Make(const DeclaredTensor& output,
                                      std::span<const DeclaredTensor> inputs) {
  OutputShapePlan plan;
  plan.dims_.reserve(output.dims.size());
  for (size_t d = 0; d < output.dims.size(); ++d) {
    Dim& dim = plan.dims_.emplace_back();
    if (output.dims[d] >= 0) {
      dim.size = output.dims[d];
      continue;
    }
    const std::string& name = d < output.dim_names.size() ? output.dim_names[d] : std::string();
    if (name.empty()) return OutputShapePlan();
    for (const DeclaredTensor& input : inputs) {
      for (size_t axis = 0; axis < input.dims.size() && axis < input.dim_names.size(); ++axis) {
        if (input.dims[axis] < 0 && input.dim_names[axis] == name) {
          dim.sources.push_back({input.name, axis});
        }
      }
    }
    if (dim.sources.empty()) return OutputShapePlan();
  }
  plan.known_ = true;
  return plan;
}

bool OutputShapePlan::Resolve(std::span<const Tensor> inputs, std::vector<int64_t>& shape) const {
  if (!known_) return false;
  shape.clear();
  for (const Dim& dim : dims_) {
    int64_t size = dim.size;
    if (size < 0) {
      for (const Source& source : dim.sources) {
        const Tensor* input = nullptr;
        for (const Tensor& t : inputs) {
          if (t.name == source.input) {
            input = &t;
            break;
          }
        }
        if (input == nullptr || source.axis >= input->shape.size()) return false;
        const int64_t seen = input->shape[source.axis];
        if (seen < 0 || (size >= 0 && seen != size)) return false;
        size = seen;
      }
    }
    shape.push_back(size);
  }
  return true;
}

}  // namespace mm
