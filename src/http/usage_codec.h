// Body of GET /v2/usage: what each tenant used, per model. Pure function, no I/O.
#pragma once

#include <string>
#include <vector>

#include "service/inference_service.h"

namespace mm {

// {"tenants":[{"tenant":..,"refused":N,"models":[{"name":..,"requests":N,
// "failures":N,"queue_seconds":x,"compute_seconds":x,"queue_ns":N,
// "compute_ns":N,"bytes_in":N,"bytes_out":N},..]},..]}, in the reports' order.
std::string EncodeUsage(const std::vector<TenantUsageReport>& reports);

}  // namespace mm
