// Usage accounting: what each tenant used of each model, for charging and
// for the operator (GET /v2/usage).
//
// For every inference request a tenant sends, one record lands in exactly one
// place:
//   - the model it reached (ModelUsage of that tenant and model name, all
//     versions together): counted as a request, and as a failure when it was
//     answered with an error; a success adds its queue and compute time and
//     its input bytes, and its output bytes once the transport has delivered
//     the response (a response never written to its client is not billed);
//   - or, when it never reached a model (a quota refused it, the model is
//     unknown or hidden from the tenant, an on-demand load failed), the
//     tenant's `refused` count.
// So per tenant, the requests of its models plus `refused` is every request
// it sent. Compute time is the execution's wall time; a batch's time is
// shared among its requests by their rows (so the shares add up to the
// batch's time). Bytes are tensor payload bytes (shared-memory tensors
// included), not transport framing.
//
// Cardinality: a model name appears only once a request reached that model
// (it exists and the tenant sees it), so the entries are bounded by tenants
// times models in the repositories; a name made up by a client never gets one.
//
// Lifetime: the ledger keeps every tenant's and model's counters for its own
// life, across reloads of the tenants file (a tenant removed by a reload
// keeps its history), so the pointers it hands out stay valid while it lives.
//
// Thread-safety: every method may be called concurrently. Counters are
// relaxed atomics: a reader sees each figure exactly, but two figures of one
// record may be read a moment apart.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/sharded_counters.h"
#include "core/shared_mutex.h"
#include "core/thread_annotations.h"

namespace mm {

struct UsageFigures {
  uint64_t requests = 0;
  uint64_t failures = 0;
  uint64_t queue_ns = 0;
  uint64_t compute_ns = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
};

// One tenant's use of one model.
class ModelUsage {
 public:
  explicit ModelUsage(std::string model) : model_(std::move(model)) {}
  const std::string& model() const { return model_; }

  void RecordSuccess(uint64_t queue_ns, uint64_t compute_ns, uint64_t bytes_in) {
    counters_.Add(kRequests, 1);
    counters_.Add(kQueueNs, queue_ns);
    counters_.Add(kComputeNs, compute_ns);
    counters_.Add(kBytesIn, bytes_in);
  }
  // A successful response's output bytes, once its transport delivered it.
  void RecordDelivered(uint64_t bytes_out) { counters_.Add(kBytesOut, bytes_out); }
  void RecordFailure() {
    counters_.Add(kRequests, 1);
    counters_.Add(kFailures, 1);
  }
  UsageFigures Read() const;

 private:
  const std::string model_;
  // Sharded per thread (core/sharded_counters.h): every request of a tenant
  // and model adds here, from whichever thread answers it.
  enum : size_t { kRequests, kFailures, kQueueNs, kComputeNs, kBytesIn, kBytesOut, kCounters };
  ShardedCounters<kCounters> counters_;
};

// One tenant's usage: per model, and the requests that reached none.
class TenantUsage {
 public:
  explicit TenantUsage(std::string tenant_id) : tenant_id_(std::move(tenant_id)) {}

  const std::string& tenant_id() const { return tenant_id_; }

  // The counters for `model`, made on first use; valid for the ledger's life.
  // Takes a shared lock (an exclusive one the first time a model is seen).
  ModelUsage* Model(std::string_view model);
  // The same, for the request path: `key` is a stable address standing for
  // the model (its servable's), used only to pick a slot of a small memo of
  // the last models found, each checked by name; no lock when the memo has
  // it. A key reused by another model, or two models sharing a slot, cost a
  // Model() call, never a wrong answer.
  ModelUsage* Model(std::string_view model, const void* key);

  void RecordRefused() { refused_.fetch_add(1, std::memory_order_relaxed); }
  uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }

  // Every model this tenant reached, by name.
  std::vector<std::pair<std::string, UsageFigures>> Models() const;

 private:
  const std::string tenant_id_;
  std::atomic<uint64_t> refused_{0};
  static constexpr size_t kMemoSlots = 16;
  std::array<std::atomic<ModelUsage*>, kMemoSlots> memo_{};  // null: empty
  mutable SharedMutex mu_;
  std::map<std::string, std::unique_ptr<ModelUsage>, std::less<>> models_ MM_GUARDED_BY(mu_);
};

class UsageLedger {
 public:
  // The usage of tenant `id`, made on first use; valid for the ledger's life.
  TenantUsage* Tenant(std::string_view id);

  // Every tenant that has a record, by id.
  std::vector<const TenantUsage*> Tenants() const;

 private:
  mutable Mutex mu_;
  std::map<std::string, std::unique_ptr<TenantUsage>, std::less<>> tenants_ MM_GUARDED_BY(mu_);
};

}  // namespace mm
