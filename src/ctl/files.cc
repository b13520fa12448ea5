#include "ctl/files.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace mm {

StatusOr<std::string> ReadFile(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (f == nullptr) {
    const int err = errno;
    std::string message = "cannot open '" + path + "': " + std::strerror(err);
    if (err == ENOENT) return NotFound(std::move(message));
    if (err == EACCES) return PermissionDenied(std::move(message));
    return Internal(std::move(message));
  }
  std::string out;
  char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), f.get())) > 0) out.append(buffer, n);
  if (std::ferror(f.get())) {
    return Internal("cannot read '" + path + "': " + std::strerror(errno));
  }
  return out;
}

}  // namespace mm
