// The service's flags, beside InferenceService::Options: the hard limits on a
// request's shape and on a tenant's shared memory regions, and how long the
// server's shutdown may take (--exit-timeout-secs, ShutdownDeadline).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/bounds.h"
#include "core/status.h"
#include "service/inference_service.h"

namespace CLI {
class App;
}

namespace mm {

inline constexpr Bounds<size_t> kMaxTensorsPerRequestBounds{1, size_t{1} << 20};
inline constexpr Bounds<int64_t> kMaxElementsPerTensorBounds{1, int64_t{1} << 62};
inline constexpr Bounds<size_t> kMaxShmRegionsPerTenantBounds{1, size_t{1} << 16};
inline constexpr Bounds<int64_t> kExitTimeoutSecsBounds{0, 86'400};

struct ServiceFlags {
  InferenceService::Options service;  // the limits (the rest is wiring)
  int64_t exit_timeout_secs = 30;
};

// Registers --max-tensors-per-request, --max-elements-per-tensor,
// --max-shm-regions-per-tenant and --exit-timeout-secs into `flags` (which
// must outlive the parse).
void AddServiceFlags(CLI::App& app, ServiceFlags& flags);

// INVALID_ARGUMENT naming the flag when a limit is out of its bounds above.
// InferenceService::Create calls it.
Status ValidateServiceOptions(const InferenceService::Options& options);

}  // namespace mm
