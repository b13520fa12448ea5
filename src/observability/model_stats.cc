#include "observability/model_stats.h"

#include <time.h>

#include <algorithm>

namespace mm {

ModelStats::ModelStats(std::string model, int64_t version, std::string tenant,
                       int64_t max_batch_size, std::string repository)
    : model_(std::move(model)),
      repository_(std::move(repository)),
      version_(version),
      max_batch_(std::max<int64_t>(max_batch_size, 1)),
      tenant_(std::move(tenant)),
      batch_chunks_(
          new std::atomic<BatchSlot*>[static_cast<size_t>(max_batch_ / kBatchChunk) + 1]) {
  for (int64_t c = 0; c <= max_batch_ / kBatchChunk; ++c) batch_chunks_[c] = nullptr;
}

ModelStats::~ModelStats() {
  for (int64_t c = 0; c <= max_batch_ / kBatchChunk; ++c) delete[] batch_chunks_[c].load();
}

ModelStats::BatchSlot& ModelStats::Slot(int64_t size) {
  std::atomic<BatchSlot*>& chunk = batch_chunks_[static_cast<size_t>(size / kBatchChunk)];
  BatchSlot* slots = chunk.load(std::memory_order_acquire);
  if (slots == nullptr) {
    // The last chunk holds only the sizes up to max_batch_.
    const int64_t base = size / kBatchChunk * kBatchChunk;
    auto* made = new BatchSlot[static_cast<size_t>(std::min(kBatchChunk, max_batch_ + 1 - base))];
    if (chunk.compare_exchange_strong(slots, made, std::memory_order_acq_rel)) {
      slots = made;
    } else {
      delete[] made;  // another thread's won; `slots` is it
    }
  }
  return slots[size % kBatchChunk];
}

void ModelStats::RequestSucceeded(int64_t total_ns, int64_t queue_ns, int64_t input_ns,
                                  int64_t infer_ns, int64_t output_ns) {
  hot_.Add(kInFlight, ~uint64_t{0});  // -1
  AddDuration(kSuccess, total_ns);
  AddDuration(kQueue, queue_ns);
  AddDuration(kInput, input_ns);
  AddDuration(kInfer, infer_ns);
  AddDuration(kOutput, output_ns);
  Observe(kTotalHist, total_ns);
  Observe(kQueueHist, queue_ns);
  Observe(kInputHist, input_ns);
  Observe(kInferHist, infer_ns);
  Observe(kOutputHist, output_ns);
}

void ModelStats::RequestFailed(StatusCode code, int64_t total_ns) {
  hot_.Add(kInFlight, ~uint64_t{0});  // -1
  AddDuration(kFail, total_ns);
  const auto index = static_cast<size_t>(code);
  hot_.Add(kFailures + (index < kStatusCodes ? index : static_cast<size_t>(StatusCode::kInternal)),
           1);
}

void ModelStats::ExecutionFinished(int64_t batch_size, int64_t input_ns, int64_t infer_ns,
                                   int64_t output_ns) {
  const int64_t size = std::clamp<int64_t>(batch_size, 1, max_batch_);
  if (size == 1) {
    AddDuration(kOneRowInput, input_ns);
    AddDuration(kOneRowInfer, infer_ns);
    AddDuration(kOneRowOutput, output_ns);
  } else {
    BatchSlot& slot = Slot(size);
    slot.input.Add(input_ns);
    slot.infer.Add(infer_ns);
    slot.output.Add(output_ns);
  }
  hot_.Add(kExecutionCount, 1);
  hot_.Add(kInferenceCount, static_cast<uint64_t>(std::max<int64_t>(batch_size, 1)));
  // Milliseconds since the epoch from the coarse clock: its resolution (a
  // few ms) is finer than anyone reads this figure with, and a read costs a
  // fraction of the full clock's, once per execution.
  timespec now{};
  clock_gettime(CLOCK_REALTIME_COARSE, &now);
  const int64_t now_ms = int64_t{now.tv_sec} * 1000 + now.tv_nsec / 1'000'000;
  hot_.StoreMax(kLastInferenceMs, static_cast<uint64_t>(std::max<int64_t>(now_ms, 0)));
}

void ModelStats::AbsorbHistogram(size_t hist, const LatencyHistogram::Snapshot& h) {
  for (size_t i = 0; i < LatencyHistogram::kBuckets; ++i) hot_.Add(hist + i, h.counts[i]);
  hot_.Add(hist + LatencyHistogram::kBuckets, h.sum_ns);
}

LatencyHistogram::Snapshot ModelStats::ReadHistogram(size_t hist) const {
  LatencyHistogram::Snapshot s;
  for (size_t i = 0; i < LatencyHistogram::kBuckets; ++i) {
    s.counts[i] = hot_.Read(hist + i);
    s.count += s.counts[i];
  }
  s.sum_ns = hot_.Read(hist + LatencyHistogram::kBuckets);
  return s;
}

void ModelStats::LoadSucceeded(int64_t ns) {
  loads_.fetch_add(1, std::memory_order_relaxed);
  last_load_ns_.store(ns, std::memory_order_relaxed);
}

void ModelStats::SetTenant(std::string tenant) {
  MutexLock lock(tenant_mu_);
  tenant_ = std::move(tenant);
}

ModelStatsSnapshot ModelStats::Read() const {
  ModelStatsSnapshot s;
  s.model = model_;
  s.version = version_;
  s.repository = repository_;
  {
    MutexLock lock(tenant_mu_);
    s.tenant = tenant_;
  }
  s.last_inference_ms = static_cast<int64_t>(hot_.ReadMax(kLastInferenceMs));
  s.inference_count = hot_.Read(kInferenceCount);
  s.execution_count = hot_.Read(kExecutionCount);
  s.success = ReadDuration(kSuccess);
  s.fail = ReadDuration(kFail);
  s.queue = ReadDuration(kQueue);
  s.compute_input = ReadDuration(kInput);
  s.compute_infer = ReadDuration(kInfer);
  s.compute_output = ReadDuration(kOutput);
  s.cache_hit = ReadDuration(kCacheHit);
  s.cache_miss = ReadDuration(kCacheMiss);
  for (size_t i = 0; i < kStatusCodes; ++i) s.failures_by_code[i] = hot_.Read(kFailures + i);
  s.total_histogram = ReadHistogram(kTotalHist);
  s.queue_histogram = ReadHistogram(kQueueHist);
  s.input_histogram = ReadHistogram(kInputHist);
  s.infer_histogram = ReadHistogram(kInferHist);
  s.output_histogram = ReadHistogram(kOutputHist);
  if (BatchStat one{1, ReadDuration(kOneRowInput), ReadDuration(kOneRowInfer),
                    ReadDuration(kOneRowOutput)};
      one.compute_infer.count > 0) {
    s.batches.push_back(one);
  }
  for (int64_t c = 0; c <= max_batch_ / kBatchChunk; ++c) {
    const BatchSlot* slots = batch_chunks_[c].load(std::memory_order_acquire);
    if (slots == nullptr) continue;
    for (int64_t i = 0; i < kBatchChunk; ++i) {
      const int64_t size = c * kBatchChunk + i;
      if (size > max_batch_) break;  // past the last chunk's end
      if (size < 2) continue;        // one row: counted in hot_
      const BatchSlot& slot = slots[i];
      BatchStat b{size, slot.input.Read(), slot.infer.Read(), slot.output.Read()};
      if (b.compute_infer.count > 0) s.batches.push_back(b);
    }
  }
  s.in_flight = static_cast<int64_t>(hot_.Read(kInFlight));
  s.loads = loads_.load(std::memory_order_relaxed);
  s.load_failures = load_failures_.load(std::memory_order_relaxed);
  s.evictions = evictions_.load(std::memory_order_relaxed);
  s.on_demand_loads = on_demand_loads_.load(std::memory_order_relaxed);
  s.last_load_ns = last_load_ns_.load(std::memory_order_relaxed);
  return s;
}

size_t ModelStats::shard_bytes() { return ShardedCounters<kHotCounters>::kShardBytes; }

size_t ModelStats::CompactShards() {
  return hot_.Compact([](size_t i, uint64_t kept, uint64_t other) {
    return i == kLastInferenceMs ? std::max(kept, other) : kept + other;  // wraps, as it adds
  });
}

void ModelStats::Absorb(const ModelStatsSnapshot& old) {
  hot_.StoreMax(kLastInferenceMs,
                static_cast<uint64_t>(std::max<int64_t>(old.last_inference_ms, 0)));
  hot_.Add(kInferenceCount, old.inference_count);
  hot_.Add(kExecutionCount, old.execution_count);
  AbsorbDuration(kSuccess, old.success);
  AbsorbDuration(kFail, old.fail);
  AbsorbDuration(kQueue, old.queue);
  AbsorbDuration(kInput, old.compute_input);
  AbsorbDuration(kInfer, old.compute_infer);
  AbsorbDuration(kOutput, old.compute_output);
  AbsorbDuration(kCacheHit, old.cache_hit);
  AbsorbDuration(kCacheMiss, old.cache_miss);
  for (size_t i = 0; i < kStatusCodes; ++i) hot_.Add(kFailures + i, old.failures_by_code[i]);
  AbsorbHistogram(kTotalHist, old.total_histogram);
  AbsorbHistogram(kQueueHist, old.queue_histogram);
  AbsorbHistogram(kInputHist, old.input_histogram);
  AbsorbHistogram(kInferHist, old.infer_histogram);
  AbsorbHistogram(kOutputHist, old.output_histogram);
  for (const BatchStat& b : old.batches) {
    const int64_t size = std::clamp<int64_t>(b.batch_size, 1, max_batch_);
    if (size == 1) {
      AbsorbDuration(kOneRowInput, b.compute_input);
      AbsorbDuration(kOneRowInfer, b.compute_infer);
      AbsorbDuration(kOneRowOutput, b.compute_output);
      continue;
    }
    BatchSlot& slot = Slot(size);
    slot.input.Absorb(b.compute_input);
    slot.infer.Absorb(b.compute_infer);
    slot.output.Absorb(b.compute_output);
  }
  // (in_flight is not carried: the old copy's requests end on the old copy.)
  loads_.fetch_add(old.loads, std::memory_order_relaxed);
  load_failures_.fetch_add(old.load_failures, std::memory_order_relaxed);
  evictions_.fetch_add(old.evictions, std::memory_order_relaxed);
  on_demand_loads_.fetch_add(old.on_demand_loads, std::memory_order_relaxed);
  last_load_ns_.store(old.last_load_ns, std::memory_order_relaxed);
}

std::shared_ptr<ModelStats> StatsRegistry::For(std::string_view model, int64_t version,
                                               std::string_view tenant, int64_t max_batch_size,
                                               std::string_view repository) {
  MutexLock lock(mu_);
  CompactLetGoLocked();
  auto key = std::make_tuple(std::string(model), std::string(repository), version);
  auto it = stats_.find(key);
  if (it == stats_.end()) {
    auto stats = std::make_shared<ModelStats>(std::get<0>(key), version, std::string(tenant),
                                              max_batch_size, std::get<1>(key));
    stats_.emplace(std::move(key), stats);
    return stats;
  }
  if (max_batch_size > it->second->max_batch_size()) {
    auto bigger = std::make_shared<ModelStats>(std::get<0>(key), version, std::string(tenant),
                                               max_batch_size, std::get<1>(key));
    bigger->Absorb(it->second->Read());
    it->second = std::move(bigger);
  } else if (!tenant.empty()) {
    it->second->SetTenant(std::string(tenant));
  }
  return it->second;
}

bool StatsRegistry::CompactIfLetGo(const std::shared_ptr<ModelStats>& stats, size_t* freed) {
  // Only the registry's reference left, and none is handed out without mu_:
  // every other holder has let go, and its last adds happened-before its
  // release of the reference, which the fence makes ours.
  if (stats.use_count() != 1) return false;
  std::atomic_thread_fence(std::memory_order_acquire);
  const size_t bytes = stats->CompactShards();
  if (freed != nullptr) *freed = bytes;
  return true;
}

size_t StatsRegistry::Compact(std::string_view model, int64_t version,
                              std::string_view repository) {
  MutexLock lock(mu_);
  CompactLetGoLocked();
  auto it = stats_.find(Key(model, repository, version));
  size_t freed = 0;
  if (it != stats_.end() && !CompactIfLetGo(it->second, &freed) &&
      std::find(compact_later_.begin(), compact_later_.end(), it->first) == compact_later_.end()) {
    compact_later_.push_back(it->first);  // still held: later
  }
  return freed;
}

void StatsRegistry::CompactLetGoLocked() const {
  std::erase_if(compact_later_, [this](const Key& key) MM_NO_THREAD_SAFETY_ANALYSIS {
    auto it = stats_.find(key);
    return it == stats_.end() || CompactIfLetGo(it->second, nullptr);
  });
}

std::shared_ptr<ModelStats> StatsRegistry::Find(std::string_view model, int64_t version,
                                                std::optional<std::string_view> repository) const {
  MutexLock lock(mu_);
  CompactLetGoLocked();
  for (auto it = stats_.lower_bound(std::make_tuple(std::string(model), std::string(), int64_t{0}));
       it != stats_.end() && std::get<0>(it->first) == model; ++it) {
    if (std::get<2>(it->first) != version) continue;
    if (repository && std::get<1>(it->first) != *repository) continue;
    return it->second;
  }
  return nullptr;
}

std::vector<std::shared_ptr<ModelStats>> StatsRegistry::All() const {
  MutexLock lock(mu_);
  CompactLetGoLocked();
  std::vector<std::shared_ptr<ModelStats>> out;
  out.reserve(stats_.size());
  for (const auto& [key, stats] : stats_) out.push_back(stats);
  return out;
}

}  // namespace mm
