#include "bench/fleet_sim/fleet.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <limits>
#include <numbers>
#include <numeric>
#include <queue>
#include <set>
#include <tuple>
#include <unordered_map>
#include <utility>

namespace mm::fleet {

namespace {

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

// ------------------------------------------------------------------ Rng

Rng::Rng(uint64_t seed) {
  for (uint64_t& s : s_) s = SplitMix64(seed);
}

uint64_t Rng::Next() {
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

double Rng::Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

double Rng::Exponential(double mean) { return -mean * std::log(1.0 - Uniform()); }

double Rng::Normal() {
  const double u1 = 1.0 - Uniform();  // (0, 1]
  const double u2 = Uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

size_t Rng::Below(size_t n) {
  return static_cast<size_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
}

uint64_t HashName(std::string_view name) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : name) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return SplitMix64(h);
}

// ------------------------------------------------------------- HashRing

HashRing::HashRing(size_t servers, size_t vnodes) : servers_(servers), live_(servers) {
  points_.reserve(servers * vnodes);
  for (size_t s = 0; s < servers; ++s) {
    for (size_t v = 0; v < vnodes; ++v) {
      points_.push_back({HashName("server-" + std::to_string(s) + "#" + std::to_string(v)),
                         static_cast<uint32_t>(s)});
    }
  }
  std::sort(points_.begin(), points_.end(), [](const Point& a, const Point& b) {
    return a.hash != b.hash ? a.hash < b.hash : a.server < b.server;
  });
}

size_t HashRing::FirstPoint(uint64_t hash) const {
  auto it = std::lower_bound(points_.begin(), points_.end(), hash,
                             [](const Point& p, uint64_t h) { return p.hash < h; });
  return it == points_.end() ? 0 : static_cast<size_t>(it - points_.begin());
}

size_t HashRing::Lookup(uint64_t hash) const { return points_[FirstPoint(hash)].server; }

std::vector<size_t> HashRing::Successors(uint64_t hash, size_t count) const {
  std::vector<size_t> out;
  const size_t first = FirstPoint(hash);
  for (size_t i = 0; i < points_.size() && out.size() < count; ++i) {
    const size_t server = points_[(first + i) % points_.size()].server;
    if (std::find(out.begin(), out.end(), server) == out.end()) out.push_back(server);
  }
  return out;
}

size_t HashRing::LookupBounded(uint64_t hash, const std::vector<uint64_t>& loads,
                               uint64_t cap) const {
  const size_t first = FirstPoint(hash);
  for (size_t i = 0; i < points_.size(); ++i) {
    const size_t server = points_[(first + i) % points_.size()].server;
    if (loads[server] < cap) return server;
  }
  return points_[first].server;
}

void HashRing::RemoveServer(size_t server) {
  const size_t before = points_.size();
  std::erase_if(points_, [server](const Point& p) { return p.server == server; });
  if (points_.size() != before) --live_;
}

uint64_t BoundedLoadCap(uint64_t load, size_t servers, double epsilon) {
  const double cap = std::ceil((1.0 + epsilon) * static_cast<double>(load + 1) /
                               static_cast<double>(std::max<size_t>(servers, 1)));
  return std::max<uint64_t>(1, static_cast<uint64_t>(cap));
}

// ---------------------------------------------------------- ZipfSampler

ZipfSampler::ZipfSampler(size_t n, double s) : cdf_(n) {
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    sum += 1.0 / std::pow(static_cast<double>(i + 1), s);
    cdf_[i] = sum;
  }
  for (double& c : cdf_) c /= sum;
}

size_t ZipfSampler::Sample(Rng& rng) const {
  const double u = rng.Uniform();
  const size_t i = std::upper_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin();
  return std::min(i, cdf_.size() - 1);
}

double ZipfSampler::Probability(size_t rank) const {
  return rank == 0 ? cdf_[0] : cdf_[rank] - cdf_[rank - 1];
}

// --------------------------------------------------------------- policy

std::string_view PolicyName(Policy policy) {
  switch (policy) {
    case Policy::kRandom:
      return "random";
    case Policy::kChash:
      return "chash";
    case Policy::kChashBounded:
      return "chash-bounded";
    case Policy::kChashReplicated:
      return "chash-replicated";
  }
  return "?";
}

std::optional<Policy> ParsePolicy(std::string_view name) {
  for (Policy p : kAllPolicies) {
    if (PolicyName(p) == name) return p;
  }
  return std::nullopt;
}

// ------------------------------------------------------------- workload

Workload MakeWorkload(const Config& config) {
  Workload w;
  Rng rng(config.seed * 0x2545f4914f6cdd1dULL + 17);
  int width = 5;
  for (size_t n = config.models; n >= 100000; n /= 10) ++width;
  w.names.reserve(config.models);
  w.bytes.reserve(config.models);
  for (size_t i = 0; i < config.models; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "model-%0*zu", width, i);
    w.names.emplace_back(name);
    w.hashes.push_back(HashName(w.names.back()));
    const double bytes = std::exp(std::log(static_cast<double>(config.size_median)) +
                                  config.size_sigma * rng.Normal());
    w.bytes.push_back(std::max<uint64_t>(config.size_min, static_cast<uint64_t>(bytes)));
    w.total_bytes += w.bytes.back();
  }
  for (auto& order : w.rank_order) {
    order.resize(config.models);
    std::iota(order.begin(), order.end(), 0u);
    for (size_t i = config.models; i > 1; --i) std::swap(order[i - 1], order[rng.Below(i)]);
  }
  w.server_memory =
      config.server_memory > 0
          ? config.server_memory
          : static_cast<uint64_t>(static_cast<double>(w.total_bytes) * config.memory_fraction /
                                  static_cast<double>(std::max<size_t>(config.servers, 1)));
  return w;
}

// ------------------------------------------------------------- counters

double Counters::HitRatio() const {
  return requests ? static_cast<double>(hits) / static_cast<double>(requests) : 0;
}
double Counters::WaitedFraction() const {
  return requests ? static_cast<double>(waited) / static_cast<double>(requests) : 0;
}
double Counters::FailedFraction() const {
  return requests ? static_cast<double>(failed) / static_cast<double>(requests) : 0;
}
double Counters::MeanWaitSeconds() const {
  const uint64_t served = waited - failed;
  return served ? wait_seconds / static_cast<double>(served) : 0;
}
double Counters::Imbalance() const {
  if (per_server.empty()) return 0;
  const uint64_t sum = std::accumulate(per_server.begin(), per_server.end(), uint64_t{0});
  if (sum == 0) return 0;
  const uint64_t max = *std::max_element(per_server.begin(), per_server.end());
  return static_cast<double>(max) * static_cast<double>(per_server.size()) /
         static_cast<double>(sum);
}

double Result::WorstHourImbalance() const {
  double worst = 0;
  for (const Counters& h : hours) worst = std::max(worst, h.Imbalance());
  return worst;
}

double Result::MeanHourImbalance() const {
  double sum = 0;
  size_t n = 0;
  for (const Counters& h : hours) {
    if (h.requests == 0) continue;
    sum += h.Imbalance();
    ++n;
  }
  return n ? sum / static_cast<double>(n) : 0;
}

// ----------------------------------------------------------- simulation

namespace {

int64_t Nanos(double seconds) { return static_cast<int64_t>(seconds * 1e9); }

// One run: the fleet, the trace's clock and the counters.
class Simulation {
 public:
  Simulation(const Config& config, const Workload& workload, Policy policy)
      : config_(config),
        workload_(workload),
        policy_(policy),
        ring_(config.servers, config.vnodes),
        route_rng_(config.seed * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(policy) + 1),
        servers_(config.servers) {
    const double duration = static_cast<double>(config.requests) / config.rate;
    day_ = config.day_seconds > 0 ? config.day_seconds : duration;
    result_.policy = policy;
    result_.hour_seconds = day_ / 24;
    const size_t hours =
        std::max<size_t>(1, static_cast<size_t>(std::ceil(duration / result_.hour_seconds - 1e-9)));
    result_.hours.resize(hours);
    for (Counters& h : result_.hours) h.per_server.assign(config.servers, 0);
    result_.total.per_server.assign(config.servers, 0);
    for (Server& s : servers_) s.entries.resize(config.models);
    owner_.resize(config.models);
    for (size_t m = 0; m < config.models; ++m) owner_[m] = ring_.Lookup(workload.hashes[m]);
    window_loads_.assign(config.servers, 0);
    if (policy == Policy::kChashReplicated) {
      recent_.assign(config.models, 0);
      score_.assign(config.models, 0);
      replicas_.resize(config.models);
      next_replica_.assign(config.models, 0);
      next_refresh_ = config.hot_refresh_seconds;
    }
  }

  Result Run() {
    Rng trace(config_.seed);
    const ZipfSampler zipf(config_.models, config_.zipf_s);
    const double gap = 1.0 / config_.rate;
    double t = 0;
    for (uint64_t i = 0; i < config_.requests; ++i) {
      t += trace.Exponential(gap);
      const double second_weight =
          config_.diurnal_shift * (1 - std::cos(2 * std::numbers::pi * t / day_)) / 2;
      const int population = trace.Uniform() < second_weight ? 1 : 0;
      const uint32_t model = workload_.rank_order[population][zipf.Sample(trace)];
      FinishLoadsUntil(t);
      const size_t server = Route(model, t);
      Request(server, model, t);
    }
    FinishLoadsUntil(std::numeric_limits<double>::infinity());
    result_.seconds = t;
    return std::move(result_);
  }

 private:
  enum class Residency : uint8_t { kAbsent, kQueued, kLoading, kResident };

  // What one server's lifecycle knows of one model (ModelEntry's memory
  // fields and its copy's ServableModel::uses / last_used_ns).
  struct Entry {
    uint64_t past_uses = 0;
    uint64_t uses = 0;  // the resident copy's
    int64_t last_used_ns = 0;
    Residency state = Residency::kAbsent;
    bool known = false;
  };

  struct Server {
    std::vector<Entry> entries;   // by model
    std::vector<uint32_t> known;  // models with an entry
    std::set<uint32_t> resident;  // by name, as MemoryAccount's held_ map
    std::unordered_map<uint32_t, std::vector<double>> waiting;  // arrival times, by model
    std::deque<uint32_t> queue;                                 // loads waiting for a load thread
    size_t loading = 0;
    uint64_t loaded_bytes = 0;
    uint64_t reserved_bytes = 0;
    size_t loads_since_aging = 0;
  };

  struct Completion {
    double time;
    uint32_t server;
    uint32_t model;
    bool operator>(const Completion& o) const {
      return time != o.time ? time > o.time : std::tie(server, model) > std::tie(o.server, o.model);
    }
  };

  Counters& HourOf(double t) {
    const size_t h = static_cast<size_t>(std::max(0.0, t / result_.hour_seconds));
    return result_.hours[std::min(h, result_.hours.size() - 1)];
  }

  // ----------------------------------------------------------- routing

  size_t Route(uint32_t model, double t) {
    switch (policy_) {
      case Policy::kRandom:
        return route_rng_.Below(config_.servers);
      case Policy::kChash:
        return owner_[model];
      case Policy::kChashBounded: {
        while (!window_.empty() && window_.front().first <= t - config_.window_seconds) {
          --window_loads_[window_.front().second];
          window_.pop_front();
        }
        const uint64_t cap = BoundedLoadCap(window_.size(), config_.servers, config_.epsilon);
        const size_t server = ring_.LookupBounded(workload_.hashes[model], window_loads_, cap);
        ++window_loads_[server];
        window_.emplace_back(t, static_cast<uint32_t>(server));
        return server;
      }
      case Policy::kChashReplicated: {
        while (t >= next_refresh_) {
          RefreshHotSet();
          next_refresh_ += config_.hot_refresh_seconds;
        }
        ++recent_[model];
        const std::vector<uint32_t>& replicas = replicas_[model];
        if (replicas.empty()) return owner_[model];
        return replicas[next_replica_[model]++ % replicas.size()];
      }
    }
    return 0;
  }

  // The hot set from the requests seen so far: a count halved at every
  // refresh, so that the last few periods weigh most.
  void RefreshHotSet() {
    for (uint32_t m : hot_) replicas_[m].clear();
    hot_.clear();
    std::vector<uint32_t> order;
    for (size_t m = 0; m < config_.models; ++m) {
      score_[m] = score_[m] / 2 + static_cast<double>(recent_[m]);
      recent_[m] = 0;
      if (score_[m] > 0) order.push_back(static_cast<uint32_t>(m));
    }
    const size_t k = std::min(config_.hot_models, order.size());
    auto hotter = [this](uint32_t a, uint32_t b) {
      return score_[a] != score_[b] ? score_[a] > score_[b] : a < b;
    };
    std::nth_element(order.begin(), order.begin() + static_cast<ptrdiff_t>(k), order.end(), hotter);
    order.resize(k);
    for (uint32_t m : order) {
      for (size_t s : ring_.Successors(workload_.hashes[m], config_.replicas)) {
        replicas_[m].push_back(static_cast<uint32_t>(s));
      }
      hot_.push_back(m);
    }
  }

  // ---------------------------------------------------------- a server

  void Request(size_t s, uint32_t model, double t) {
    Server& server = servers_[s];
    Entry& e = server.entries[model];
    if (!e.known) {
      e.known = true;
      server.known.push_back(model);
    }
    Counters& hour = HourOf(t);
    ++result_.total.requests;
    ++hour.requests;
    ++result_.total.per_server[s];
    ++hour.per_server[s];
    switch (e.state) {
      case Residency::kResident:  // VersionTable::Get, count_use
        ++e.uses;
        e.last_used_ns = Nanos(t);
        ++result_.total.hits;
        ++hour.hits;
        return;
      case Residency::kQueued:
      case Residency::kLoading:
        ++e.past_uses;  // ModelManager's on-demand path
        server.waiting[model].push_back(t);
        break;
      case Residency::kAbsent:
        ++e.past_uses;
        server.waiting[model].push_back(t);
        e.state = Residency::kQueued;
        server.queue.push_back(model);
        StartLoads(s, t);
        break;
    }
    ++result_.total.waited;
    ++hour.waited;
  }

  void StartLoads(size_t s, double t) {
    Server& server = servers_[s];
    while (server.loading < config_.load_threads && !server.queue.empty()) {
      const uint32_t model = server.queue.front();
      server.queue.pop_front();
      StartLoad(s, model, t);
    }
  }

  // MemoryAccount::AgeUsesLocked, over this server's known models.
  void AgeUses(Server& server) {
    if (++server.loads_since_aging < server.known.size() / 64) return;
    server.loads_since_aging = 0;
    // An unknown model's counts are 0: once many are known, a sweep of every
    // entry in order is the same sum, without a cache miss per model.
    const bool sweep = server.known.size() > server.entries.size() / 8;
    uint64_t total = 0;
    if (sweep) {
      for (const Entry& e : server.entries) total += e.past_uses + e.uses;
    } else {
      for (uint32_t m : server.known) total += server.entries[m].past_uses + server.entries[m].uses;
    }
    if (total <= 128 * std::max<uint64_t>(server.known.size(), 1)) return;
    auto halve = [](Entry& e) {
      e.past_uses /= 2;
      e.uses /= 2;
    };
    if (sweep) {
      for (Entry& e : server.entries) halve(e);
    } else {
      for (uint32_t m : server.known) halve(server.entries[m]);
    }
  }

  // MemoryAccount::Reserve: plan with the real planner, evict, reserve.
  void StartLoad(size_t s, uint32_t model, double t) {
    Server& server = servers_[s];
    Entry& e = server.entries[model];
    const uint64_t bytes = workload_.bytes[model];
    const uint64_t budget = workload_.server_memory;
    const ModelOwner owner;  // one repository of nobody's: no quotas
    if (NeedsPlan(budget, owner)) {
      AgeUses(server);
      MemoryState state;
      state.budget = budget;
      state.used = server.loaded_bytes + server.reserved_bytes;
      state.policy = config_.eviction;
      state.loaded.reserve(server.resident.size());
      std::vector<uint32_t> candidates;
      candidates.reserve(server.resident.size());
      for (uint32_t m : server.resident) {
        const Entry& r = server.entries[m];
        // Serving takes no time: a resident copy is never busy.
        state.loaded.push_back({{workload_.names[m], kRepository},
                                1,
                                workload_.bytes[m],
                                owner,
                                /*pinned=*/false,
                                /*busy=*/false,
                                r.past_uses + r.uses,
                                r.last_used_ns});
        candidates.push_back(m);
      }
      const std::string label = "model '" + workload_.names[model] + "' version 1";
      StatusOr<EvictionPlan> plan =
          PlanEvictions(state, {{workload_.names[model], kRepository}, label, bytes, owner});
      if (!plan.ok()) {
        FailLoad(server, model, t);
        return;
      }
      Counters& hour = HourOf(t);
      for (const EvictionPlan::Eviction& ev : plan->evictions) {
        const uint32_t m = candidates[ev.candidate];
        Entry& gone = server.entries[m];
        gone.past_uses += gone.uses;
        gone.uses = 0;
        gone.state = Residency::kAbsent;
        server.resident.erase(m);
        server.loaded_bytes -= workload_.bytes[m];
        ++result_.total.evictions;
        ++hour.evictions;
      }
    }
    server.reserved_bytes += bytes;
    result_.peak_server_bytes =
        std::max(result_.peak_server_bytes, server.loaded_bytes + server.reserved_bytes);
    e.state = Residency::kLoading;
    ++server.loading;
    Counters& hour = HourOf(t);
    ++result_.total.loads;
    ++hour.loads;
    result_.total.load_bytes += bytes;
    hour.load_bytes += bytes;
    const double seconds =
        config_.load_base_seconds + config_.load_seconds_per_gb * static_cast<double>(bytes) / 1e9;
    completions_.push({t + seconds, static_cast<uint32_t>(s), model});
  }

  void FailLoad(Server& server, uint32_t model, double t) {
    server.entries[model].state = Residency::kAbsent;
    auto it = server.waiting.find(model);
    for (double arrival : it->second) {
      ++result_.total.failed;
      ++HourOf(arrival).failed;
    }
    server.waiting.erase(it);
  }

  void FinishLoadsUntil(double t) {
    while (!completions_.empty() && completions_.top().time <= t) {
      const Completion c = completions_.top();
      completions_.pop();
      Server& server = servers_[c.server];
      Entry& e = server.entries[c.model];
      const uint64_t bytes = workload_.bytes[c.model];
      server.reserved_bytes -= bytes;  // MemoryAccount::Commit
      server.loaded_bytes += bytes;
      server.resident.insert(c.model);
      e.state = Residency::kResident;
      e.uses = 0;
      e.last_used_ns = Nanos(c.time);
      --server.loading;
      auto it = server.waiting.find(c.model);
      for (double arrival : it->second) {
        const double wait = c.time - arrival;
        for (Counters* k : {&result_.total, &HourOf(arrival)}) {
          k->wait_seconds += wait;
          k->max_wait_seconds = std::max(k->max_wait_seconds, wait);
        }
      }
      server.waiting.erase(it);
      StartLoads(c.server, c.time);
    }
  }

  static constexpr const char* kRepository = "fleet";

  const Config& config_;
  const Workload& workload_;
  const Policy policy_;
  const HashRing ring_;
  Rng route_rng_;
  double day_ = 0;
  std::vector<Server> servers_;
  std::vector<size_t> owner_;  // by model: its ring owner
  std::priority_queue<Completion, std::vector<Completion>, std::greater<>> completions_;
  // chash-bounded: the requests of the last window, and each server's count of them.
  std::deque<std::pair<double, uint32_t>> window_;
  std::vector<uint64_t> window_loads_;
  // chash-replicated.
  std::vector<uint64_t> recent_;                 // requests since the last refresh, by model
  std::vector<double> score_;                    // decayed request counts, by model
  std::vector<std::vector<uint32_t>> replicas_;  // the hot models' servers
  std::vector<uint64_t> next_replica_;           // round-robin position, by model
  std::vector<uint32_t> hot_;
  double next_refresh_ = 0;
  Result result_;
};

}  // namespace

Result Simulate(const Config& config, const Workload& workload, Policy policy) {
  return Simulation(config, workload, policy).Run();
}

}  // namespace mm::fleet
