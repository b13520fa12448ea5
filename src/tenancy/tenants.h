// The tenants file (--tenants FILE): who may use the server, with which keys,
// which models each tenant sees, and how much of the server each may use.
//
//   tenants:
//     - id: team-a                    # [A-Za-z0-9._-], 1..64 characters, unique
//       api_keys:                     # hashes from `mmserve hash-key SECRET`
//         - sha256$...$...
//       repositories: [/models/a]     # model repositories: the tenant's namespace,
//                                     # as --model-repository names them (a folder,
//                                     # file://PATH, or a URI such as s3://bucket/prefix)
//       role: user                    # user (default) or admin
//       weight: 2                     # fair share of execution slots (default 1)
//       quotas:                       # each optional; absent or 0: no limit
//         max_concurrency: 8          # requests in flight at once
//         requests_per_second: 100    # token bucket refill rate ...
//         burst: 200                  # ... and size (default: max(1, rate))
//         max_loaded_models: 4
//         memory_bytes: 2GiB          # an integer or a size as --model-memory-budget takes
//
// Parsing is strict, as for client input: an unknown field, a wrong type, a
// duplicate id, key or repository (two spellings of one folder or URI
// included), a bad key hash: INVALID_ARGUMENT naming
// the place ("tenants[1] (team-b).quotas.burst: expected a number >= 1, got
// 'lots'") and nothing is used. A repository belongs to at most one tenant
// (two tenants sharing one would see each other's models); an admin may have
// none (it sees every tenant's models).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "tenancy/api_key.h"

namespace mm {

enum class TenantRole { kUser, kAdmin };

class TenantQuota;
class TenantUsage;

struct TenantQuotas {
  uint64_t max_concurrency = 0;    // 0: unlimited
  double requests_per_second = 0;  // 0: unlimited
  double burst = 0;                // token bucket size; set when requests_per_second is
  uint64_t max_loaded_models = 0;
  uint64_t memory_bytes = 0;
};

struct Tenant {
  std::string id;
  std::vector<ApiKeyHash> api_keys;
  std::vector<std::string> repositories;  // as written in the file
  // RepositoryKey (repository/repository_key.h) of each repository: what
  // ModelRepository::key() says for it. Filled in by TenantRegistry (it
  // reads the filesystem for a folder), not by the parser.
  std::vector<std::string> repository_keys;
  // The request quotas' live state (tenancy/quota.h), kept across reloads;
  // set by TenantRegistry (null in open mode and from the parser).
  std::shared_ptr<TenantQuota> quota;
  // What the tenant used (tenancy/usage.h), kept across reloads; set by
  // TenantRegistry, which outlives it (null from the parser).
  TenantUsage* usage = nullptr;
  TenantRole role = TenantRole::kUser;
  double weight = 1;
  TenantQuotas quotas;
};

struct TenantsConfig {
  std::vector<Tenant> tenants;
};

// Parses the YAML text of a tenants file.
StatusOr<TenantsConfig> ParseTenants(std::string_view yaml);

// Reads and parses `path`; errors name the file.
StatusOr<TenantsConfig> LoadTenantsFile(const std::string& path);

}  // namespace mm
