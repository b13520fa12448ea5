#include "service/shared_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/guarded_copy.h"

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

SharedMemoryManager::SharedMemoryManager() : SharedMemoryManager(Options{}) {}

SharedMemoryManager::SharedMemoryManager(Options options) : options_(options) {
  // Before any region exists: a shrunk object must never meet an unguarded server.
  InstallGuardedCopyHandler();
}

Status SharedMemoryManager::NotRegistered(const std::string& name) {
  return NotFound("no shared memory region named '" + name + "' is registered");
}

Status SharedMemoryManager::Register(std::string_view owner, const std::string& name,
                                     const std::string& key, uint64_t offset, uint64_t byte_size) {
  if (name.empty()) return InvalidArgument("a shared memory region needs a name");
  if (name.size() > kMaxNameBytes) {
    return InvalidArgument("a shared memory region's name has at most " +
                           std::to_string(kMaxNameBytes) + " bytes, got " +
                           std::to_string(name.size()));
  }
  if (byte_size == 0) {
    return InvalidArgument("shared memory region '" + name + "': byte_size must be positive");
  }
  // Checked before the key is opened (and again as it is inserted).
  auto admissible = [&]() MM_REQUIRES(mu_) -> Status {
    auto it = owners_.find(owner);
    if (it == owners_.end()) return OkStatus();
    if (it->second.count(name)) {
      return AlreadyExists("shared memory region '" + name + "' is already registered");
    }
    if (it->second.size() >= options_.max_regions_per_tenant) {
      return ResourceExhausted("shared memory region '" + name + "': this tenant already has " +
                               std::to_string(it->second.size()) +
                               " regions registered, the most allowed " +
                               "(--max-shm-regions-per-tenant); unregister one first");
    }
    return OkStatus();
  };
  {
    MutexLock lock(mu_);
    MM_RETURN_IF_ERROR(admissible());
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
  MutexLock lock(mu_);
  MM_RETURN_IF_ERROR(admissible());  // (the region unmaps as it goes)
  auto it = owners_.find(owner);
  if (it == owners_.end()) it = owners_.emplace(std::string(owner), Regions{}).first;
  it->second.emplace(name, std::move(region));
  return OkStatus();
}

Status SharedMemoryManager::Unregister(std::string_view owner, const std::string& name) {
  std::shared_ptr<Region> gone;  // unmapped outside the lock
  MutexLock lock(mu_);
  auto it = owners_.find(owner);
  if (it == owners_.end()) return NotRegistered(name);
  auto region = it->second.find(name);
  if (region == it->second.end()) return NotRegistered(name);
  gone = std::move(region->second);
  it->second.erase(region);
  if (it->second.empty()) owners_.erase(it);
  return OkStatus();
}

void SharedMemoryManager::UnregisterAll(std::string_view owner) {
  Regions gone;
  MutexLock lock(mu_);
  auto it = owners_.find(owner);
  if (it == owners_.end()) return;
  gone = std::move(it->second);
  owners_.erase(it);
}

void SharedMemoryManager::RetainOwners(const std::vector<std::string>& owners) {
  std::vector<Regions> gone;
  MutexLock lock(mu_);
  for (auto it = owners_.begin(); it != owners_.end();) {
    if (std::find(owners.begin(), owners.end(), it->first) != owners.end()) {
      ++it;
      continue;
    }
    gone.push_back(std::move(it->second));
    it = owners_.erase(it);
  }
}

StatusOr<std::vector<SharedMemoryManager::RegionInfo>> SharedMemoryManager::List(
    std::string_view owner, const std::string& name) const {
  std::vector<RegionInfo> out;
  MutexLock lock(mu_);
  auto it = owners_.find(owner);
  if (!name.empty()) {
    if (it == owners_.end()) return NotRegistered(name);
    auto region = it->second.find(name);
    if (region == it->second.end()) return NotRegistered(name);
    out.push_back(region->second->info);
    return out;
  }
  if (it == owners_.end()) return out;
  for (const auto& [n, region] : it->second) out.push_back(region->info);
  return out;
}

StatusOr<SharedMemoryManager::Window> SharedMemoryManager::Resolve(std::string_view owner,
                                                                   const std::string& name,
                                                                   uint64_t offset,
                                                                   uint64_t byte_size,
                                                                   const std::string& what) const {
  std::shared_ptr<Region> region;
  {
    MutexLock lock(mu_);
    auto it = owners_.find(owner);
    if (it != owners_.end()) {
      auto found = it->second.find(name);
      if (found != it->second.end()) region = found->second;
    }
  }
  if (region == nullptr) return NotRegistered(name).WithContext(what);
  const uint64_t size = region->info.byte_size;
  if (offset > size || byte_size > size - offset) {
    return InvalidArgument(what + ": shared memory offset " + std::to_string(offset) +
                           " + byte_size " + std::to_string(byte_size) + " exceeds region '" +
                           name + "' of " + std::to_string(size) + " bytes");
  }
  Window w;
  w.bytes_ = {region->start + offset, static_cast<size_t>(byte_size)};
  w.region_ = std::move(region);
  return w;
}

Status SharedMemoryManager::Window::Fault(const Status& copy, std::string_view what) const {
  return InvalidArgument(std::string(what) + ": shared memory region '" + region_->info.name +
                         "' (key '" + region_->info.key + "'): " + copy.message() +
                         "; the client shrank the object after registering the region");
}

Status SharedMemoryManager::Window::ReadInto(std::byte* dst, std::string_view what) const {
  Status s = GuardedCopy(dst, bytes_.data(), bytes_.size());
  return s.ok() ? s : Fault(s, what);
}

Status SharedMemoryManager::Window::WriteFrom(std::span<const std::byte> src,
                                              std::string_view what) const {
  if (src.size() > bytes_.size()) {
    return InvalidArgument(std::string(what) + ": " + std::to_string(src.size()) +
                           " bytes do not fit the " + std::to_string(bytes_.size()) +
                           " of shared memory region '" + region_->info.name + "'");
  }
  Status s = GuardedCopy(bytes_.data(), src.data(), src.size());
  return s.ok() ? s : Fault(s, what);
}

}  // namespace mm
