// How much memory a loaded model version takes (ModelManager's "Memory").
//
// A footprint is, in order: the one its config declares
// (mmserve.memory_footprint_bytes); for a model in worker processes, their
// resident memory after the load (the backend reports it); else the model's
// exact size as its framework's library reports it (LoadedModel::model_bytes:
// a tree model's); else the growth
// of the process's memory across the load, when no other load overlapped it;
// else the estimate the load reserved (its last footprint, or its size on
// disk).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>

#include "core/thread_annotations.h"

namespace mm {

// Bytes of the regular files under `dir`, recursively (0 when unreadable).
uint64_t DiskBytes(const std::filesystem::path& dir);

// The process's memory in use: heap in use where the allocator reports it,
// else resident memory.
uint64_t DefaultMemoryProbe();

// Tells whether a load overlapped another, so that the process's memory
// growth across it can be charged to it alone.
//
// Thread-safety: every method may be called concurrently.
class LoadOverlap {
 public:
  struct Ticket {
    uint64_t events_at_start = 0;
    bool alone = false;
  };
  // At a load's start and end: End() is true when no other load started or
  // ended in between and none was running at Begin().
  Ticket Begin() MM_EXCLUDES(mu_);
  bool End(const Ticket& ticket) MM_EXCLUDES(mu_);

 private:
  Mutex mu_;
  int active_ MM_GUARDED_BY(mu_) = 0;
  uint64_t events_ MM_GUARDED_BY(mu_) = 0;  // load starts and ends
};

}  // namespace mm
