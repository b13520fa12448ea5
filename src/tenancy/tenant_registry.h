// TenantRegistry: who is asking. It holds the tenants file in force
// (tenants.h), authenticates a request by the API key it presents, and swaps
// in a re-read file atomically (SIGHUP), keeping the old one when the new one
// is bad.
//
// Without a tenants file the server runs open: every request, with or
// without a key, is the one default tenant ("default", role admin, every
// repository), and the server says so in its log at start.
//
// Authentication. Transports pass the Authorization value as received (HTTP
// header, gRPC metadata "authorization"): "Bearer KEY". A key is checked
// against every stored hash (salted SHA-256, constant-time comparison) the
// first time a thread sees it; after that the thread finds it in a small
// cache of its own, keyed by the key's unsalted SHA-256 (no key is kept in
// the clear, and no lock is taken per request). The caches empty when a
// reload changes the file.
//
// Thread-safety: every method may be called concurrently. A Tenant returned
// stays valid while its shared_ptr is held, across reloads.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"
#include "core/thread_annotations.h"
#include "tenancy/quota.h"
#include "tenancy/tenants.h"
#include "tenancy/usage.h"

namespace mm {

inline constexpr std::string_view kDefaultTenantId = "default";

class TenantRegistry {
 public:
  // Open mode: no file, one default tenant.
  static std::unique_ptr<TenantRegistry> Open();
  // Reads the tenants file; INVALID_ARGUMENT naming the file and the fault.
  static StatusOr<std::unique_ptr<TenantRegistry>> FromFile(std::string path);
  // From a parsed config (tests).
  static std::unique_ptr<TenantRegistry> FromConfig(TenantsConfig config);

  bool open() const { return open_; }

  // A connection's memory of the last Authorization value it presented and
  // whom it named. Owned by the connection, used by one thread at a time.
  struct Memo {
    std::string authorization;
    uint64_t generation = 0;  // of the tenants in force when it was made
    std::shared_ptr<const Tenant> tenant;
  };

  // The tenant whose key `authorization` ("Bearer KEY") carries.
  // UNAUTHENTICATED, saying what was expected, for a missing or malformed
  // value or a key no tenant has. In open mode always the default tenant.
  // With a `memo`, a connection that presents the same value as last time
  // (the usual case: one client per connection) is answered from it, without
  // hashing the key; the comparison is with what this same client sent.
  StatusOr<std::shared_ptr<const Tenant>> Authenticate(std::string_view authorization,
                                                       Memo* memo = nullptr) const;

  // Re-reads the file (not in open mode: FAILED_PRECONDITION). On a bad file
  // the tenants in force stay, and the error says why.
  Status Reload();

  // The tenants in force now.
  std::shared_ptr<const TenantsConfig> config() const;

  // The tenant whose repositories include the repository `repository_key`
  // (ModelRepository::key(), which is RepositoryKey of its
  // --model-repository value); null when none does (open mode too).
  std::shared_ptr<const Tenant> OwnerOf(std::string_view repository_key) const;

  // What every tenant used, including tenants a reload has removed.
  const UsageLedger& usage() const { return usage_; }

 private:
  struct State {
    TenantsConfig config;
    std::vector<std::shared_ptr<const Tenant>> tenants;  // one per config.tenants entry
    uint64_t generation = 0;
  };
  TenantRegistry(bool open, std::string path) : open_(open), path_(std::move(path)) {}
  void Install(TenantsConfig config) MM_EXCLUDES(mu_);
  std::shared_ptr<const State> state() const MM_EXCLUDES(mu_);

  const bool open_;
  const std::string path_;
  std::shared_ptr<const Tenant> default_tenant_;  // open mode
  UsageLedger usage_;

  mutable Mutex mu_;
  // The pointer is guarded; the State it points to is immutable.
  std::shared_ptr<const State> state_ MM_GUARDED_BY(mu_);
  // Each tenant id's quota state, kept across reloads.
  std::map<std::string, std::shared_ptr<TenantQuota>> quotas_ MM_GUARDED_BY(mu_);
  std::atomic<uint64_t> generation_{0};
};

}  // namespace mm
