// Body of POST /v2/repository/index: optional JSON object {"ready": bool}.
#pragma once

#include <string_view>

#include "core/status.h"

namespace mm {

// The "ready" flag (false when the body is empty or omits it); INVALID_ARGUMENT
// for a body that is not a JSON object or a "ready" that is not a boolean.
StatusOr<bool> DecodeIndexRequest(std::string_view body);

}  // namespace mm
