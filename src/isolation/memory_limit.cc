#include "isolation/memory_limit.h"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <system_error>

namespace mm {

namespace {

namespace fs = std::filesystem;

// The server's cgroup v2 folder: "0::/path" in /proc/self/cgroup, under the
// cgroup2 mount (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts).
StatusOr<fs::path> OwnCgroupDir() {
  std::ifstream in("/proc/self/cgroup");
  std::string line, path;
  while (std::getline(in, line)) {
    if (line.rfind("0::", 0) == 0) path = line.substr(3);
  }
  if (path.empty()) return Unavailable("no cgroup v2 entry in /proc/self/cgroup");
  for (const char* mount : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
    fs::path dir = fs::path(mount) / fs::path(path).relative_path();
    std::error_code ec;
    if (fs::exists(dir / "cgroup.subtree_control", ec)) return dir;
  }
  return Unavailable("the server's cgroup v2 folder is not mounted");
}

bool WriteFile(const fs::path& file, const std::string& text) {
  std::ofstream out(file);
  out << text;
  out.flush();
  return static_cast<bool>(out);
}

}  // namespace

std::string_view MemoryLimitKindName(MemoryLimitKind kind) {
  switch (kind) {
    case MemoryLimitKind::kCgroupV2:
      return "cgroup v2 memory.max";
    case MemoryLimitKind::kAddressSpace:
      return "RLIMIT_AS";
    case MemoryLimitKind::kResidentWatchdog:
      return "resident-memory watchdog";
  }
  return "unknown";
}

bool UnderSanitizer() {
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
  return true;
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return true;
#else
  return false;
#endif
}

MemoryLimitKind ChooseMemoryLimitKind() {
  static const MemoryLimitKind kind = [] {
    auto probe = CgroupGroup::Create("mmserve-probe-" + std::to_string(::getpid()), 64ull << 20);
    if (probe.ok()) return MemoryLimitKind::kCgroupV2;
    return UnderSanitizer() ? MemoryLimitKind::kResidentWatchdog : MemoryLimitKind::kAddressSpace;
  }();
  return kind;
}

StatusOr<std::unique_ptr<CgroupGroup>> CgroupGroup::Create(std::string_view name,
                                                           uint64_t limit_bytes) {
  MM_ASSIGN_OR_RETURN(fs::path own, OwnCgroupDir());
  std::ifstream controls(own / "cgroup.subtree_control");
  std::string word;
  bool memory = false;
  while (controls >> word) memory = memory || word == "memory";
  if (!memory) return Unavailable("the memory controller is not delegated to " + own.string());
  fs::path dir = own / std::string(name);
  std::error_code ec;
  if (!fs::create_directory(dir, ec) || ec) {
    return Unavailable("cannot create " + dir.string() + ": " + ec.message());
  }
  std::unique_ptr<CgroupGroup> group(new CgroupGroup(dir));
  if (!WriteFile(dir / "memory.max", std::to_string(limit_bytes))) {
    return Unavailable("cannot write " + (dir / "memory.max").string());
  }
  WriteFile(dir / "memory.swap.max", "0");  // best effort: no swap to hide in
  return group;
}

CgroupGroup::~CgroupGroup() {
  std::error_code ec;
  fs::remove(dir_, ec);  // rmdir; fails harmlessly while a process remains
}

Status CgroupGroup::AddProcess(pid_t pid) {
  if (!WriteFile(dir_ / "cgroup.procs", std::to_string(pid))) {
    return Unavailable("cannot move process " + std::to_string(pid) + " into " + dir_.string());
  }
  return OkStatus();
}

Status CgroupGroup::SetLimit(uint64_t bytes) {
  if (!WriteFile(dir_ / "memory.max", std::to_string(bytes))) {
    return Unavailable("cannot write " + (dir_ / "memory.max").string());
  }
  return OkStatus();
}

bool CgroupGroup::OomKilled() const {
  std::ifstream events(dir_ / "memory.events");
  std::string key;
  uint64_t value = 0;
  while (events >> key >> value) {
    if (key == "oom_kill" && value > 0) return true;
  }
  return false;
}

uint64_t ResidentBytesOf(pid_t pid) {
  std::ifstream statm("/proc/" + std::to_string(pid) + "/statm");
  uint64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace mm
