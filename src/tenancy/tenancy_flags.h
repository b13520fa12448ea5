// Tenancy's flag: the tenants file (--tenants). The registry it names is
// opened, applied and reloaded by the service (service/tenant_policy.h).
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace mm {

// Registers --tenants (an existing file) into `tenants_file` (which must
// outlive the parse).
void AddTenancyFlags(CLI::App& app, std::string& tenants_file);

}  // namespace mm
