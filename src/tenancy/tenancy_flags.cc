#include "tenancy/tenancy_flags.h"

#include <CLI/CLI.hpp>

namespace mm {

void AddTenancyFlags(CLI::App& app, std::string& tenants_file) {
  app.add_option("--tenants", tenants_file,
                 "Tenants file (YAML): tenants, their API keys (from `mmserve hash-key SECRET`), "
                 "repositories, roles, weights and quotas; without it the server runs open. "
                 "SIGHUP re-reads it")
      ->check(CLI::ExistingFile);
}

}  // namespace mm
