// The server's side of the shared-memory regions one worker process's
// batches travel in (worker_instance.cc): by id, at most kMaxRegions, each
// sent to the worker (a Region frame with its descriptor) before the first
// batch that uses it.
//
// A region is held by the responses whose outputs lie in it (each output
// tensor keeps it), so a batch takes one that nothing else holds: its reads
// are over, and the batch may write. A held region is never written again;
// when every id is held, a fresh region replaces one under its id and the
// held one lives on with its holders.
//
// Thread-safety: none; the one thread that has the worker uses it. The
// regions it hands out may be held and let go from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "isolation/shared_region.h"

namespace mm::isolation_internal {

class RegionPool {
 public:
  // `name`: the model's, in the regions' names; `initial_bytes`: the least a
  // region is made with; `label`: the instance's, in error messages.
  RegionPool(std::string name, uint64_t initial_bytes, std::string label)
      : name_(std::move(name)), initial_bytes_(initial_bytes), label_(std::move(label)) {}

  // A region for the next batch, at least `bytes` large, that nothing else
  // holds: a free one (made larger when it is too small), else a new one
  // while there are fewer than kMaxRegions, else a fresh one in place of a
  // held one. Its id. A region made is sent on `socket` first, and counted
  // in `*frames` (frames written before the batch's request).
  // RESOURCE_EXHAUSTED when the shared memory cannot be had (the server's
  // shortage: the batch fails alone); a write's error when the socket fails.
  StatusOr<uint32_t> Take(int socket, uint64_t bytes, uint32_t* frames);

  // Replaces region `id` with a larger one (at least `bytes`, and at least
  // twice its size), sent on `socket` as Take does. The old one lives on
  // with whoever holds it (a batch copies what it needs from it first).
  Status Grow(int socket, uint32_t id, uint64_t bytes, uint32_t* frames);

  // Region `id`, as Take or Grow left it.
  const std::shared_ptr<SharedRegion>& at(uint32_t id) const { return regions_[id]; }
  size_t size() const { return regions_.size(); }

  // A new worker process maps no region yet: every region is forgotten (the
  // ones responses still hold live on with them).
  void Clear() { regions_.clear(); }

 private:
  const std::string name_;
  const uint64_t initial_bytes_;
  const std::string label_;
  std::vector<std::shared_ptr<SharedRegion>> regions_;  // by id, at most kMaxRegions
  uint32_t next_replaced_ = 0;
};

}  // namespace mm::isolation_internal
