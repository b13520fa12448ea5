// System shared memory regions (Triton's shared-memory extension): a client
// registers a POSIX shared memory object by key, offset and size under a name,
// then refers to it from inputs and outputs instead of sending tensor bytes.
//
// Ownership. A region belongs to the tenant that registered it: regions are
// keyed by (owner tenant id, name), so each tenant has its own namespace of
// names. Every method takes the owner asking and sees only that owner's
// regions; another tenant's region answers exactly as a region that does not
// exist (same code, same message), and two tenants may use the same name
// without meeting. Admins are no exception: a region is named, listed and
// unregistered only by the tenant that registered it (an admin has its own
// namespace like everyone else). A tenant holds at most
// Options::max_regions_per_tenant regions (RESOURCE_EXHAUSTED beyond), so no
// tenant can exhaust the server's mappings.
//
// Client memory is the client's problem. The object behind a region stays the
// client's: it may shrink it under the server at any time, and then touching
// the mapped pages past its new end raises SIGBUS. So the request path never
// hands a region's bytes to anything (a backend, a validator, a worker): a
// Window is read into request-owned memory and written from it with a guarded
// copy (core/guarded_copy.h), and a shrunk object fails that request with
// INVALID_ARGUMENT naming the region and its key, never the server.
//
// Lifetime: a Region is mapped once at Register and unmapped when the last
// holder lets go. Unregister removes the name at once, but a request that
// resolved the region keeps it mapped until it finishes, so memory is never
// unmapped under a request.
// Thread-safety: every method may be called concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/thread_annotations.h"

namespace mm {

class SharedMemoryManager {
 public:
  struct Options {
    // Regions one tenant may hold at once (--max-shm-regions-per-tenant).
    size_t max_regions_per_tenant = 128;
  };
  static constexpr size_t kMaxNameBytes = 1024;

  struct RegionInfo {
    std::string name;
    std::string key;
    uint64_t offset = 0;
    uint64_t byte_size = 0;
  };

 private:
  struct Region;

 public:
  // A window of a registered region, kept mapped while the Window lives. Its
  // bytes are reached only through the guarded copies below.
  class Window {
   public:
    Window() = default;
    uint64_t size() const { return bytes_.size(); }
    // Copies the window into `dst` (size() bytes). INVALID_ARGUMENT naming
    // `what`, the region and its key when the object shrank under the copy.
    Status ReadInto(std::byte* dst, std::string_view what) const;
    // Copies `src` (at most size() bytes) to the window's start; the same
    // error when the object shrank (bytes before the fault may be written).
    Status WriteFrom(std::span<const std::byte> src, std::string_view what) const;

   private:
    friend class SharedMemoryManager;
    Status Fault(const Status& copy, std::string_view what) const;
    std::span<std::byte> bytes_;
    std::shared_ptr<const Region> region_;
  };

  SharedMemoryManager();
  explicit SharedMemoryManager(Options options);
  SharedMemoryManager(const SharedMemoryManager&) = delete;
  SharedMemoryManager& operator=(const SharedMemoryManager&) = delete;

  // Registers `name` in `owner`'s namespace. ALREADY_EXISTS for a name the
  // owner already uses; RESOURCE_EXHAUSTED when the owner holds the most
  // regions allowed; INVALID_ARGUMENT for a bad name, a key that cannot be
  // opened, or [offset, offset + byte_size) outside the object.
  Status Register(std::string_view owner, const std::string& name, const std::string& key,
                  uint64_t offset, uint64_t byte_size);
  // NOT_FOUND for a name the owner has not registered.
  Status Unregister(std::string_view owner, const std::string& name);
  // Every region of `owner`; no other tenant's.
  void UnregisterAll(std::string_view owner);
  // Every region of `owner`, or just `name` (NOT_FOUND if the owner has none
  // by that name). By name.
  StatusOr<std::vector<RegionInfo>> List(std::string_view owner, const std::string& name) const;
  // Drops the regions of every owner not in `owners` (tenants a reload removed).
  void RetainOwners(const std::vector<std::string>& owners);

  // [offset, offset + byte_size) of `owner`'s region `name`, relative to its
  // registered start. NOT_FOUND / INVALID_ARGUMENT naming `what` on a bad
  // reference.
  StatusOr<Window> Resolve(std::string_view owner, const std::string& name, uint64_t offset,
                           uint64_t byte_size, const std::string& what) const;

 private:
  using Regions = std::map<std::string, std::shared_ptr<Region>, std::less<>>;
  static Status NotRegistered(const std::string& name);

  const Options options_;
  mutable Mutex mu_;
  // Owner tenant id → its regions (never an empty map).
  std::map<std::string, Regions, std::less<>> owners_ MM_GUARDED_BY(mu_);
};

}  // namespace mm
