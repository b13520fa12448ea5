// Statistics of one model version: what Triton's statistics extension reports
// and what the Prometheus metrics are made of, kept in one place.
//
// Who records what:
//   - the service, once per request that reached the model: RequestStarted
//     when it does, then RequestSucceeded or RequestFailed when answered
//     (success, failure by status code, durations, in-flight);
//   - the scheduler, once per execution: ExecutionFinished (executions,
//     inferences, per batch size);
//   - the lifecycle: loads (and how long the last took), load failures,
//     evictions, loads a request started (on demand).
// Durations of successful requests only, as Triton: total (from when the
// transport began to read the request until it was answered), queue, and the
// execution's three stages (compute input, infer, output). A request served
// in a batch is charged the batch's whole stage times, as Triton does; the
// per-batch-size statistics count each execution once.
//
// Request path cost: relaxed atomic additions only; no lock, no allocation.
//
// Lifetime: a StatsRegistry keeps each (model, version)'s statistics for the
// registry's life, across unloads, evictions and reloads, so counters only
// grow (as Prometheus expects) and the lifecycle can count events of versions
// that are not loaded. Holders keep a shared_ptr.
//
// Cardinality: the registry has one entry per model version the lifecycle
// ever loaded or tried to load: versions of models in the repositories, never
// a name a client made up. (Documented for operators in docs/observability.md.)
//
// Thread-safety: every method may be called concurrently. A Read sees each
// counter exactly but different counters a moment apart.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "core/sharded_counters.h"
#include "core/status.h"
#include "core/thread_annotations.h"
#include "observability/drift.h"
#include "observability/histogram.h"

namespace mm {

struct DurationStat {
  uint64_t count = 0;
  uint64_t ns = 0;
};

// One batch size's executions and their stage times.
struct BatchStat {
  int64_t batch_size = 0;
  DurationStat compute_input;
  DurationStat compute_infer;
  DurationStat compute_output;
};

inline constexpr size_t kStatusCodes = static_cast<size_t>(StatusCode::kInternal) + 1;

struct ModelStatsSnapshot {
  std::string model;
  int64_t version = 0;
  std::string repository;         // PathKey of the repository it loads from ("": unknown)
  std::string tenant;             // the model's owner (fair-share tenant)
  int64_t last_inference_ms = 0;  // ms since the epoch; 0: never
  uint64_t inference_count = 0;   // rows inferred (a batch of 8 counts 8)
  uint64_t execution_count = 0;
  DurationStat success;  // total durations
  DurationStat fail;
  DurationStat queue;
  DurationStat compute_input;
  DurationStat compute_infer;
  DurationStat compute_output;
  DurationStat cache_hit;   // answered from the response cache: the lookups
  DurationStat cache_miss;  // not in it: the lookups and keeping the answers
  std::array<uint64_t, kStatusCodes> failures_by_code{};  // index: StatusCode
  LatencyHistogram::Snapshot total_histogram;
  LatencyHistogram::Snapshot queue_histogram;
  LatencyHistogram::Snapshot input_histogram;
  LatencyHistogram::Snapshot infer_histogram;
  LatencyHistogram::Snapshot output_histogram;
  std::vector<BatchStat> batches;  // sizes that ran, ascending
  int64_t in_flight = 0;
  // Lifecycle.
  uint64_t loads = 0;
  uint64_t load_failures = 0;
  uint64_t evictions = 0;
  uint64_t on_demand_loads = 0;
  int64_t last_load_ns = 0;  // how long the last successful load took
  // Filled by the service for a loaded copy with a drift baseline.
  std::vector<DriftMonitor::FeatureDrift> drift;
};

class ModelStats {
 public:
  // `max_batch_size`: the largest batch the model runs (0 or 1: one row);
  // executions of larger batches are counted under the largest size. The
  // per-size statistics are allocated in chunks of sizes as sizes run, so a
  // large max_batch_size costs one pointer per kBatchChunk sizes up front.
  ModelStats(std::string model, int64_t version, std::string tenant, int64_t max_batch_size,
             std::string repository = "");
  ~ModelStats();
  ModelStats(const ModelStats&) = delete;
  ModelStats& operator=(const ModelStats&) = delete;

  const std::string& model() const { return model_; }
  // Two repositories (two tenants' namespaces) may each hold a model of the
  // same name: their statistics are apart.
  const std::string& repository() const { return repository_; }
  int64_t version() const { return version_; }
  int64_t max_batch_size() const { return max_batch_; }

  // The service.
  void RequestStarted() { hot_.Add(kInFlight, 1); }
  // `total_ns`: from when the transport began to read it; `queue_ns`: time
  // in the queue; `input/infer/output_ns`: its execution's stages.
  void RequestSucceeded(int64_t total_ns, int64_t queue_ns, int64_t input_ns, int64_t infer_ns,
                        int64_t output_ns);
  void RequestFailed(StatusCode code, int64_t total_ns);
  // The response cache: a request answered from it (`ns`: the lookup), or
  // one that missed (`ns`: the lookup and keeping its answer).
  void CacheHit(int64_t ns) { AddDuration(kCacheHit, ns); }
  void CacheMiss(int64_t ns) { AddDuration(kCacheMiss, ns); }

  // The scheduler: one execution of `batch_size` rows finished.
  void ExecutionFinished(int64_t batch_size, int64_t input_ns, int64_t infer_ns, int64_t output_ns);

  // The lifecycle.
  void LoadSucceeded(int64_t ns);
  void LoadFailed() { load_failures_.fetch_add(1, std::memory_order_relaxed); }
  void Evicted() { evictions_.fetch_add(1, std::memory_order_relaxed); }
  void OnDemandLoad() { on_demand_loads_.fetch_add(1, std::memory_order_relaxed); }
  void SetTenant(std::string tenant);

  ModelStatsSnapshot Read() const;
  // Adds `old`'s counters to these (StatsRegistry::For replacing an entry).
  void Absorb(const ModelStatsSnapshot& old);
  // Folds the per-thread shards of the request counters into one, keeping
  // every value; returns the bytes freed. Only StatsRegistry::Compact calls
  // it, when nothing else holds these statistics.
  size_t CompactShards();
  // How many per-thread shards the request counters have (1 after
  // CompactShards; 0 before any request).
  size_t shards() const { return hot_.shards(); }
  // The bytes of one shard (1,216: 145 counters, in whole cache lines).
  static size_t shard_bytes();

 private:
  struct Duration {
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> ns{0};
    void Add(int64_t ns_value) {
      count.fetch_add(1, std::memory_order_relaxed);
      ns.fetch_add(static_cast<uint64_t>(ns_value < 0 ? 0 : ns_value), std::memory_order_relaxed);
    }
    void Absorb(const DurationStat& d) {
      count.fetch_add(d.count, std::memory_order_relaxed);
      ns.fetch_add(d.ns, std::memory_order_relaxed);
    }
    DurationStat Read() const {
      return {count.load(std::memory_order_relaxed), ns.load(std::memory_order_relaxed)};
    }
  };
  struct BatchSlot {
    Duration input, infer, output;
  };
  static constexpr int64_t kBatchChunk = 256;
  // The slot of batch size `size` (in [1, max_batch_]); its chunk is made on
  // first use (lock-free: a racing thread's chunk is dropped).
  BatchSlot& Slot(int64_t size);

  const std::string model_;
  const std::string repository_;
  const int64_t version_;
  const int64_t max_batch_;
  mutable Mutex tenant_mu_;
  std::string tenant_ MM_GUARDED_BY(tenant_mu_);  // changes only when a version reloads

  // What every request or execution adds to, sharded per thread
  // (core/sharded_counters.h) so that threads serving one model do not
  // contend for its counters' cache lines: indices below. Durations are a
  // (count, ns) pair at D and D + 1; a histogram's buckets start at H, its
  // sum of ns follows them. Executions of one row (every execution of a
  // model that does not batch) are counted here too; larger batch sizes,
  // whose executions serve several requests each, have a slot each below.
  enum : size_t {
    kInFlight,         // a gauge: +1 at the start, -1 at the end (wrapping)
    kLastInferenceMs,  // per shard the latest; read as the max
    kInferenceCount,
    kExecutionCount,
    kSuccess,  // durations, two counters each
    kFail = kSuccess + 2,
    kQueue = kFail + 2,
    kInput = kQueue + 2,
    kInfer = kInput + 2,
    kOutput = kInfer + 2,
    kCacheHit = kOutput + 2,
    kCacheMiss = kCacheHit + 2,
    kOneRowInput = kCacheMiss + 2,  // executions of one row
    kOneRowInfer = kOneRowInput + 2,
    kOneRowOutput = kOneRowInfer + 2,
    kFailures = kOneRowOutput + 2,           // kStatusCodes counters
    kHistograms = kFailures + kStatusCodes,  // five, kHistogramWords each
    kHistogramWords = LatencyHistogram::kBuckets + 1,
    kTotalHist = kHistograms,
    kQueueHist = kTotalHist + kHistogramWords,
    kInputHist = kQueueHist + kHistogramWords,
    kInferHist = kInputHist + kHistogramWords,
    kOutputHist = kInferHist + kHistogramWords,
    kHotCounters = kOutputHist + kHistogramWords,
  };
  void AddDuration(size_t at, int64_t ns) {
    hot_.Add(at, 1);
    hot_.Add(at + 1, static_cast<uint64_t>(ns < 0 ? 0 : ns));
  }
  void AbsorbDuration(size_t at, const DurationStat& d) {
    hot_.Add(at, d.count);
    hot_.Add(at + 1, d.ns);
  }
  DurationStat ReadDuration(size_t at) const { return {hot_.Read(at), hot_.Read(at + 1)}; }
  void Observe(size_t hist, int64_t ns) {
    if (ns < 0) ns = 0;
    hot_.Add(hist + LatencyHistogram::BucketOf(ns), 1);
    hot_.Add(hist + LatencyHistogram::kBuckets, static_cast<uint64_t>(ns));
  }
  void AbsorbHistogram(size_t hist, const LatencyHistogram::Snapshot& h);
  LatencyHistogram::Snapshot ReadHistogram(size_t hist) const;
  ShardedCounters<kHotCounters> hot_;
  // Chunk c holds sizes [c * kBatchChunk, (c + 1) * kBatchChunk); null until used.
  const std::unique_ptr<std::atomic<BatchSlot*>[]> batch_chunks_;

  std::atomic<uint64_t> loads_{0};
  std::atomic<uint64_t> load_failures_{0};
  std::atomic<uint64_t> evictions_{0};
  std::atomic<uint64_t> on_demand_loads_{0};
  std::atomic<int64_t> last_load_ns_{0};
};

// Every model version's statistics, for the server's life.
class StatsRegistry {
 public:
  // The statistics of (model, version) of `repository` (PathKey; models of
  // one name in two repositories are apart), made on first use. When a reload
  // raises max_batch_size past what the existing entry holds, the entry is
  // replaced by a larger one that starts from the old one's counters (what
  // the old copy records while it drains is lost). `tenant` updates the
  // owner shown.
  std::shared_ptr<ModelStats> For(std::string_view model, int64_t version, std::string_view tenant,
                                  int64_t max_batch_size, std::string_view repository = "");
  // A version that unloaded keeps its statistics, but needs its per-thread
  // shards no more: this folds them into one (about 1.2 KB, against up to 16
  // times that once it served from many threads) when the registry holds the
  // only reference. While anything else still holds it (an execution thread
  // letting go of the drained copy's scheduler, a statistics read under way,
  // a new load of the same version) it may still be added to or read: then
  // it is remembered, and folded by the first For, Find, All or Compact
  // that finds it let go. Returns the bytes freed now.
  // Whoever records into an entry through a raw pointer must hold a
  // reference meanwhile (requests: the servable's, or its scheduler's).
  size_t Compact(std::string_view model, int64_t version, std::string_view repository);
  // Existing statistics of (model, version) in `repository` (any repository:
  // the first), or null; no entry is made.
  std::shared_ptr<ModelStats> Find(std::string_view model, int64_t version,
                                   std::optional<std::string_view> repository = {}) const;

  // Every entry, by model, then repository, then version.
  std::vector<std::shared_ptr<ModelStats>> All() const;

 private:
  using Key = std::tuple<std::string, std::string, int64_t>;
  // Folds the entries Compact left for later that nothing holds any more.
  void CompactLetGoLocked() const MM_REQUIRES(mu_);
  // Folds `stats` (the bytes freed in `freed`, when not null) if the
  // registry's is its only reference; false while something else holds it.
  static bool CompactIfLetGo(const std::shared_ptr<ModelStats>& stats, size_t* freed);

  mutable Mutex mu_;
  // Entries Compact found held (few: a version unloads while read, or
  // while an execution thread lets go of it).
  mutable std::vector<Key> compact_later_ MM_GUARDED_BY(mu_);
  // By model, repository, version.
  std::map<std::tuple<std::string, std::string, int64_t>, std::shared_ptr<ModelStats>, std::less<>>
      stats_ MM_GUARDED_BY(mu_);
};

}  // namespace mm
