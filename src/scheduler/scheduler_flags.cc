#include "scheduler/scheduler_flags.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <thread>

namespace mm {

void AddSchedulerFlags(CLI::App& app, SchedulerFlags& flags) {
  flags.slots.slots = std::max(1u, std::thread::hardware_concurrency());
  flags.slots.nice = 5;
  app.add_option("--execution-slots,--execution-threads", flags.slots.slots,
                 "Model executions at once, shared by all models by weighted fair share "
                 "across tenants, then models (each slot has a thread)")
      ->capture_default_str()
      ->check(CLI::Range(kExecutionSlotsBounds.min, kExecutionSlotsBounds.max));
  app.add_option("--execution-nice", flags.slots.nice,
                 "Nice value of the execution threads above the I/O threads (0-19): on a busy "
                 "CPU, decoding requests and writing answers then preempt long executions "
                 "(model loads run at 10)")
      ->capture_default_str()
      ->check(CLI::Range(kExecutionNiceBounds.min, kExecutionNiceBounds.max));
  app.add_option("--tenant-weight", flags.tenant_weights,
                 "TENANT=WEIGHT: the tenant's share of the execution slots against other "
                 "tenants (repeatable; default 1; a model's tenant is mmserve.tenant in its "
                 "config, else 'shared')");
  app.add_option("--inline-execution-max-us", flags.inline_max_us,
                 "Run a request of at most 64 KiB on the I/O thread, skipping the hop to an "
                 "execution thread, when its model averages at most this many microseconds "
                 "and a slot is idle (0: never)")
      ->capture_default_str()
      ->check(CLI::Range(kInlineExecutionMaxUsBounds.min, kInlineExecutionMaxUsBounds.max));
}

StatusOr<std::pair<std::string, double>> ParseTenantWeight(std::string_view text) {
  const std::string copy(text);  // strtod needs a terminated string
  const size_t eq = copy.rfind('=');
  if (eq != std::string::npos && eq != 0 && eq + 1 != copy.size()) {
    const char* begin = copy.c_str() + eq + 1;
    char* end = nullptr;
    const double weight = std::strtod(begin, &end);
    if (end == copy.c_str() + copy.size()) return std::make_pair(copy.substr(0, eq), weight);
  }
  return InvalidArgument("--tenant-weight '" + copy + "': expected TENANT=WEIGHT, e.g. team-a=2");
}

Status ApplyTenantWeights(const std::vector<std::string>& tenant_weights, ExecutionSlots& slots) {
  for (const std::string& text : tenant_weights) {
    MM_ASSIGN_OR_RETURN(auto parsed, ParseTenantWeight(text));
    if (Status s = slots.SetTenantWeight(parsed.first, parsed.second); !s.ok()) {
      return s.WithContext("--tenant-weight");
    }
  }
  return OkStatus();
}

}  // namespace mm
