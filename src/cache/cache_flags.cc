#include "cache/cache_flags.h"

#include <CLI/CLI.hpp>
#include <charconv>

namespace mm {

void AddCacheFlags(CLI::App& app, CacheFlags& flags) {
  app.add_option("--cache-config", flags.configs,
                 "The response cache, as Triton: local,size=BYTES (repeatable: "
                 "CACHE,SETTING=VALUE). Models with response_cache { enable: true } answer "
                 "repeated requests from it (docs/response_cache.md); absent or 0: no cache");
}

StatusOr<uint64_t> ParseCacheConfig(const std::vector<std::string>& configs) {
  uint64_t size = 0;
  for (const std::string& text : configs) {
    const std::string what = "--cache-config '" + text + "'";
    const size_t comma = text.find(',');
    const std::string_view cache = std::string_view(text).substr(0, comma);
    if (cache != "local") {
      return InvalidArgument(what + ": cache '" + std::string(cache) +
                             "' is not available; expected local,size=BYTES");
    }
    if (comma == std::string::npos) {
      return InvalidArgument(what + ": expected local,size=BYTES");
    }
    const std::string_view setting = std::string_view(text).substr(comma + 1);
    const size_t eq = setting.find('=');
    if (eq == std::string::npos || setting.substr(0, eq) != "size") {
      return InvalidArgument(what + ": the local cache has one setting, size=BYTES");
    }
    const std::string_view value = setting.substr(eq + 1);
    uint64_t bytes = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), bytes);
    if (value.empty() || ec != std::errc() || end != value.data() + value.size()) {
      return InvalidArgument(what + ": size '" + std::string(value) +
                             "' is not a whole number of bytes");
    }
    MM_RETURN_IF_ERROR(CheckBounds("--cache-config local,size", bytes, kCacheSizeBounds));
    size = bytes;
  }
  return size;
}

}  // namespace mm
