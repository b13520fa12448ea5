// The steady clock in nanoseconds: what the request path stamps requests,
// executions and answers with (durations only; never wall time).
#pragma once

#include <chrono>
#include <cstdint>

namespace mm {

inline int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace mm
