// A closed range a setting must fall in, written once beside the Options it
// bounds: the flag's check (CLI::Range(b.min, b.max)) and the room's
// Validate() both read it, so the two cannot drift apart.
#pragma once

#include <sstream>
#include <string>
#include <string_view>

#include "core/status.h"

namespace mm {

template <typename T>
struct Bounds {
  T min;
  T max;
  constexpr bool Contains(T value) const { return value >= min && value <= max; }
};

// OK when `value` is in `bounds`; else INVALID_ARGUMENT "NAME VALUE: expected
// MIN to MAX", NAME being the flag that sets it.
template <typename T>
Status CheckBounds(std::string_view name, T value, Bounds<T> bounds) {
  if (bounds.Contains(value)) return OkStatus();
  std::ostringstream message;
  message << name << ' ' << value << ": expected " << bounds.min << " to " << bounds.max;
  return InvalidArgument(message.str());
}

}  // namespace mm
