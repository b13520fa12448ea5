#include "console/console_overview.h"

#include <charconv>
#include <chrono>
#include <cmath>
#include <map>
#include <set>
#include <tuple>

#include "core/json_string.h"
#include "observability/histogram.h"

namespace mm {

namespace {

// When the process started, near enough: this file's statics initialize
// before main.
const int64_t kStartedNs = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();

// A small writer: the document is built once per poll, so clarity wins over
// the request path's reuse of buffers. Each Key() is followed by one value.
class Json {
 public:
  explicit Json(std::string& out) : out_(out) {}
  Json& Open(char c) {
    Comma();
    out_ += c;
    first_ = true;
    return *this;
  }
  Json& Close(char c) {
    out_ += c;
    first_ = false;
    return *this;
  }
  Json& Key(std::string_view key) {
    Comma();
    AppendJsonString(out_, key);
    out_ += ':';
    first_ = true;  // the value follows without a comma
    return *this;
  }
  Json& Str(std::string_view s) {
    Comma();
    AppendJsonString(out_, s);
    return *this;
  }
  Json& Int(int64_t v) { return Number(v); }
  Json& Uint(uint64_t v) { return Number(v); }
  Json& Bool(bool v) {
    Comma();
    out_ += v ? "true" : "false";
    return *this;
  }
  Json& Double(double v) {
    Comma();
    if (!std::isfinite(v)) {
      out_ += "null";
      return *this;
    }
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
    out_.append(buf, end);
    return *this;
  }
  Json& Null() {
    Comma();
    out_ += "null";
    return *this;
  }

 private:
  template <class T>
  Json& Number(T v) {
    Comma();
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
    out_.append(buf, end);
    return *this;
  }
  void Comma() {
    if (!first_) out_ += ',';
    first_ = false;
  }
  std::string& out_;
  bool first_ = true;
};

void Histogram(Json& j, std::string_view key, const LatencyHistogram::Snapshot& h) {
  j.Key(key).Open('{').Key("counts").Open('[');
  for (uint64_t c : h.counts) j.Uint(c);
  j.Close(']').Key("sum_s").Double(static_cast<double>(h.sum_ns) / 1e9).Close('}');
}

void Stats(Json& j, const ModelStatsSnapshot& s) {
  uint64_t failures = 0;
  for (uint64_t f : s.failures_by_code) failures += f;
  j.Key("stats").Open('{');
  j.Key("success").Uint(s.success.count);
  j.Key("failures").Uint(failures);
  j.Key("in_flight").Int(s.in_flight);
  j.Key("executions").Uint(s.execution_count);
  j.Key("rows").Uint(s.inference_count);
  j.Key("loads").Uint(s.loads);
  j.Key("load_failures").Uint(s.load_failures);
  j.Key("evictions").Uint(s.evictions);
  j.Key("last_load_s").Double(static_cast<double>(s.last_load_ns) / 1e9);
  Histogram(j, "latency", s.total_histogram);
  Histogram(j, "queue", s.queue_histogram);
  Histogram(j, "compute", s.infer_histogram);
  j.Close('}');
}

uint32_t InstanceCount(const inference::ModelConfig& config) {
  uint32_t count = 0;
  for (const auto& group : config.instance_group()) count += std::max(group.count(), 1);
  return std::max<uint32_t>(count, 1);
}

void Models(Json& j, const InferenceService& service) {
  ModelManager& models = service.models();
  // Statistics by repository, model and version (two tenants' models of one
  // name are apart).
  std::map<std::tuple<std::string, std::string, int64_t>, ModelStatsSnapshot> stats;
  for (const auto& s : models.stats().All()) {
    ModelStatsSnapshot snapshot = s->Read();
    auto key = std::make_tuple(snapshot.repository, snapshot.model, snapshot.version);
    stats.emplace(std::move(key), std::move(snapshot));
  }
  j.Key("models").Open('[');
  for (const ModelVersionStatus& v : models.Index(/*rescan=*/false)) {
    j.Open('{');
    j.Key("name").Str(v.name);
    j.Key("version").Int(v.version);
    j.Key("state").Str(ModelStateName(v.state));
    j.Key("reason").Str(v.reason);
    auto found = stats.find({v.repository, v.name, v.version});
    j.Key("tenant").Str(v.owner);
    j.Key("repository").Str(v.repository);
    // What only a READY copy tells: its config and drift.
    ModelHandle servable;
    if (v.state == ModelState::kReady && v.version > 0) {
      auto got = models.Get(NameScope::One(v.repository), v.name, std::to_string(v.version));
      if (got.ok()) servable = std::move(*got);
    }
    if (servable != nullptr) {
      j.Key("platform")
          .Str(servable->config.platform().empty() ? servable->config.backend()
                                                   : servable->config.platform());
      j.Key("isolation").Str(servable->in_worker ? "process" : "in-process");
      j.Key("instances").Uint(InstanceCount(servable->config));
      j.Key("pinned").Bool(servable->pinned);
    } else {
      j.Key("platform").Str("").Key("isolation").Str("").Key("instances").Uint(0);
      j.Key("pinned").Bool(false);
    }
    j.Key("memory_bytes").Uint(v.footprint_bytes);
    j.Key("queued").Uint(v.queued);
    j.Key("executing").Uint(v.executing);
    j.Key("restarts").Int(v.restarts);
    j.Key("last_failure").Str(v.last_failure);
    if (found != stats.end()) Stats(j, found->second);
    j.Key("drift").Open('[');
    if (servable != nullptr && servable->drift != nullptr) {
      InferenceService::CheckDrift(*servable);
      for (const DriftMonitor::FeatureDrift& f : servable->drift->Read()) {
        j.Open('{').Key("input").Str(f.input).Key("feature").Int(f.feature);
        j.Key("psi");
        if (f.ready) {
          j.Double(f.psi);
        } else {
          j.Null();
        }
        j.Key("alerting").Bool(f.alerting).Key("rows").Uint(f.rows).Close('}');
      }
    }
    j.Close(']');
    j.Close('}');
  }
  j.Close(']');
}

void Memory(Json& j, const ModelManager& models) {
  const ModelManager::MemoryUse use = models.memory();
  size_t evictable = 0;
  const std::vector<ModelManager::NextEviction> next = models.NextToEvict(10, &evictable);
  j.Key("memory").Open('{');
  j.Key("budget").Uint(use.budget).Key("loaded").Uint(use.loaded).Key("pinned").Uint(use.pinned);
  j.Key("evictable").Uint(evictable);
  j.Key("eviction_order").Open('[');
  for (const ModelManager::NextEviction& e : next) {
    j.Open('{').Key("model").Str(e.name).Key("version").Int(e.version);
    j.Key("tenant").Str(e.tenant).Key("bytes").Uint(e.bytes).Close('}');
  }
  j.Close(']').Close('}');
}

void Tenants(Json& j, const TenantRegistry& registry) {
  std::map<std::string, const TenantUsage*, std::less<>> usage;
  for (const TenantUsage* t : registry.usage().Tenants()) usage.emplace(t->tenant_id(), t);
  std::set<std::string, std::less<>> listed;
  j.Key("tenants").Open('[');
  auto write = [&j, &usage](std::string_view id, const Tenant* tenant) {
    j.Open('{').Key("id").Str(id);
    j.Key("role").Str(tenant != nullptr && tenant->role == TenantRole::kAdmin ? "admin" : "user");
    j.Key("weight").Double(tenant != nullptr ? tenant->weight : 1);
    const TenantQuotas q = tenant != nullptr ? tenant->quotas : TenantQuotas{};
    j.Key("quotas").Open('{');
    j.Key("max_concurrency").Uint(q.max_concurrency);
    j.Key("requests_per_second").Double(q.requests_per_second);
    j.Key("burst").Double(q.burst);
    j.Key("max_loaded_models").Uint(q.max_loaded_models);
    j.Key("memory_bytes").Uint(q.memory_bytes);
    j.Close('}');
    j.Key("in_flight")
        .Int(tenant != nullptr && tenant->quota != nullptr ? tenant->quota->in_flight() : 0);
    UsageFigures sum;
    uint64_t refused = 0;
    if (auto u = usage.find(id); u != usage.end()) {
      refused = u->second->refused();
      for (const auto& [model, f] : u->second->Models()) {
        sum.requests += f.requests;
        sum.failures += f.failures;
        sum.compute_ns += f.compute_ns;
        sum.bytes_in += f.bytes_in;
        sum.bytes_out += f.bytes_out;
      }
    }
    j.Key("refused").Uint(refused).Key("requests").Uint(sum.requests);
    j.Key("failures").Uint(sum.failures);
    j.Key("compute_s").Double(static_cast<double>(sum.compute_ns) / 1e9);
    j.Key("bytes_in").Uint(sum.bytes_in).Key("bytes_out").Uint(sum.bytes_out);
    j.Close('}');
  };
  const std::shared_ptr<const TenantsConfig> config = registry.config();
  if (config != nullptr) {
    for (const Tenant& t : config->tenants) {
      if (listed.insert(t.id).second) write(t.id, &t);
    }
  }
  for (const auto& [id, u] : usage) {
    if (listed.insert(id).second) write(id, nullptr);
  }
  j.Close(']');
}

}  // namespace

void AppendConsoleOverview(const InferenceService& service, std::string& out) {
  Json j(out);
  ModelManager& models = service.models();
  const auto now = std::chrono::steady_clock::now().time_since_epoch();
  const int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now).count();
  const int64_t wall_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  j.Open('{');
  j.Key("schema").Int(1);
  j.Key("server").Open('{');
  j.Key("name").Str(service.Metadata().name).Key("version").Str(service.Metadata().version);
  j.Key("ready").Bool(service.Ready()).Key("time_ms").Int(wall_ms);
  j.Key("uptime_s").Double(static_cast<double>(now_ns - kStartedNs) / 1e9);
  j.Key("tenants").Bool(!service.tenants().open());
  j.Key("control_mode").Str(ModelControlModeName(models.mode()));
  j.Close('}');
  const ExecutionSlots& slots = models.slots();
  j.Key("slots").Open('{');
  j.Key("size").Uint(slots.size()).Key("busy").Uint(slots.busy());
  j.Key("waiting").Uint(slots.waiting()).Close('}');
  j.Key("latency_bounds_s").Open('[');
  for (int64_t bound : LatencyHistogram::kBoundsNs) j.Double(static_cast<double>(bound) / 1e9);
  j.Close(']');
  Memory(j, models);
  Models(j, service);
  Tenants(j, service.tenants());
  j.Close('}');
}

}  // namespace mm
