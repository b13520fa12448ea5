// The server's Prometheus metrics (observability/metrics.h): per model
// version, per tenant, and the memory budget, read from the lifecycle's
// statistics and index and from the usage ledger at scrape time.
//
// Labels and what bounds them:
//   model, version  versions of models in the repositories that were loaded
//                   (or tried) at least once; a name a client made up never
//                   appears (StatsRegistry);
//   tenant          a model's owner (tenants file, or mmserve.tenant, or
//                   "shared"); for usage, the tenant that sent the requests
//                   (tenants file);
//   code            a status code name (14 values);
//   state           the four lifecycle states;
//   input, feature  inputs and feature indices of a model's drift baseline
//                   (at most 64 inputs of 4096 features: drift.h).
#pragma once

#include "observability/metrics.h"
#include "scheduler/execution_slots.h"
#include "service/inference_service.h"

namespace mm {

// A collector for MetricsServer; `service` outlives it, and so do `slots`
// when given: the execution slots, for mmserve_execution_slots (the pool's
// size), _busy and _waiting (gauges sampled at the scrape).
MetricsCollector ServerMetricsCollector(const InferenceService* service,
                                        const ExecutionSlots* slots = nullptr);

}  // namespace mm
