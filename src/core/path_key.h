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
  std::filesystem::path p = std::filesystem::weakly_canonical(path, ec);
  if (ec) p = std::filesystem::absolute(path, ec).lexically_normal();
  std::string key = p.string();
  while (key.size() > 1 && key.back() == '/') key.pop_back();
  return key;
}

}  // namespace mm
