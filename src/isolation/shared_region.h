// SharedRegion: memory that the server and a model's worker process both map,
// so that tensor bytes cross the process boundary without going through the
// control socket. Backed by a memfd, sealed so that neither side can resize it
// (a peer that shrank a mapped file would make the other side's reads fault).
//
// The server creates a region and passes its descriptor to the worker over
// the worker's Unix socket (SendWithFd; the worker's FrameReader receives it);
// the worker adopts it (Adopt), which checks the size and the seals before
// mapping it.
//
// Thread-safety: a SharedRegion is immutable after creation; the bytes it maps
// are the caller's to coordinate (the protocol says who writes what, when).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "core/status.h"

namespace mm {

class SharedRegion {
 public:
  // A new region of `bytes` (> 0), zero-filled, mapped read-write, sealed
  // against growing, shrinking and further sealing. `name` is what
  // /proc/PID/fd shows ("memfd:NAME"). INTERNAL with the system's reason when
  // the kernel refuses (memory, descriptor limits).
  static StatusOr<std::unique_ptr<SharedRegion>> Create(std::string_view name, uint64_t bytes);

  // Maps a region received from the other process; takes `fd` over (closed
  // by the region, or at once on failure). INVALID_ARGUMENT unless it is a
  // memfd of exactly `expected_bytes` sealed against shrinking and growing.
  static StatusOr<std::unique_ptr<SharedRegion>> Adopt(int fd, uint64_t expected_bytes);

  ~SharedRegion();
  SharedRegion(const SharedRegion&) = delete;
  SharedRegion& operator=(const SharedRegion&) = delete;

  std::span<std::byte> bytes() const { return {base_, size_}; }
  uint64_t size() const { return size_; }
  // The descriptor to pass to another process (stays owned by the region).
  int fd() const { return fd_; }

 private:
  SharedRegion(int fd, std::byte* base, uint64_t size) : fd_(fd), base_(base), size_(size) {}

  const int fd_;
  std::byte* const base_;
  const uint64_t size_;
};

// Sends `data` (at least one byte) on the connected Unix socket `socket` with
// the descriptor `fd` attached (SCM_RIGHTS). Blocking; the whole of `data` or
// an error (UNAVAILABLE when the peer is gone).
Status SendWithFd(int socket, std::span<const std::byte> data, int fd);

}  // namespace mm
