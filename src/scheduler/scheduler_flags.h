// The scheduler's flags, beside ExecutionSlots::Options and
// ModelScheduler::Options: the execution slots, their nice value, inline
// execution, and the tenants' weights in the slots' fair share
// (--tenant-weight TENANT=WEIGHT, parsed here).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/bounds.h"
#include "core/status.h"
#include "scheduler/execution_slots.h"

namespace CLI {
class App;
}

namespace mm {

inline constexpr Bounds<size_t> kExecutionSlotsBounds{1, 1024};
inline constexpr Bounds<int> kExecutionNiceBounds{0, 19};
inline constexpr Bounds<int64_t> kInlineExecutionMaxUsBounds{0, 10'000};

struct SchedulerFlags {
  // slots: one per core; nice: 5 (AddSchedulerFlags sets both).
  ExecutionSlots::Options slots;
  // --inline-execution-max-us, for ModelScheduler::Options::inline_max_ns.
  int64_t inline_max_us = 100;
  // --tenant-weight values, as given (ApplyTenantWeights parses them).
  std::vector<std::string> tenant_weights;
};

// Registers --execution-slots (alias --execution-threads), --execution-nice,
// --tenant-weight and --inline-execution-max-us into `flags` (which must
// outlive the parse).
void AddSchedulerFlags(CLI::App& app, SchedulerFlags& flags);

// "team-a=2" -> {"team-a", 2}: the tenant is everything before the last '=',
// the weight a number filling the rest. INVALID_ARGUMENT ("--tenant-weight
// 'TEXT': expected TENANT=WEIGHT, e.g. team-a=2") when either is missing or
// the weight is not a number; whether the weight is usable (finite, > 0) is
// ExecutionSlots::SetTenantWeight's call.
StatusOr<std::pair<std::string, double>> ParseTenantWeight(std::string_view text);

// Parses every --tenant-weight value and sets it in `slots`; the first error,
// naming the flag.
Status ApplyTenantWeights(const std::vector<std::string>& tenant_weights, ExecutionSlots& slots);

}  // namespace mm
