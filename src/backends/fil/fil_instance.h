// One execution context of a FIL model: runs a (batched) request's rows
// through the model's TreeModel and answers FIL's output.
//
// Thread-safety: one Execute at a time per instance (backend.h, contract 3);
// the TreeModel is shared by every instance of the model (tree_model.h,
// contract 2), which keeps it alive as long as the last of them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/fil/fil_io.h"
#include "backends/fil/tree_model.h"

namespace mm::fil {

class FilInstance final : public ModelInstance {
 public:
  FilInstance(const std::string& model_name, std::shared_ptr<const TreeModel> model,
              const FilIo& io);

  // Rows: the request's one input, [rows, n_features], FP32 or FP64 (as the
  // config says), read where it lies (copied only when misaligned). One FP32
  // buffer per response holds the output, [rows] + the output's squeezed
  // dims.
  // An engine error is INTERNAL naming the model.
  Status Execute(const InferRequest& request, InferResponse& response) override;

 private:
  // Predict or PredictFP64, as the input's type says; INTERNAL for anything thrown.
  Status Run(const void* rows, int64_t n_rows, float* out) const;

  // Constant after construction.
  const std::string label_;  // "model 'm'", for errors
  const std::shared_ptr<const TreeModel> model_;
  const OutputRule rule_;
  const std::string output_name_;
  const DataType input_dtype_;
  const int64_t num_features_;
  const int64_t engine_columns_;
  const int64_t columns_;
  const std::vector<int64_t> squeezed_dims_;
  // Reused across executions (one at a time): misaligned rows realigned
  // (in 8-byte units, for FP32 and FP64 alike), and the engine's two columns
  // when the output keeps one.
  std::vector<double> rows_scratch_;
  std::vector<float> columns_scratch_;
};

}  // namespace mm::fil
