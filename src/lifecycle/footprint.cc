#include "lifecycle/footprint.h"

#include <system_error>

#include "core/memory.h"

namespace mm {

uint64_t DiskBytes(const std::filesystem::path& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code fec;
    if (it->is_regular_file(fec)) total += it->file_size(fec);
  }
  return total;
}

uint64_t DefaultMemoryProbe() {
  uint64_t heap = HeapInUseBytes();
  return heap > 0 ? heap : ProcessResidentBytes();
}

LoadOverlap::Ticket LoadOverlap::Begin() {
  MutexLock lock(mu_);
  Ticket ticket;
  ticket.alone = active_ == 0;
  ++active_;
  ticket.events_at_start = ++events_;
  return ticket;
}

bool LoadOverlap::End(const Ticket& ticket) {
  MutexLock lock(mu_);
  --active_;
  const bool alone = ticket.alone && events_ == ticket.events_at_start;
  ++events_;
  return alone;
}

}  // namespace mm
