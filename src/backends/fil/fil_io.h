// The input and output of a FIL model: Triton FIL's rules for a config's
// max_batch_size, input and output, checked against the loaded model, and
// the tensors filled in when the config has none (backend.h, contract 2).
//
// FIL's rules (docs/fil.md, "Configuration"):
//  - max_batch_size > 0: the first dimension of every request is its rows;
//  - one input (FIL names it input__0; any name is taken, as FIL takes the
//    first), TYPE_FP32 (FIL) or TYPE_FP64 (mmserve converts), dims
//    [n_features], the model's feature count;
//  - one output (output__0), TYPE_FP32, whose dims hold the values the model
//    answers per row: [1] for a class id or a regression value, [C] for C
//    class probabilities; a binary classifier's probabilities are [2]
//    (1-p, p) or [1] (p alone), as FIL. `treeshap_output` (SHAP values) is
//    refused: mmserve does not compute them.
//  - The response squeezes every dim equal to 1, as FIL: dims [1] answer
//    [batch], dims [k] answer [batch, k].
// A config without input (output) gets input__0 TYPE_FP32 [n_features]
// (output__0 TYPE_FP32 [columns]); FIL itself requires them.
//
// Pure: no I/O.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "backends/fil/fil_config.h"
#include "backends/fil/tree_model.h"
#include "core/data_type.h"
#include "core/status.h"
#include "model_config.pb.h"

namespace mm::fil {

struct FilIo {
  inference::ModelConfig config;  // complete: backend, input, output, instance_group
  // The parameters' rule, with binary_proba_single_column set for a binary
  // predict_proba output of dims [1].
  OutputRule rule;
  DataType input_dtype = DataType::kFp32;  // FP32 or FP64
  int64_t num_features = 0;
  // Values per row: what TreeModel::Predict writes under `rule`, and what
  // the output carries. They differ only for a predict_proba output of dims
  // [1] on a model whose engine answers two columns even so (a two-class
  // leaf-vector forest: scikit-learn's binary classifiers), which carries
  // column 1 (p) of the two (1-p, p).
  int64_t engine_columns = 1;
  int64_t columns = 1;
  // The output's dims without those equal to 1: a response's shape is
  // [rows] followed by these.
  std::vector<int64_t> squeezed_dims;
};

// The model's values per row under a rule: TreeModel::OutputColumns.
using OutputColumnsFn = std::function<StatusOr<int64_t>(const OutputRule& rule)>;

// Checks `user` (the user's config) against the model and completes it.
// INVALID_ARGUMENT naming the tensor, what the config says and what the
// model needs ("input 'input__0' has dims [29], but the model takes 30
// features; expected dims [30]"); `columns`' own error as it is.
StatusOr<FilIo> CompleteFilConfig(std::string_view model_name, inference::ModelConfig user,
                                  const TreeModelInfo& info, const FilParameters& params,
                                  const OutputColumnsFn& columns);

}  // namespace mm::fil
