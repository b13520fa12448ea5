// Triton FIL's model `parameters`, read as its backend reads them (docs/fil.md,
// "Configuration"): what to load (model_type) and what to answer
// (is_classifier / output_class, predict_proba, threshold).
//
// Pure: no I/O, no logging. What FIL accepts but mmserve cannot act on comes
// back as warnings for the caller to log (once per load): speed-only knobs
// of FIL's GPU and thread settings, and keys FIL does not read. What would
// change results and cannot be honoured is refused.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "backends/fil/tree_model.h"
#include "core/status.h"
#include "model_config.pb.h"

namespace mm::fil {

// FIL's spelling of `type` ("xgboost_json").
std::string_view ModelTypeName(ModelType type);

// The file FIL loads from a version folder for `type` ("xgboost.json") when
// the config has no default_model_filename.
std::string_view DefaultModelFileName(ModelType type);

struct FilParameters {
  ModelType model_type = ModelType::kXGBoost;
  OutputRule rule;
  // xgboost_allow_unknown_field, for the XGBoost JSON / UBJSON loaders.
  bool allow_unknown_field = false;
  // One line per accepted parameter that has no effect here, and one naming
  // the keys the backend does not read; each says why.
  std::vector<std::string> warnings;
};

// Reads `config.parameters` (string_value only, as FIL). Defaults: model_type
// xgboost, is_classifier false (the framework's predict()), predict_proba
// false, threshold 0.5, xgboost_allow_unknown_field false. INVALID_ARGUMENT
// naming the parameter, what it holds and what is expected: an unknown
// model_type (listing the five), a bool other than exactly "true" / "false",
// a threshold that is not a finite number, is_classifier and output_class
// both given and different.
StatusOr<FilParameters> ParseFilParameters(const inference::ModelConfig& config);

}  // namespace mm::fil
