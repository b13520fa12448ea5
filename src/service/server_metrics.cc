#include "service/server_metrics.h"

#include <map>
#include <set>
#include <tuple>
#include <utility>

#include "scheduler/model_queue.h"

namespace mm {

namespace {

using prometheus::MetricType;

MetricLabels ModelLabels(const std::string& model, int64_t version, const std::string& tenant) {
  return {{"model", model}, {"version", std::to_string(version)}, {"tenant", tenant}};
}

MetricLabels With(MetricLabels labels, std::string name, std::string value) {
  labels.push_back({std::move(name), std::move(value)});
  return labels;
}

// The most requests a version's queue holds: its priority levels'
// max_queue_size summed; 0 when a level is unbounded (then so is the queue).
uint64_t QueueCapacity(const inference::ModelConfig& config) {
  const QueueConfig q = QueueConfig::FromModelConfig(config);
  uint64_t capacity = 0;
  for (const auto& [level, policy] : q.level_policies) {
    if (policy.max_queue_size == 0) return 0;
    capacity += policy.max_queue_size;
  }
  const uint64_t default_levels = q.levels - q.level_policies.size();
  if (default_levels > 0) {
    if (q.default_policy.max_queue_size == 0) return 0;
    capacity += default_levels * q.default_policy.max_queue_size;
  }
  return capacity;
}

// Batch sizes: powers of two up to 1024.
const std::vector<double>& BatchBounds() {
  static const std::vector<double> bounds = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
  return bounds;
}

void CollectModels(const InferenceService& service, MetricFamilies& out) {
  ModelManager& models = service.models();
  const auto all = models.stats().All();
  std::vector<ModelStatsSnapshot> stats;
  stats.reserve(all.size());
  for (const auto& s : all) stats.push_back(s->Read());

  auto requests = Family("mmserve_inference_requests_total",
                         "Inference requests that reached the model, by outcome (code OK: "
                         "success, else the failure's status code)",
                         MetricType::Counter);
  auto total = Family("mmserve_inference_request_duration_seconds",
                      "Duration of successful requests, from when the transport began to "
                      "read them until they were answered",
                      MetricType::Histogram);
  auto queue =
      Family("mmserve_inference_queue_duration_seconds",
             "Time successful requests waited in the model's queue", MetricType::Histogram);
  auto input = Family("mmserve_inference_compute_input_duration_seconds",
                      "Time the executions of successful requests spent preparing inputs",
                      MetricType::Histogram);
  auto infer = Family("mmserve_inference_compute_infer_duration_seconds",
                      "Time the executions of successful requests spent running the model",
                      MetricType::Histogram);
  auto output = Family("mmserve_inference_compute_output_duration_seconds",
                       "Time the executions of successful requests spent taking outputs",
                       MetricType::Histogram);
  auto batch =
      Family("mmserve_inference_batch_size", "Rows per model execution", MetricType::Histogram);
  auto executions =
      Family("mmserve_inference_executions_total", "Model executions", MetricType::Counter);
  auto rows = Family("mmserve_inference_rows_total", "Rows inferred (a batch of 8 rows counts 8)",
                     MetricType::Counter);
  auto in_flight =
      Family("mmserve_inference_in_flight",
             "Requests that reached the model and are not answered yet", MetricType::Gauge);
  auto loads =
      Family("mmserve_model_loads_total", "Successful loads of the version", MetricType::Counter);
  auto load_failures = Family("mmserve_model_load_failures_total", "Failed loads of the version",
                              MetricType::Counter);
  auto load_time = Family("mmserve_model_load_duration_seconds",
                          "How long the version's last successful load took", MetricType::Gauge);
  auto evictions = Family("mmserve_model_evictions_total",
                          "Times the version was evicted to make room", MetricType::Counter);
  auto on_demand = Family("mmserve_model_on_demand_loads_total",
                          "Loads of the version that a request started", MetricType::Counter);
  auto cache_hits = Family("mmserve_cache_hits_total", "Requests answered from the response cache",
                           MetricType::Counter);
  auto cache_misses = Family("mmserve_cache_misses_total",
                             "Requests of a cached model that the response cache could not answer",
                             MetricType::Counter);

  // By repository, model and version: two tenants' models of one name are apart.
  std::map<std::tuple<std::string, std::string, int64_t>, std::string> tenant_of;
  for (const ModelStatsSnapshot& s : stats) {
    const MetricLabels labels = ModelLabels(s.model, s.version, s.tenant);
    tenant_of[{s.repository, s.model, s.version}] = s.tenant;
    AddValue(requests, With(labels, "code", "OK"), static_cast<double>(s.success.count));
    for (size_t code = 0; code < s.failures_by_code.size(); ++code) {
      if (s.failures_by_code[code] == 0) continue;
      AddValue(requests,
               With(labels, "code", std::string(StatusCodeName(static_cast<StatusCode>(code)))),
               static_cast<double>(s.failures_by_code[code]));
    }
    AddHistogram(total, labels, s.total_histogram);
    AddHistogram(queue, labels, s.queue_histogram);
    AddHistogram(input, labels, s.input_histogram);
    AddHistogram(infer, labels, s.infer_histogram);
    AddHistogram(output, labels, s.output_histogram);
    std::vector<uint64_t> counts(BatchBounds().size() + 1, 0);
    double sum = 0;
    for (const BatchStat& b : s.batches) {
      size_t i = 0;
      while (i < BatchBounds().size() && static_cast<double>(b.batch_size) > BatchBounds()[i]) ++i;
      counts[i] += b.compute_infer.count;
      sum += static_cast<double>(b.batch_size) * static_cast<double>(b.compute_infer.count);
    }
    AddHistogram(batch, labels, BatchBounds(), counts, sum);
    AddValue(executions, labels, static_cast<double>(s.execution_count));
    AddValue(rows, labels, static_cast<double>(s.inference_count));
    AddValue(in_flight, labels, static_cast<double>(s.in_flight));
    AddValue(loads, labels, static_cast<double>(s.loads));
    AddValue(load_failures, labels, static_cast<double>(s.load_failures));
    AddValue(load_time, labels, static_cast<double>(s.last_load_ns) / 1e9);
    AddValue(evictions, labels, static_cast<double>(s.evictions));
    AddValue(on_demand, labels, static_cast<double>(s.on_demand_loads));
    if (s.cache_hit.count + s.cache_miss.count > 0) {
      AddValue(cache_hits, labels, static_cast<double>(s.cache_hit.count));
      AddValue(cache_misses, labels, static_cast<double>(s.cache_miss.count));
    }
  }

  // From the index (no rescan): state, memory, queue, worker restarts.
  auto state =
      Family("mmserve_model_state", "1 for the version's current lifecycle state, 0 for the others",
             MetricType::Gauge);
  auto memory = Family("mmserve_model_memory_bytes",
                       "Memory the version holds while loaded (its footprint: measured, "
                       "declared, or its worker processes' resident memory)",
                       MetricType::Gauge);
  auto queued = Family("mmserve_inference_queue_depth", "Requests waiting in the version's queue",
                       MetricType::Gauge);
  auto capacity = Family("mmserve_inference_queue_capacity",
                         "The most requests the version's queue holds (its priority levels' "
                         "max_queue_size summed); absent for an unbounded queue",
                         MetricType::Gauge);
  auto executing = Family("mmserve_inference_executing", "Requests of the version executing now",
                          MetricType::Gauge);
  auto restarts =
      Family("mmserve_model_worker_restarts_total",
             "Times the version's worker processes failed and were restarted", MetricType::Counter);
  auto psi = Family("mmserve_drift_psi",
                    "Population stability index of an input feature's live values (a "
                    "sliding window of sampled requests) against the model's baseline",
                    MetricType::Gauge);
  auto alerting =
      Family("mmserve_drift_alert", "1 while an input feature's PSI is above the alert threshold",
             MetricType::Gauge);
  auto window = Family("mmserve_drift_window_rows", "Rows of an input in the drift window",
                       MetricType::Gauge);
  static constexpr ModelState kStates[] = {ModelState::kUnavailable, ModelState::kLoading,
                                           ModelState::kReady, ModelState::kUnloading};
  // One series per label set: models of one name in two repositories of one
  // owner (a name conflict, which loads neither) are listed once.
  std::set<std::tuple<std::string, int64_t, std::string>> listed;
  for (const ModelVersionStatus& v : models.Index(/*rescan=*/false)) {
    auto t = tenant_of.find({v.repository, v.name, v.version});
    const std::string tenant = t != tenant_of.end() ? t->second : v.owner;
    if (!listed.emplace(v.name, v.version, tenant).second) continue;
    if (v.version <= 0) {
      // A model without a loadable version (a bad config, no version
      // folder): UNAVAILABLE, with version "" (the index says why).
      AddValue(state,
               {{"model", v.name}, {"version", ""}, {"tenant", tenant}, {"state", "UNAVAILABLE"}},
               1);
      continue;
    }
    const MetricLabels labels = ModelLabels(v.name, v.version, tenant);
    for (ModelState st : kStates) {
      AddValue(state, With(labels, "state", std::string(ModelStateName(st))),
               v.state == st ? 1 : 0);
    }
    AddValue(memory, labels, static_cast<double>(v.footprint_bytes));
    AddValue(queued, labels, static_cast<double>(v.queued));
    AddValue(executing, labels, static_cast<double>(v.executing));
    AddValue(restarts, labels, v.restarts);
    if (v.state != ModelState::kReady) continue;
    auto servable = models.Get(NameScope::One(v.repository), v.name, std::to_string(v.version));
    if (!servable.ok()) continue;
    if (const uint64_t bound = QueueCapacity((*servable)->config); bound > 0) {
      AddValue(capacity, labels, static_cast<double>(bound));
    }
    if ((*servable)->drift == nullptr) continue;
    InferenceService::CheckDrift(**servable);
    std::string last_input;
    for (const DriftMonitor::FeatureDrift& f : (*servable)->drift->Read()) {
      MetricLabels feature = With(labels, "input", f.input);
      if (f.input != last_input) {
        AddValue(window, feature, static_cast<double>(f.rows));
        last_input = f.input;
      }
      feature.push_back({"feature", std::to_string(f.feature)});
      if (f.ready) AddValue(psi, feature, f.psi);
      AddValue(alerting, std::move(feature), f.alerting ? 1 : 0);
    }
  }

  for (auto* f :
       {&requests,   &total,    &queue,     &input,      &infer,         &output,    &batch,
        &executions, &rows,     &in_flight, &loads,      &load_failures, &load_time, &evictions,
        &on_demand,  &state,    &memory,    &queued,     &capacity,      &executing, &restarts,
        &psi,        &alerting, &window,    &cache_hits, &cache_misses}) {
    out.push_back(std::move(*f));
  }

  const ModelManager::MemoryUse use = models.memory();
  AddValue(
      AddFamily(out, "mmserve_memory_budget_bytes",
                "The model memory budget (--model-memory-budget; 0: unlimited)", MetricType::Gauge),
      {}, static_cast<double>(use.budget));
  AddValue(AddFamily(out, "mmserve_memory_loaded_bytes",
                     "Footprints of every model version held (loading and draining included)",
                     MetricType::Gauge),
           {}, static_cast<double>(use.loaded));
  AddValue(AddFamily(out, "mmserve_memory_pinned_bytes", "Footprints of pinned model versions",
                     MetricType::Gauge),
           {}, static_cast<double>(use.pinned));

  if (const ResponseCache* cache = service.response_cache(); cache != nullptr) {
    const ResponseCache::Figures f = cache->Read();
    AddValue(AddFamily(out, "mmserve_cache_entries", "Responses held by the response cache",
                       MetricType::Gauge),
             {}, static_cast<double>(f.entries));
    AddValue(AddFamily(out, "mmserve_cache_bytes",
                       "Bytes the response cache holds (keys, outputs and each entry's overhead)",
                       MetricType::Gauge),
             {}, static_cast<double>(f.bytes));
    AddValue(AddFamily(out, "mmserve_cache_capacity_bytes",
                       "The response cache's size (--cache-config local,size)", MetricType::Gauge),
             {}, static_cast<double>(f.capacity));
    AddValue(AddFamily(out, "mmserve_cache_evictions_total",
                       "Responses the cache dropped (least recently used) to make room",
                       MetricType::Counter),
             {}, static_cast<double>(f.evictions));
  }
}

void CollectUsage(const InferenceService& service, MetricFamilies& out) {
  auto requests =
      Family("mmserve_tenant_requests_total",
             "Requests a tenant sent that reached the model (usage)", MetricType::Counter);
  auto failures =
      Family("mmserve_tenant_failures_total",
             "Requests of a tenant that reached the model and failed", MetricType::Counter);
  auto queue = Family("mmserve_tenant_queue_seconds_total",
                      "Queue time of a tenant's successful requests", MetricType::Counter);
  auto compute = Family("mmserve_tenant_compute_seconds_total",
                        "Compute time charged to a tenant (a batch's time shared by rows)",
                        MetricType::Counter);
  auto bytes_in =
      Family("mmserve_tenant_input_bytes_total",
             "Input tensor bytes of a tenant's successful requests", MetricType::Counter);
  auto bytes_out =
      Family("mmserve_tenant_output_bytes_total",
             "Output tensor bytes of a tenant's successful requests", MetricType::Counter);
  auto refused = Family("mmserve_tenant_refused_total",
                        "Requests of a tenant that reached no model (quota, unknown or "
                        "hidden model, failed on-demand load)",
                        MetricType::Counter);
  for (const TenantUsage* tenant : service.tenants().usage().Tenants()) {
    AddValue(refused, {{"tenant", tenant->tenant_id()}}, static_cast<double>(tenant->refused()));
    for (const auto& [model, f] : tenant->Models()) {
      const MetricLabels labels = {{"tenant", tenant->tenant_id()}, {"model", model}};
      AddValue(requests, labels, static_cast<double>(f.requests));
      AddValue(failures, labels, static_cast<double>(f.failures));
      AddValue(queue, labels, static_cast<double>(f.queue_ns) / 1e9);
      AddValue(compute, labels, static_cast<double>(f.compute_ns) / 1e9);
      AddValue(bytes_in, labels, static_cast<double>(f.bytes_in));
      AddValue(bytes_out, labels, static_cast<double>(f.bytes_out));
    }
  }
  for (auto* f : {&requests, &failures, &queue, &compute, &bytes_in, &bytes_out, &refused}) {
    out.push_back(std::move(*f));
  }
}

void CollectSlots(const ExecutionSlots& slots, MetricFamilies& out) {
  AddValue(
      AddFamily(out, "mmserve_execution_slots",
                "Execution slots: model executions at once (--execution-slots)", MetricType::Gauge),
      {}, static_cast<double>(slots.size()));
  AddValue(AddFamily(out, "mmserve_execution_slots_busy",
                     "Execution slots running a model execution now", MetricType::Gauge),
           {}, static_cast<double>(slots.busy()));
  AddValue(AddFamily(out, "mmserve_execution_slots_waiting",
                     "Executions waiting for a free slot now", MetricType::Gauge),
           {}, static_cast<double>(slots.waiting()));
}

}  // namespace

MetricsCollector ServerMetricsCollector(const InferenceService* service,
                                        const ExecutionSlots* slots) {
  return [service, slots](MetricFamilies& out) {
    CollectModels(*service, out);
    CollectUsage(*service, out);
    if (slots != nullptr) CollectSlots(*slots, out);
  };
}

}  // namespace mm
