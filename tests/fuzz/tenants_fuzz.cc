// libFuzzer target for the tenants file parser (--tenants FILE), and the API
// key hash parser it calls. Beyond "no crash, leak or UB": every rejection is
// INVALID_ARGUMENT with a message, and whatever parses satisfies the
// invariants the rest of the server relies on.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string_view>

#include "tenancy/tenants.h"

namespace {

void Check(bool cond, const char* what) {
  if (!cond) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 << 10) return 0;  // a tenants file is small; keep runs fast
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto hash = mm::ParseApiKeyHash(text);
  Check(hash.ok() || hash.status().code() == mm::StatusCode::kInvalidArgument,
        "a bad key hash is INVALID_ARGUMENT");
  auto parsed = mm::ParseTenants(text);
  if (!parsed.ok()) {
    Check(parsed.status().code() == mm::StatusCode::kInvalidArgument,
          "rejections are INVALID_ARGUMENT");
    Check(!parsed.status().message().empty(), "rejections have messages");
    return 0;
  }
  Check(!parsed->tenants.empty(), "a parsed file has tenants");
  std::set<std::string> ids;
  for (const mm::Tenant& t : parsed->tenants) {
    Check(!t.id.empty() && t.id.size() <= 64, "ids are 1..64 characters");
    Check(ids.insert(t.id).second, "ids are unique");
    Check(!t.api_keys.empty(), "every tenant has a key");
    Check(t.weight > 0, "weights are positive");
    Check(t.role == mm::TenantRole::kAdmin || !t.repositories.empty(),
          "user tenants have repositories");
    Check(t.quotas.requests_per_second == 0 || t.quotas.burst >= 1,
          "a rate comes with a burst of at least 1");
  }
  return 0;
}
