#include "tenancy/tenant_registry.h"

#include <cstring>
#include <unordered_map>

#include "repository/repository_key.h"

namespace mm {

namespace {

// Generations are unique across registries, so a thread's cache can tell
// whose and which file it holds.
std::atomic<uint64_t> next_generation{1};
constexpr size_t kCacheEntries = 1024;  // per thread; emptied when full

struct DigestHash {
  size_t operator()(const KeyDigest& d) const {
    size_t h;
    std::memcpy(&h, d.data(), sizeof(h));  // a SHA-256 is uniform already
    return h;
  }
};

struct ThreadCache {
  uint64_t generation = 0;
  std::unordered_map<KeyDigest, std::shared_ptr<const Tenant>, DigestHash> tenants;
};
thread_local ThreadCache cache;

Status Unauthenticated(std::string what) {
  return Status(StatusCode::kUnauthenticated,
                std::move(what) + "; expected the header 'Authorization: Bearer <API key>'");
}

// The key in "Bearer KEY" (scheme case-insensitive, spaces around the key
// allowed); empty when the value is not of that form.
std::string_view BearerKey(std::string_view value) {
  constexpr std::string_view kBearer = "bearer ";
  if (value.size() <= kBearer.size()) return {};
  for (size_t i = 0; i < kBearer.size(); ++i) {
    char c = value[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kBearer[i]) return {};
  }
  std::string_view key = value.substr(kBearer.size());
  while (!key.empty() && (key.front() == ' ' || key.front() == '\t')) key.remove_prefix(1);
  while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.remove_suffix(1);
  return key;
}

}  // namespace

std::unique_ptr<TenantRegistry> TenantRegistry::Open() {
  std::unique_ptr<TenantRegistry> r(new TenantRegistry(true, ""));
  auto tenant = std::make_shared<Tenant>();
  tenant->id = std::string(kDefaultTenantId);
  tenant->role = TenantRole::kAdmin;
  tenant->usage = r->usage_.Tenant(tenant->id);
  r->default_tenant_ = std::move(tenant);
  r->Install(TenantsConfig{});
  return r;
}

StatusOr<std::unique_ptr<TenantRegistry>> TenantRegistry::FromFile(std::string path) {
  MM_ASSIGN_OR_RETURN(TenantsConfig config, LoadTenantsFile(path));
  std::unique_ptr<TenantRegistry> r(new TenantRegistry(false, std::move(path)));
  r->Install(std::move(config));
  return r;
}

std::unique_ptr<TenantRegistry> TenantRegistry::FromConfig(TenantsConfig config) {
  std::unique_ptr<TenantRegistry> r(new TenantRegistry(false, ""));
  r->Install(std::move(config));
  return r;
}

void TenantRegistry::Install(TenantsConfig config) {
  auto state = std::make_shared<State>();
  MutexLock lock(mu_);
  std::map<std::string, std::shared_ptr<TenantQuota>> quotas;
  for (Tenant& t : config.tenants) {
    t.repository_keys.clear();
    for (const auto& r : t.repositories) t.repository_keys.push_back(RepositoryKey(r));
    auto it = quotas_.find(t.id);
    t.quota = it != quotas_.end() ? it->second : std::make_shared<TenantQuota>(t.id);
    t.quota->Configure(t.quotas);
    quotas[t.id] = t.quota;
    t.usage = usage_.Tenant(t.id);
    state->tenants.push_back(std::make_shared<Tenant>(t));
  }
  quotas_ = std::move(quotas);  // a tenant dropped by a reload loses its state
  state->config = std::move(config);
  state->generation = next_generation.fetch_add(1);
  state_ = std::move(state);
  generation_.store(state_->generation, std::memory_order_release);
}

std::shared_ptr<const TenantRegistry::State> TenantRegistry::state() const {
  MutexLock lock(mu_);
  return state_;
}

std::shared_ptr<const TenantsConfig> TenantRegistry::config() const {
  auto s = state();
  return std::shared_ptr<const TenantsConfig>(s, &s->config);
}

std::shared_ptr<const Tenant> TenantRegistry::OwnerOf(std::string_view repository_key) const {
  const auto s = state();
  for (const auto& tenant : s->tenants) {
    for (const auto& key : tenant->repository_keys) {
      if (key == repository_key) return tenant;
    }
  }
  return nullptr;
}

Status TenantRegistry::Reload() {
  if (open_ || path_.empty()) {
    return FailedPrecondition("no tenants file to reload: the server runs open");
  }
  MM_ASSIGN_OR_RETURN(TenantsConfig config, LoadTenantsFile(path_));
  Install(std::move(config));
  return OkStatus();
}

StatusOr<std::shared_ptr<const Tenant>> TenantRegistry::Authenticate(std::string_view authorization,
                                                                     Memo* memo) const {
  if (open_) return default_tenant_;
  if (authorization.empty()) return Unauthenticated("no API key");
  if (memo != nullptr) {
    const uint64_t generation = generation_.load(std::memory_order_acquire);
    if (memo->tenant != nullptr && memo->generation == generation &&
        memo->authorization == authorization) {
      return memo->tenant;
    }
    auto found = Authenticate(authorization);
    if (found.ok()) {
      memo->authorization.assign(authorization);
      memo->generation = generation;
      memo->tenant = *found;
    }
    return found;
  }
  const std::string_view key = BearerKey(authorization);
  if (key.empty()) return Unauthenticated("the Authorization value is not 'Bearer <API key>'");
  const KeyDigest digest = Sha256(key);
  const uint64_t generation = generation_.load(std::memory_order_acquire);
  if (cache.generation != generation) {
    cache.tenants.clear();
    cache.generation = generation;
  }
  if (auto it = cache.tenants.find(digest); it != cache.tenants.end()) return it->second;
  // First sight of this key on this thread: check it against every hash.
  const auto s = state();
  std::shared_ptr<const Tenant> found;
  for (const auto& tenant : s->tenants) {
    for (const ApiKeyHash& hash : tenant->api_keys) {
      if (ApiKeyMatches(hash, key)) found = tenant;
    }
  }
  if (!found) return Unauthenticated("the API key is not valid");
  if (cache.generation == s->generation) {
    if (cache.tenants.size() >= kCacheEntries) cache.tenants.clear();
    cache.tenants.emplace(digest, found);
  }
  return found;
}

}  // namespace mm
