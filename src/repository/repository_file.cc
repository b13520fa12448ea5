#include "repository/repository_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/unique_fd.h"

namespace mm {
namespace {

std::string Quoted(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

std::string_view TypeOf(mode_t mode) {
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

// Opens `path` without blocking (a FIFO with no writer would block a plain
// open) and checks, on the open file, that it is a regular file within the cap.
StatusOr<uint64_t> OpenChecked(const std::filesystem::path& path, RepositoryFileKind kind,
                               int* fd_out) {
  const std::string what = std::string(RepositoryFileKindName(kind)) + " " + Quoted(path);
  const int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) return NotFound(what + " does not exist");
    return InvalidArgument("cannot open " + what + ": " + std::strerror(err));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    return InvalidArgument("cannot read " + what + ": " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return InvalidArgument(what + " is " + std::string(TypeOf(st.st_mode)) +
                           "; expected a regular file");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  const uint64_t cap = MaxRepositoryFileBytes(kind);
  if (size > cap) {
    close(fd);
    return InvalidArgument(what + " is " + std::to_string(size) + " bytes; expected at most " +
                           std::to_string(cap) + " bytes for a " +
                           std::string(RepositoryFileKindName(kind)));
  }
  *fd_out = fd;
  return size;
}

}  // namespace

uint64_t MaxRepositoryFileBytes(RepositoryFileKind kind) {
  switch (kind) {
    case RepositoryFileKind::kConfig:
      return uint64_t{4} << 20;
    case RepositoryFileKind::kDriftBaseline:
      return uint64_t{64} << 20;
    case RepositoryFileKind::kWarmupData:
      return uint64_t{256} << 20;
    case RepositoryFileKind::kModel:
      return uint64_t{64} << 30;
    case RepositoryFileKind::kAwsSettings:
      return uint64_t{1} << 20;
  }
  return 0;
}

std::string_view RepositoryFileKindName(RepositoryFileKind kind) {
  switch (kind) {
    case RepositoryFileKind::kConfig:
      return "config";
    case RepositoryFileKind::kDriftBaseline:
      return "drift baseline";
    case RepositoryFileKind::kWarmupData:
      return "warmup data file";
    case RepositoryFileKind::kModel:
      return "model file";
    case RepositoryFileKind::kAwsSettings:
      return "AWS settings file";
  }
  return "file";
}

StatusOr<std::string> ReadRepositoryFile(const std::filesystem::path& path,
                                         RepositoryFileKind kind) {
  int raw = -1;
  MM_ASSIGN_OR_RETURN(uint64_t size, OpenChecked(path, kind, &raw));
  UniqueFd fd(raw);
  // Read one byte more than fstat said: a file that grows meanwhile is seen.
  std::string out(static_cast<size_t>(size) + 1, '\0');
  size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = read(fd.get(), out.data() + got, out.size() - got);
    if (n < 0) {
      const int err = errno;  // (before anything below can change it)
      if (err == EINTR) continue;
      return InvalidArgument("cannot read " + std::string(RepositoryFileKindName(kind)) + " " +
                             Quoted(path) + ": " + std::strerror(err));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got > size) {
    return InvalidArgument(std::string(RepositoryFileKindName(kind)) + " " + Quoted(path) +
                           " grew while it was read; expected a file that stays as it is");
  }
  out.resize(got);
  return out;
}

StatusOr<uint64_t> CheckRepositoryFile(const std::filesystem::path& path, RepositoryFileKind kind) {
  int raw = -1;
  MM_ASSIGN_OR_RETURN(uint64_t size, OpenChecked(path, kind, &raw));
  UniqueFd fd(raw);
  return size;
}

}  // namespace mm
