#include "console/console_assets.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

namespace mm {

namespace {

struct AssetSet {
  std::vector<std::string> bodies;  // read from MMSERVE_CONSOLE_DIR (else empty)
  std::vector<ConsoleAsset> assets;
};

AssetSet LoadAssets() {
  AssetSet set;
  const std::span<const ConsoleAsset> embedded = EmbeddedConsoleAssets();
  const char* dir = std::getenv("MMSERVE_CONSOLE_DIR");
  if (dir == nullptr || *dir == '\0') {
    set.assets.assign(embedded.begin(), embedded.end());
    return set;
  }
  spdlog::warn("console: serving the assets of {} (MMSERVE_CONSOLE_DIR), not the embedded ones",
               dir);
  set.bodies.reserve(embedded.size());  // no reallocation: assets point into bodies
  for (const ConsoleAsset& a : embedded) {
    std::ifstream in(std::string(dir) + "/" + std::string(a.name), std::ios::binary);
    if (!in) {
      spdlog::error("console: {}/{} cannot be read; it is not served", dir, a.name);
      continue;
    }
    std::ostringstream text;
    text << in.rdbuf();
    set.bodies.push_back(std::move(text).str());
    set.assets.push_back({a.name, a.content_type, set.bodies.back()});
  }
  return set;
}

}  // namespace

const ConsoleAsset* FindConsoleAsset(std::string_view name) {
  static const AssetSet set = LoadAssets();
  for (const ConsoleAsset& a : set.assets) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

}  // namespace mm
