// How a worker's memory limit (mmserve.memory_limit_bytes) is enforced. The
// limit is the memory the *model* may take: what the worker holds beyond its
// own start-up (the runtime libraries, about 40 MiB), measured when it is
// ready to load. The mechanisms, best first:
//   1. a cgroup v2 child group with memory.max, when the server's own cgroup
//      lets it create one with the memory controller (a delegated subtree);
//      the kernel kills the worker at the limit (memory.events says so);
//   2. else RLIMIT_AS in the worker (its address space now plus the limit),
//      unless this build runs under a sanitizer, whose shadow memory needs
//      terabytes of address space; an allocation past it ends the worker;
//   3. else a resident-memory watchdog: the server reads the worker's RSS
//      every 100 ms and kills it above its start-up RSS plus the limit.
// (A cgroup counts the memory charged after the worker joins it, which is
// also what it takes beyond start-up.)
// The server logs which one is in force for each model.
//
// Thread-safety: every function may be called from any thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace mm {

enum class MemoryLimitKind { kCgroupV2, kAddressSpace, kResidentWatchdog };
// "cgroup v2 memory.max", "RLIMIT_AS", "resident-memory watchdog".
std::string_view MemoryLimitKindName(MemoryLimitKind kind);

// The best mechanism this machine and build allow (probed once; a cgroup is
// only chosen if a test group could be created and removed).
MemoryLimitKind ChooseMemoryLimitKind();

// A cgroup v2 group for one worker, removed on destruction (once its process
// has exited).
class CgroupGroup {
 public:
  // Creates <server's cgroup>/<name> with memory.max = limit_bytes (and no
  // swap). UNAVAILABLE when the server cannot.
  static StatusOr<std::unique_ptr<CgroupGroup>> Create(std::string_view name, uint64_t limit_bytes);
  ~CgroupGroup();
  Status AddProcess(pid_t pid);
  Status SetLimit(uint64_t bytes);  // memory.max
  // Whether the kernel's OOM killer killed a process of this group.
  bool OomKilled() const;

 private:
  explicit CgroupGroup(std::filesystem::path dir) : dir_(std::move(dir)) {}
  const std::filesystem::path dir_;
};

// What a limit of `limit` bytes above `baseline` comes to: their sum, or the
// largest value when it would overflow (a limit of 2^64-1 means no limit,
// never a tiny one).
inline uint64_t LimitAbove(uint64_t baseline, uint64_t limit) {
  return limit > UINT64_MAX - baseline ? UINT64_MAX : baseline + limit;
}

// The resident memory of process `pid` (/proc/PID/statm); 0 when unknown.
uint64_t ResidentBytesOf(pid_t pid);

// Whether this binary was built with a sanitizer that reserves huge address
// space (ASan, TSan, MSan).
bool UnderSanitizer();

}  // namespace mm
