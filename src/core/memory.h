// Memory figures of this process and the machine, and the byte sizes users
// write in flags and configs ("4GiB", "50%").
//
// The probes read /proc and the allocator; they never fail, answering 0 when a
// figure is unavailable. All functions are thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "core/status.h"

namespace mm {

// Resident set size: /proc/self/statm's resident pages times the page size.
// 0 when /proc is unreadable.
uint64_t ProcessResidentBytes();

// Bytes the heap has handed out and not yet had back: jemalloc's
// stats.allocated where the build links jemalloc (MMSERVE_JEMALLOC, the
// default), else glibc's mallinfo2() uordblks + hblkhd (small chunks plus
// mmapped ones). Under a sanitizer that replaces malloc (ASan, TSan, MSan)
// the sanitizer allocator's own count.
uint64_t HeapInUseBytes();

// Installed physical memory (MemTotal): _SC_PHYS_PAGES times the page size;
// 0 when unknown. Not a cgroup limit.
uint64_t PhysicalMemoryBytes();

// The memory this process may use: the smallest of PhysicalMemoryBytes() and
// the memory limits of its cgroup and the cgroups above it (a container's
// limit): cgroup v2's memory.max, v1's memory.limit_in_bytes, for the cgroup
// /proc/self/cgroup names, under /sys/fs/cgroup. A limit that is unset
// ("max", v1's huge number) or unreadable does not count. The paths are
// parameters for tests.
uint64_t UsableMemoryBytes(const std::filesystem::path& proc_self_cgroup = "/proc/self/cgroup",
                           const std::filesystem::path& cgroup_root = "/sys/fs/cgroup");

// Gives freed heap memory back to the OS (jemalloc: every arena's purge;
// glibc: malloc_trim(0); the sanitizer allocator's purge under a
// sanitizer). Costs a walk of the heap: call it after a large release such
// as a model unload, not per request.
void ReleaseFreeMemory();

// Parses a size a user wrote: a non-negative decimal number ("1048576",
// "1.5") with an optional unit, or a percentage of `total_for_percent`.
//   B                     bytes
//   K  KiB  M  MiB  G  GiB  T  TiB   powers of 1024
//   KB      MB      GB      TB       powers of 1000
//   N%                    N percent of total_for_percent, 0 < N <= 100
// Units are case-insensitive; whitespace is allowed around the text and
// between the number and its unit. Fractions are truncated to whole bytes
// (digits past the 15th after the point are ignored).
// INVALID_ARGUMENT, naming the text and what is accepted, for an empty or
// negative value, an unknown unit, a result past 2^64-1, a percentage outside
// (0,100], or a percentage when total_for_percent is 0 (unknown).
StatusOr<uint64_t> ParseByteSize(std::string_view text, uint64_t total_for_percent);

// A human-readable size for messages: "512 B", "1.5 KiB", "12.0 MiB",
// "3.25 GiB". Binary units up to EiB; below 10 of a unit two decimals (a
// trailing zero dropped), from 10 one decimal; rounded to nearest.
std::string FormatBytes(uint64_t bytes);

}  // namespace mm
