// The response cache's flag, as Triton spells it: --cache-config
// <cache>,<setting>=<value>, repeatable. mmserve has one cache, `local`, with
// one setting, `size` (bytes held at most, 0 or absent: no cache).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/bounds.h"
#include "core/status.h"

namespace CLI {
class App;
}

namespace mm {

// At most 1 TiB (a bound on a typo, far above a machine's memory).
inline constexpr Bounds<uint64_t> kCacheSizeBounds{0, uint64_t{1} << 40};

struct CacheFlags {
  std::vector<std::string> configs;  // --cache-config values, as given
};

void AddCacheFlags(CLI::App& app, CacheFlags& flags);

// The local cache's size in bytes from every --cache-config value (the last
// size given wins; 0: no cache). INVALID_ARGUMENT naming the value for
// another cache than `local`, a setting other than `size`, or a size that is
// not a whole number of bytes within kCacheSizeBounds.
StatusOr<uint64_t> ParseCacheConfig(const std::vector<std::string>& configs);

}  // namespace mm
