// Bodies of Triton's repository extension over HTTP:
//   POST /v2/repository/index                  {"ready": bool}                     (optional)
//     answered with [{"name":..,"version":..,"state":..,"reason":..},..]
//   POST /v2/repository/models/{m}/load        {"parameters": {"config": "<JSON>"}} (optional)
//   POST /v2/repository/models/{m}/unload      {"parameters": {"unload_dependents": bool}}
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "service/inference_service.h"

namespace mm {

// The "ready" flag (false when the body is empty or omits it); INVALID_ARGUMENT
// for a body that is not a JSON object or a "ready" that is not a boolean.
StatusOr<bool> DecodeIndexRequest(std::string_view body);

// The index's reply: one object per entry, in order. "version" is left out for
// a model with no loadable version (0); "restarts" and "last_failure" appear
// only for a version whose worker processes failed.
std::string EncodeRepositoryIndex(const std::vector<ModelVersionStatus>& index);

// The "config" parameter of a load (the model config as a JSON string), if
// any. INVALID_ARGUMENT for a malformed body, a "config" that is not a string,
// and Triton's "file:<path>" parameters (model files sent in the request),
// which mmserve does not take.
StatusOr<std::optional<std::string>> DecodeLoadRequest(std::string_view body);

// Checks an unload body; "unload_dependents" is accepted (mmserve has no
// ensembles, so no dependents).
Status DecodeUnloadRequest(std::string_view body);

}  // namespace mm
