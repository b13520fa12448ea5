// The key a folder is compared by, so that two spellings of one folder
// ("/models/a/", "/models/./a", a symlink to it) are the same: the
// absolute, normalized path with symlinks resolved as far as it exists
// (std::filesystem::weakly_canonical), without a trailing '/'.
#pragma once

#include <filesystem>
#include <string>
#include <system_error>

namespace mm {

inline std::string PathKey(const std::filesystem::path& path) {
  std::error_code ec;
  // Absolute first: weakly_canonical leaves a relative path that does not
  // exist relative.
  const std::filesystem::path absolute = std::filesystem::absolute(path, ec);
  std::filesystem::path p = std::filesystem::weakly_canonical(ec ? path : absolute, ec);
  if (ec) p = absolute.lexically_normal();
  std::string key = p.string();
  while (key.size() > 1 && key.back() == '/') key.pop_back();
  return key;
}

}  // namespace mm
