#include "service/service_flags.h"

#include <CLI/CLI.hpp>

namespace mm {

void AddServiceFlags(CLI::App& app, ServiceFlags& flags) {
  InferenceService::Options& o = flags.service;
  app.add_option("--max-tensors-per-request", o.max_tensors_per_request,
                 "Most tensors (inputs plus requested outputs) one inference request may name")
      ->capture_default_str()
      ->check(CLI::Range(kMaxTensorsPerRequestBounds.min, kMaxTensorsPerRequestBounds.max));
  app.add_option("--max-elements-per-tensor", o.max_elements_per_tensor,
                 "Most elements one input tensor may have (its shape's product)")
      ->capture_default_str()
      ->check(CLI::Range(kMaxElementsPerTensorBounds.min, kMaxElementsPerTensorBounds.max));
  app.add_option("--max-shm-regions-per-tenant", o.max_shm_regions_per_tenant,
                 "Most system shared memory regions one tenant may have registered at once")
      ->capture_default_str()
      ->check(CLI::Range(kMaxShmRegionsPerTenantBounds.min, kMaxShmRegionsPerTenantBounds.max));
  app.add_option("--exit-timeout-secs", flags.exit_timeout_secs,
                 "On SIGTERM/SIGINT, wait this long for in-flight requests; then kill the "
                 "workers, answer their requests UNAVAILABLE and exit (status 1)")
      ->capture_default_str()
      ->check(CLI::Range(kExitTimeoutSecsBounds.min, kExitTimeoutSecsBounds.max));
}

Status ValidateServiceOptions(const InferenceService::Options& options) {
  MM_RETURN_IF_ERROR(CheckBounds("--max-tensors-per-request", options.max_tensors_per_request,
                                 kMaxTensorsPerRequestBounds));
  MM_RETURN_IF_ERROR(CheckBounds("--max-elements-per-tensor", options.max_elements_per_tensor,
                                 kMaxElementsPerTensorBounds));
  return CheckBounds("--max-shm-regions-per-tenant", options.max_shm_regions_per_tenant,
                     kMaxShmRegionsPerTenantBounds);
}

}  // namespace mm
