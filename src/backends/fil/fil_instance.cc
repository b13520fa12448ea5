#include "backends/fil/fil_instance.h"

#include <chrono>
#include <cstring>
#include <exception>
#include <utility>

namespace mm::fil {

namespace {

int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

FilInstance::FilInstance(const std::string& model_name, std::shared_ptr<const TreeModel> model,
                         const FilIo& io)
    : label_("model '" + model_name + "'"),
      model_(std::move(model)),
      rule_(io.rule),
      output_name_(io.config.output(0).name()),
      input_dtype_(io.input_dtype),
      num_features_(io.num_features),
      engine_columns_(io.engine_columns),
      columns_(io.columns),
      squeezed_dims_(io.squeezed_dims) {}

Status FilInstance::Run(const void* rows, int64_t n_rows, float* out) const {
  try {
    return input_dtype_ == DataType::kFp64
               ? model_->PredictFP64(static_cast<const double*>(rows), n_rows, rule_, out)
               : model_->Predict(static_cast<const float*>(rows), n_rows, rule_, out);
  } catch (const std::exception& e) {  // the engines return Status; this is a last guard
    return Internal(std::string("the engine failed: ") + e.what());
  }
}

Status FilInstance::Execute(const InferRequest& request, InferResponse& response) {
  const int64_t begin_ns = SteadyNs();
  // The service checked the request against the config; these checks only
  // keep a broken caller from reading out of bounds.
  if (request.inputs.size() != 1 || request.inputs[0].dtype != input_dtype_ ||
      request.inputs[0].shape.size() != 2 || request.inputs[0].shape[1] != num_features_ ||
      request.inputs[0].shape[0] < 0) {
    return InvalidArgument(label_ + ": expected one input, " +
                           std::string(DataTypeName(input_dtype_)) + " [rows, " +
                           std::to_string(num_features_) + "]");
  }
  const Tensor& input = request.inputs[0];
  const int64_t rows = input.shape[0];
  const size_t values = static_cast<size_t>(rows) * static_cast<size_t>(num_features_);
  if (input.data.size() != values * DataTypeSize(input_dtype_)) {
    return InvalidArgument(label_ + ": input '" + input.name + "' holds " +
                           std::to_string(input.data.size()) + " bytes; expected " +
                           std::to_string(values * DataTypeSize(input_dtype_)));
  }

  // The rows: a view of the request's bytes; a copy in this instance's
  // scratch only when they are misaligned (a binary section after a JSON
  // header of any length).
  const void* data = input.data.data();
  if (reinterpret_cast<uintptr_t>(data) % DataTypeSize(input_dtype_) != 0) {
    rows_scratch_.resize((input.data.size() + sizeof(double) - 1) / sizeof(double));
    if (!input.data.empty()) std::memcpy(rows_scratch_.data(), data, input.data.size());
    data = rows_scratch_.data();
  }

  const size_t out_values = static_cast<size_t>(rows) * static_cast<size_t>(columns_);
  // One allocation (buffer and count together), not zeroed: Predict writes it all.
  std::shared_ptr<float[]> out =
      std::make_shared_for_overwrite<float[]>(out_values == 0 ? 1 : out_values);
  const int64_t run_ns = SteadyNs();
  response.timing.input_ns = run_ns - begin_ns;
  if (rows > 0) {
    // A binary predict_proba output of one column keeps p of the engine's (1-p, p).
    const bool keep_one = engine_columns_ != columns_;
    float* engine_out = out.get();
    if (keep_one) {
      columns_scratch_.resize(static_cast<size_t>(rows) * static_cast<size_t>(engine_columns_));
      engine_out = columns_scratch_.data();
    }
    Status s = Run(data, rows, engine_out);
    if (!s.ok()) {
      return Internal(label_ + ": " + s.message());
    }
    if (keep_one) {
      for (int64_t r = 0; r < rows; ++r) out[r] = engine_out[r * engine_columns_ + 1];
    }
  }
  const int64_t ran_ns = SteadyNs();

  Tensor& tensor = response.outputs.emplace_back();
  tensor.name = output_name_;
  tensor.dtype = DataType::kFp32;
  tensor.shape.reserve(1 + squeezed_dims_.size());
  tensor.shape.push_back(rows);
  tensor.shape.insert(tensor.shape.end(), squeezed_dims_.begin(), squeezed_dims_.end());
  tensor.data = {reinterpret_cast<const std::byte*>(out.get()), out_values * sizeof(float)};
  tensor.owner = std::move(out);
  response.timing.output_ns = SteadyNs() - ran_ns;
  return OkStatus();
}

}  // namespace mm::fil
