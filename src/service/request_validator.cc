#include "service/request_validator.h"

#include <algorithm>
#include <span>

#include "core/shape.h"
#include "core/tensor_data.h"

namespace mm {

namespace {

// The full expected shape of a tensor with `dims`, batch dim first when batched.
Shape ExpectedShape(const inference::ModelConfig& config,
                    const google::protobuf::RepeatedField<int64_t>& dims) {
  Shape s;
  s.reserve(dims.size() + 1);
  if (config.max_batch_size() > 0) s.push_back(-1);
  s.insert(s.end(), dims.begin(), dims.end());
  return s;
}

std::string Describe(DataType type, const Shape& shape) {
  return std::string(DataTypeName(type)) + " " + ShapeToString(shape, true);
}

Status ValidateInput(const inference::ModelConfig& config, const inference::ModelInput& spec,
                     const Tensor& input) {
  const auto want_type = static_cast<DataType>(spec.data_type());
  auto mismatch = [&] {
    const Shape want_shape = ExpectedShape(config, spec.dims());
    // Where only one fixed dim differs (a row of 29 features for a model of
    // 30), name it: the shapes alone leave the reader to compare them.
    std::string detail;
    if (input.dtype == want_type && input.shape.size() == want_shape.size()) {
      for (size_t i = 0; i < want_shape.size(); ++i) {
        if (want_shape[i] >= 0 && input.shape[i] != want_shape[i]) {
          detail = ": dim " + std::to_string(i) + " is " + std::to_string(input.shape[i]) +
                   ", the model takes " + std::to_string(want_shape[i]);
          break;
        }
      }
    }
    return InvalidArgument("input '" + input.name + "': expected " +
                           Describe(want_type, want_shape) + ", got " +
                           Describe(input.dtype, input.shape) + detail);
  };
  // The config's dims after the batch dim (any size), compared in place:
  // the expected shape is only built to say what was wrong.
  const size_t batch_dims = config.max_batch_size() > 0 ? 1 : 0;
  const std::span<const int64_t> got(input.shape);
  const std::span<const int64_t> dims(spec.dims().data(), spec.dims().size());
  if (input.dtype != want_type || got.size() != dims.size() + batch_dims ||
      !ShapeMatches(dims, got.subspan(batch_dims))) {
    return mismatch();
  }
  if (config.max_batch_size() > 0) {
    int64_t batch = input.shape[0];
    if (batch < 1 || batch > config.max_batch_size()) {
      return InvalidArgument("input '" + input.name + "': batch size " + std::to_string(batch) +
                             " is outside [1, " + std::to_string(config.max_batch_size()) +
                             "] (max_batch_size of model '" + config.name() + "')");
    }
  }
  // The input's name goes into a message only on an error: no string per
  // input on the request path. Both checks are pure, so an error is found
  // again with the name.
  auto what = [&] { return "input '" + input.name + "'"; };
  auto count = ElementCount(input.shape, "input");
  if (!count.ok()) return ElementCount(input.shape, what()).status();
  // The bytes themselves, whichever door they came through (shared memory included).
  if (CheckTensorData(input.dtype, input.shape, *count, input.data, "input").ok()) {
    return OkStatus();
  }
  return CheckTensorData(input.dtype, input.shape, *count, input.data, what());
}

}  // namespace

Status ValidateRequest(const inference::ModelConfig& config, const InferRequest& request) {
  const auto& specs = config.input();
  // Few inputs per model: linear scans beat building maps per request.
  for (size_t i = 0; i < request.inputs.size(); ++i) {
    const Tensor& input = request.inputs[i];
    for (size_t j = 0; j < i; ++j) {
      if (request.inputs[j].name == input.name) {
        return InvalidArgument("input '" + input.name + "' is given more than once");
      }
    }
    auto spec = std::find_if(specs.begin(), specs.end(),
                             [&](const auto& s) { return s.name() == input.name; });
    if (spec == specs.end()) {
      std::string known;
      for (const auto& s : specs) known += (known.empty() ? "'" : ", '") + s.name() + "'";
      return InvalidArgument("unknown input '" + input.name + "' for model '" + config.name() +
                             "'; its inputs are " + known);
    }
    MM_RETURN_IF_ERROR(ValidateInput(config, *spec, input));
  }
  for (const auto& spec : specs) {
    if (spec.optional()) continue;
    bool present = std::any_of(request.inputs.begin(), request.inputs.end(),
                               [&](const Tensor& t) { return t.name == spec.name(); });
    if (!present) {
      return InvalidArgument(
          "missing input '" + spec.name() + "' (" +
          Describe(static_cast<DataType>(spec.data_type()), ExpectedShape(config, spec.dims())) +
          ") for model '" + config.name() + "'");
    }
  }
  const auto& outputs = config.output();
  for (size_t i = 0; i < request.outputs.size(); ++i) {
    const auto& name = request.outputs[i].name;
    for (size_t j = 0; j < i; ++j) {
      if (request.outputs[j].name == name) {
        return InvalidArgument("output '" + name + "' is requested more than once");
      }
    }
    if (std::none_of(outputs.begin(), outputs.end(),
                     [&](const auto& o) { return o.name() == name; })) {
      std::string known;
      for (const auto& o : outputs) known += (known.empty() ? "'" : ", '") + o.name() + "'";
      return InvalidArgument("unknown output '" + name + "' requested from model '" +
                             config.name() + "'; its outputs are " + known);
    }
  }
  if (config.max_batch_size() > 0 && request.inputs.size() > 1) {
    int64_t batch = request.inputs[0].shape[0];
    for (const auto& input : request.inputs) {
      if (input.shape[0] != batch) {
        return InvalidArgument("inputs disagree on the batch size: '" + request.inputs[0].name +
                               "' has " + std::to_string(batch) + ", '" + input.name + "' has " +
                               std::to_string(input.shape[0]));
      }
    }
  }
  return OkStatus();
}

}  // namespace mm
