#include "core/memory.h"

#include <malloc.h>
#include <unistd.h>

#include <array>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <limits>
#include <string>
#include <system_error>

// Sanitizers that replace malloc keep their own books; glibc's mallinfo2()
// then describes an arena nobody uses.
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer) || __has_feature(hwaddress_sanitizer)
#define MM_SANITIZER_ALLOCATOR 1
#endif
#endif
#if !defined(MM_SANITIZER_ALLOCATOR) && \
    (defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__))
#define MM_SANITIZER_ALLOCATOR 1
#endif
#if defined(MM_SANITIZER_ALLOCATOR)
#include <sanitizer/allocator_interface.h>
#elif defined(MM_JEMALLOC)
#include <jemalloc/jemalloc.h>
#endif

#define MM_STRINGIFY_(x) #x
#define MM_STRINGIFY(x) MM_STRINGIFY_(x)

namespace mm {
namespace {

uint64_t PageSize() {
  long page = ::sysconf(_SC_PAGESIZE);
  return page > 0 ? static_cast<uint64_t>(page) : 0;
}

constexpr std::string_view kAccepted =
    "expected a non-negative number with an optional unit (B; K, KiB, M, MiB, G, GiB, T, TiB "
    "in powers of 1024; KB, MB, GB, TB in powers of 1000) or a percentage in (0,100], "
    "e.g. '512MiB', '1.5GB', '50%'";

Status BadSize(std::string_view text, std::string_view problem) {
  return InvalidArgument("byte size '" + std::string(text) + "' " + std::string(problem) + "; " +
                         std::string(kAccepted));
}

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// The multiplier of a unit (lower-case names); 0 when the unit is unknown.
uint64_t UnitMultiplier(std::string_view unit) {
  struct Unit {
    std::string_view name;
    uint64_t multiplier;
  };
  static constexpr std::array<Unit, 14> kUnits = {{
      {"", 1},
      {"b", 1},
      {"k", 1ull << 10},
      {"kib", 1ull << 10},
      {"kb", 1'000ull},
      {"m", 1ull << 20},
      {"mib", 1ull << 20},
      {"mb", 1'000'000ull},
      {"g", 1ull << 30},
      {"gib", 1ull << 30},
      {"gb", 1'000'000'000ull},
      {"t", 1ull << 40},
      {"tib", 1ull << 40},
      {"tb", 1'000'000'000'000ull},
  }};
  std::string lower(unit.size(), '\0');
  for (size_t i = 0; i < unit.size(); ++i) lower[i] = Lower(unit[i]);
  for (const Unit& u : kUnits) {
    if (u.name == lower) return u.multiplier;
  }
  return 0;
}

}  // namespace

uint64_t ProcessResidentBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long size_pages = 0, resident_pages = 0;
  int read = std::fscanf(f, "%llu %llu", &size_pages, &resident_pages);
  std::fclose(f);
  if (read != 2) return 0;
  return static_cast<uint64_t>(resident_pages) * PageSize();
}

uint64_t HeapInUseBytes() {
#if defined(MM_SANITIZER_ALLOCATOR)
  return __sanitizer_get_current_allocated_bytes();
#elif defined(MM_JEMALLOC)
  // jemalloc counts what a thread's cache holds as allocated: flush this
  // thread's (the one a load runs on) so that its frees show. The figures
  // are a snapshot taken at each "epoch" write.
  ::mallctl("thread.tcache.flush", nullptr, nullptr, nullptr, 0);
  uint64_t epoch = 1;
  size_t size = sizeof(epoch);
  if (::mallctl("epoch", &epoch, &size, &epoch, size) != 0) return 0;
  size_t allocated = 0;
  size = sizeof(allocated);
  if (::mallctl("stats.allocated", &allocated, &size, nullptr, 0) != 0) return 0;
  return allocated;
#else
  struct mallinfo2 info = ::mallinfo2();
  return static_cast<uint64_t>(info.uordblks) + static_cast<uint64_t>(info.hblkhd);
#endif
}

uint64_t PhysicalMemoryBytes() {
  long pages = ::sysconf(_SC_PHYS_PAGES);
  if (pages <= 0) return 0;
  return static_cast<uint64_t>(pages) * PageSize();
}

namespace {

// A limit file's value; 0 when unset ("max", or v1's "no limit", a number
// near 2^63) or unreadable.
uint64_t ReadLimit(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string text;
  if (!(in >> text) || text == "max") return 0;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return 0;
  return value >= (uint64_t{1} << 62) ? 0 : value;
}

}  // namespace

uint64_t UsableMemoryBytes(const std::filesystem::path& proc_self_cgroup,
                           const std::filesystem::path& cgroup_root) {
  uint64_t usable = PhysicalMemoryBytes();
  auto lower = [&usable](uint64_t limit) {
    if (limit != 0 && (usable == 0 || limit < usable)) usable = limit;
  };
  // Lines "0::/a/b" (v2) and "N:memory:/a/b" or "N:...,memory,...:/a/b" (v1).
  std::ifstream in(proc_self_cgroup);
  std::string line;
  while (std::getline(in, line)) {
    const size_t first = line.find(':');
    const size_t second = first == std::string::npos ? first : line.find(':', first + 1);
    if (second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    std::filesystem::path dir;
    std::string file;
    if (controllers.empty()) {
      dir = cgroup_root;
      file = "memory.max";
    } else if (("," + controllers + ",").find(",memory,") != std::string::npos) {
      dir = cgroup_root / "memory";
      file = "memory.limit_in_bytes";
    } else {
      continue;
    }
    // From the process's cgroup up to the hierarchy's root, inclusive.
    const std::filesystem::path relative =
        std::filesystem::path(line.substr(second + 1)).relative_path().lexically_normal();
    std::filesystem::path at = relative.empty() || relative == "." ? dir : dir / relative;
    while (true) {
      lower(ReadLimit(at / file));
      std::filesystem::path up = at.parent_path();
      if (at == dir || up == at || up.native().size() < dir.native().size()) break;
      at = std::move(up);
    }
  }
  return usable;
}

void ReleaseFreeMemory() {
#if defined(MM_SANITIZER_ALLOCATOR)
  __sanitizer_purge_allocator();
#elif defined(MM_JEMALLOC)
  // Every arena's unused dirty pages, now rather than after their decay time.
  ::mallctl("arena." MM_STRINGIFY(MALLCTL_ARENAS_ALL) ".purge", nullptr, nullptr, nullptr, 0);
#else
  ::malloc_trim(0);
#endif
}

StatusOr<uint64_t> ParseByteSize(std::string_view text, uint64_t total_for_percent) {
  std::string_view s = Trim(text);
  if (s.empty()) return BadSize(text, "is empty");
  if (s.front() == '-') return BadSize(text, "is negative");

  // The number, exactly: whole + fraction / scale.
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  constexpr int kMaxFractionDigits = 15;
  size_t i = 0;
  uint64_t whole = 0;
  bool whole_overflow = false;
  while (i < s.size() && IsDigit(s[i])) {
    uint64_t digit = static_cast<uint64_t>(s[i] - '0');
    if (whole > (kMax - digit) / 10) whole_overflow = true;
    if (!whole_overflow) whole = whole * 10 + digit;
    ++i;
  }
  size_t whole_digits = i;
  uint64_t fraction = 0;
  uint64_t scale = 1;
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t start = i;
    for (; i < s.size() && IsDigit(s[i]); ++i) {
      if (i - start < kMaxFractionDigits) {
        fraction = fraction * 10 + static_cast<uint64_t>(s[i] - '0');
        scale *= 10;
      }
    }
    if (i == start) return BadSize(text, "has no digits after the decimal point");
  }
  if (whole_digits == 0) return BadSize(text, "does not start with a number");
  while (i < s.size() && IsSpace(s[i])) ++i;
  std::string_view unit = s.substr(i);

  using Wide = unsigned __int128;
  if (unit == "%") {
    bool zero = whole == 0 && fraction == 0;
    if (whole_overflow || zero || whole > 100 || (whole == 100 && fraction > 0)) {
      return BadSize(text, "is a percentage outside (0,100]");
    }
    if (total_for_percent == 0) {
      return BadSize(text, "is a percentage of a total that is unknown here; give a size");
    }
    Wide parts = static_cast<Wide>(whole) * scale + fraction;  // the percentage times scale
    return static_cast<uint64_t>(parts * total_for_percent / (static_cast<Wide>(100) * scale));
  }
  uint64_t multiplier = UnitMultiplier(unit);
  if (multiplier == 0) {
    return BadSize(text, "has an unknown unit '" + std::string(unit) + "'");
  }
  Wide bytes =
      static_cast<Wide>(whole) * multiplier + static_cast<Wide>(fraction) * multiplier / scale;
  if (whole_overflow || bytes > kMax) return BadSize(text, "is more than 2^64-1 bytes");
  return static_cast<uint64_t>(bytes);
}

std::string FormatBytes(uint64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + " B";
  static constexpr std::array<const char*, 7> kUnits = {"B",   "KiB", "MiB", "GiB",
                                                        "TiB", "PiB", "EiB"};
  size_t unit = 1;
  double value = static_cast<double>(bytes) / 1024.0;
  // Move up a unit while the value would print as 1024.0 or more.
  while (value >= 1023.95 && unit + 1 < kUnits.size()) {
    value /= 1024.0;
    ++unit;
  }
  char buffer[32];
  if (value < 9.995) {
    int n = std::snprintf(buffer, sizeof(buffer), "%.2f", value);
    if (n > 0 && buffer[n - 1] == '0') buffer[n - 1] = '\0';  // "1.50" -> "1.5"
  } else {
    std::snprintf(buffer, sizeof(buffer), "%.1f", value);
  }
  return std::string(buffer) + " " + kUnits[unit];
}

}  // namespace mm
