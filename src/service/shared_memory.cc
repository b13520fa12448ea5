#include "service/shared_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mm {

struct SharedMemoryManager::Region {
  RegionInfo info;
  void* map = nullptr;  // mapping of [map_offset, offset + byte_size)
  size_t map_size = 0;
  std::byte* start = nullptr;  // the registered offset within the mapping
  ~Region() {
    if (map != nullptr && map != MAP_FAILED) munmap(map, map_size);
  }
};

Status SharedMemoryManager::Register(const std::string& name, const std::string& key,
                                     uint64_t offset, uint64_t byte_size) {
  if (name.empty()) return InvalidArgument("a shared memory region needs a name");
  if (byte_size == 0) {
    return InvalidArgument("shared memory region '" + name + "': byte_size must be positive");
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (regions_.count(name)) {
      return AlreadyExists("shared memory region '" + name + "' is already registered");
    }
  }
  const int fd = shm_open(key.c_str(), O_RDWR, 0);
  if (fd < 0) {
    return InvalidArgument("shared memory region '" + name + "': cannot open key '" + key +
                           "': " + std::strerror(errno));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || offset > static_cast<uint64_t>(st.st_size) ||
      byte_size > static_cast<uint64_t>(st.st_size) - offset) {
    close(fd);
    return InvalidArgument("shared memory region '" + name + "': offset " + std::to_string(offset) +
                           " + byte_size " + std::to_string(byte_size) + " exceeds the " +
                           std::to_string(st.st_size) + " bytes of key '" + key + "'");
  }
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t map_offset = offset / page * page;
  auto region = std::make_shared<Region>();
  region->info = {name, key, offset, byte_size};
  region->map_size = static_cast<size_t>(offset - map_offset + byte_size);
  region->map = mmap(nullptr, region->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                     static_cast<off_t>(map_offset));
  const int err = errno;
  close(fd);
  if (region->map == MAP_FAILED) {
    return InvalidArgument("shared memory region '" + name + "': cannot map key '" + key +
                           "': " + std::strerror(err));
  }
  region->start = static_cast<std::byte*>(region->map) + (offset - map_offset);
  std::lock_guard<std::mutex> lock(mu_);
  if (!regions_.emplace(name, std::move(region)).second) {
    return AlreadyExists("shared memory region '" + name + "' is already registered");
  }
  return OkStatus();
}

Status SharedMemoryManager::Unregister(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  if (regions_.erase(name) == 0) {
    return NotFound("no shared memory region named '" + name + "' is registered");
  }
  return OkStatus();
}

void SharedMemoryManager::UnregisterAll() {
  std::lock_guard<std::mutex> lock(mu_);
  regions_.clear();
}

StatusOr<std::vector<SharedMemoryManager::RegionInfo>> SharedMemoryManager::List(
    const std::string& name) const {
  std::vector<RegionInfo> out;
  std::lock_guard<std::mutex> lock(mu_);
  if (!name.empty()) {
    auto it = regions_.find(name);
    if (it == regions_.end()) {
      return NotFound("no shared memory region named '" + name + "' is registered");
    }
    out.push_back(it->second->info);
    return out;
  }
  for (const auto& [n, region] : regions_) out.push_back(region->info);
  return out;
}

StatusOr<SharedMemoryManager::Window> SharedMemoryManager::Resolve(const std::string& name,
                                                                   uint64_t offset,
                                                                   uint64_t byte_size,
                                                                   const std::string& what) const {
  std::shared_ptr<Region> region;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = regions_.find(name);
    if (it == regions_.end()) {
      return NotFound(what + ": no shared memory region named '" + name + "' is registered");
    }
    region = it->second;
  }
  const uint64_t size = region->info.byte_size;
  if (offset > size || byte_size > size - offset) {
    return InvalidArgument(what + ": shared memory offset " + std::to_string(offset) +
                           " + byte_size " + std::to_string(byte_size) + " exceeds region '" +
                           name + "' of " + std::to_string(size) + " bytes");
  }
  Window w;
  w.bytes = {region->start + offset, static_cast<size_t>(byte_size)};
  w.owner = std::move(region);
  return w;
}

}  // namespace mm
