// Shapes and the arithmetic on them that must never overflow.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace mm {

using Shape = std::vector<int64_t>;

// Product of the dims; INVALID_ARGUMENT for a negative dim or an overflow past
// int64 (the message names `what`, e.g. "input 'x'").
StatusOr<int64_t> ElementCount(std::span<const int64_t> shape, std::string_view what);

// "[2,3]"; -1 dims print as "?" when wildcard is set ("[?,4]").
std::string ShapeToString(std::span<const int64_t> shape, bool wildcard = false);

// True when `shape` fits `dims`, where a dim of -1 accepts any size.
bool ShapeMatches(std::span<const int64_t> dims, std::span<const int64_t> shape);

}  // namespace mm
