// Bodies of Triton's system shared memory extension over HTTP:
//   POST /v2/systemsharedmemory/region/{name}/register
//     {"key": "/shm-key", "offset": 0, "byte_size": 1024} (offset optional)
//   GET /v2/systemsharedmemory[/region/{name}]/status
//     answered with [{"name":..,"key":..,"offset":N,"byte_size":N},..]
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "service/shared_memory.h"

namespace mm {

struct ShmRegisterRequest {
  std::string key;
  uint64_t offset = 0;
  uint64_t byte_size = 0;
};

// INVALID_ARGUMENT naming the field that is missing or of the wrong type.
StatusOr<ShmRegisterRequest> DecodeShmRegisterRequest(std::string_view body);

// The status reply: one object per region, in order.
std::string EncodeShmStatus(const std::vector<SharedMemoryManager::RegionInfo>& regions);

}  // namespace mm
