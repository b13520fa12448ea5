#include "observability/model_stats.h"

#include <algorithm>
#include <chrono>

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
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
  success_.Add(total_ns);
  queue_.Add(queue_ns);
  input_.Add(input_ns);
  infer_.Add(infer_ns);
  output_.Add(output_ns);
  total_hist_.Observe(total_ns);
  queue_hist_.Observe(queue_ns);
  input_hist_.Observe(input_ns);
  infer_hist_.Observe(infer_ns);
  output_hist_.Observe(output_ns);
}

void ModelStats::RequestFailed(StatusCode code, int64_t total_ns) {
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
  fail_.Add(total_ns);
  const auto index = static_cast<size_t>(code);
  failures_[index < kStatusCodes ? index : static_cast<size_t>(StatusCode::kInternal)].fetch_add(
      1, std::memory_order_relaxed);
}

void ModelStats::ExecutionFinished(int64_t batch_size, int64_t input_ns, int64_t infer_ns,
                                   int64_t output_ns) {
  const int64_t size = std::clamp<int64_t>(batch_size, 1, max_batch_);
  BatchSlot& slot = Slot(size);
  slot.input.Add(input_ns);
  slot.infer.Add(infer_ns);
  slot.output.Add(output_ns);
  execution_count_.fetch_add(1, std::memory_order_relaxed);
  inference_count_.fetch_add(static_cast<uint64_t>(std::max<int64_t>(batch_size, 1)),
                             std::memory_order_relaxed);
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  last_inference_ms_.store(now_ms, std::memory_order_relaxed);
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
  s.last_inference_ms = last_inference_ms_.load(std::memory_order_relaxed);
  s.inference_count = inference_count_.load(std::memory_order_relaxed);
  s.execution_count = execution_count_.load(std::memory_order_relaxed);
  s.success = success_.Read();
  s.fail = fail_.Read();
  s.queue = queue_.Read();
  s.compute_input = input_.Read();
  s.compute_infer = infer_.Read();
  s.compute_output = output_.Read();
  s.cache_hit = cache_hit_.Read();
  s.cache_miss = cache_miss_.Read();
  for (size_t i = 0; i < kStatusCodes; ++i) {
    s.failures_by_code[i] = failures_[i].load(std::memory_order_relaxed);
  }
  s.total_histogram = total_hist_.Read();
  s.queue_histogram = queue_hist_.Read();
  s.input_histogram = input_hist_.Read();
  s.infer_histogram = infer_hist_.Read();
  s.output_histogram = output_hist_.Read();
  for (int64_t c = 0; c <= max_batch_ / kBatchChunk; ++c) {
    const BatchSlot* slots = batch_chunks_[c].load(std::memory_order_acquire);
    if (slots == nullptr) continue;
    for (int64_t i = 0; i < kBatchChunk; ++i) {
      const int64_t size = c * kBatchChunk + i;
      if (size > max_batch_) break;  // past the last chunk's end
      if (size < 1) continue;
      const BatchSlot& slot = slots[i];
      BatchStat b{size, slot.input.Read(), slot.infer.Read(), slot.output.Read()};
      if (b.compute_infer.count > 0) s.batches.push_back(b);
    }
  }
  s.in_flight = in_flight_.load(std::memory_order_relaxed);
  s.loads = loads_.load(std::memory_order_relaxed);
  s.load_failures = load_failures_.load(std::memory_order_relaxed);
  s.evictions = evictions_.load(std::memory_order_relaxed);
  s.on_demand_loads = on_demand_loads_.load(std::memory_order_relaxed);
  s.last_load_ns = last_load_ns_.load(std::memory_order_relaxed);
  return s;
}

void ModelStats::Absorb(const ModelStatsSnapshot& old) {
  last_inference_ms_.store(old.last_inference_ms, std::memory_order_relaxed);
  inference_count_.fetch_add(old.inference_count, std::memory_order_relaxed);
  execution_count_.fetch_add(old.execution_count, std::memory_order_relaxed);
  success_.Absorb(old.success);
  fail_.Absorb(old.fail);
  queue_.Absorb(old.queue);
  input_.Absorb(old.compute_input);
  infer_.Absorb(old.compute_infer);
  output_.Absorb(old.compute_output);
  cache_hit_.Absorb(old.cache_hit);
  cache_miss_.Absorb(old.cache_miss);
  for (size_t i = 0; i < kStatusCodes; ++i) {
    failures_[i].fetch_add(old.failures_by_code[i], std::memory_order_relaxed);
  }
  total_hist_.Add(old.total_histogram);
  queue_hist_.Add(old.queue_histogram);
  input_hist_.Add(old.input_histogram);
  infer_hist_.Add(old.infer_histogram);
  output_hist_.Add(old.output_histogram);
  for (const BatchStat& b : old.batches) {
    BatchSlot& slot = Slot(std::clamp<int64_t>(b.batch_size, 1, max_batch_));
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

std::shared_ptr<ModelStats> StatsRegistry::Find(std::string_view model, int64_t version,
                                                std::optional<std::string_view> repository) const {
  MutexLock lock(mu_);
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
  std::vector<std::shared_ptr<ModelStats>> out;
  out.reserve(stats_.size());
  for (const auto& [key, stats] : stats_) out.push_back(stats);
  return out;
}

}  // namespace mm
