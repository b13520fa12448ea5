// Body of POST /v2/systemsharedmemory/region/{name}/register:
// {"key": "/shm-key", "offset": 0, "byte_size": 1024} (offset optional).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace mm {

struct ShmRegisterRequest {
  std::string key;
  uint64_t offset = 0;
  uint64_t byte_size = 0;
};

// INVALID_ARGUMENT naming the field that is missing or of the wrong type.
StatusOr<ShmRegisterRequest> DecodeShmRegisterRequest(std::string_view body);

}  // namespace mm
