// System shared memory regions (Triton's shared-memory extension): a client
// registers a POSIX shared memory object by key, offset and size under a name,
// then refers to it from inputs and outputs instead of sending tensor bytes.
//
// Lifetime: a Region is mapped once at Register and unmapped when the last
// holder lets go. Unregister removes the name at once, but a request that
// resolved the region keeps it mapped until it finishes, so memory is never
// freed under a request.
// Thread-safety: every method may be called concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace mm {

class SharedMemoryManager {
 public:
  struct RegionInfo {
    std::string name;
    std::string key;
    uint64_t offset = 0;
    uint64_t byte_size = 0;
  };
  // A window of a registered region, kept mapped while `owner` lives.
  struct Window {
    std::span<std::byte> bytes;
    std::shared_ptr<const void> owner;
  };

  SharedMemoryManager() = default;
  SharedMemoryManager(const SharedMemoryManager&) = delete;
  SharedMemoryManager& operator=(const SharedMemoryManager&) = delete;

  // ALREADY_EXISTS for a name in use; INVALID_ARGUMENT when the key cannot be
  // opened or [offset, offset + byte_size) lies outside the object.
  Status Register(const std::string& name, const std::string& key, uint64_t offset,
                  uint64_t byte_size);
  // NOT_FOUND for an unknown name.
  Status Unregister(const std::string& name);
  void UnregisterAll();
  // Every region, or just `name` (NOT_FOUND if unknown).
  StatusOr<std::vector<RegionInfo>> List(const std::string& name) const;

  // [offset, offset + byte_size) of region `name`, relative to its registered
  // start. NOT_FOUND / INVALID_ARGUMENT naming `what` on a bad reference.
  StatusOr<Window> Resolve(const std::string& name, uint64_t offset, uint64_t byte_size,
                           const std::string& what) const;

 private:
  struct Region;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Region>> regions_;  // guarded by mu_
};

}  // namespace mm
