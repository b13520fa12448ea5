#include "isolation/region_pool.h"

#include <algorithm>
#include <atomic>

#include "core/memory.h"
#include "isolation/worker_channel.h"
#include "isolation/worker_protocol.h"

namespace mm::isolation_internal {

StatusOr<uint32_t> RegionPool::Take(int socket, uint64_t bytes, uint32_t* frames) {
  for (uint32_t id = 0; id < regions_.size(); ++id) {
    if (regions_[id].use_count() != 1) continue;
    // The last holder let go after reading: its reads happen before our writes.
    std::atomic_thread_fence(std::memory_order_acquire);
    if (regions_[id]->size() < bytes) MM_RETURN_IF_ERROR(Grow(socket, id, bytes, frames));
    return id;
  }
  uint32_t id;
  const bool added = regions_.size() < kMaxRegions;
  if (added) {
    id = static_cast<uint32_t>(regions_.size());
    regions_.emplace_back();
  } else {
    id = next_replaced_++ % kMaxRegions;
  }
  if (Status s = Grow(socket, id, bytes, frames); !s.ok()) {
    if (added) regions_.pop_back();
    return s;
  }
  return id;
}

Status RegionPool::Grow(int socket, uint32_t id, uint64_t bytes, uint32_t* frames) {
  uint64_t size = std::max(bytes, initial_bytes_);
  if (regions_[id]) size = std::max(size, regions_[id]->size() * 2);
  auto created = SharedRegion::Create(name_, size);
  if (!created.ok()) {
    // The server's own shortage, not the worker's fault: the batch fails alone.
    return ResourceExhausted(label_ + ": no shared memory of " + FormatBytes(size) +
                             " for the batch: " + created.status().message());
  }
  std::shared_ptr<SharedRegion> region = std::move(*created);
  MM_RETURN_IF_ERROR(WriteWorkerFrameWithFd(socket, WorkerMessageType::kRegion, 0,
                                            EncodeRegion({id, region->size()}), region->fd()));
  ++*frames;  // announced by the next request
  regions_[id] = std::move(region);
  return OkStatus();
}

}  // namespace mm::isolation_internal
