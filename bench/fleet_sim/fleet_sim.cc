// fleet_sim: placement of many models over many servers, by simulation
// (issue 24). Replays one request trace under each placement policy, every
// server evicting with the lifecycle's own planner (bench/fleet_sim/fleet.h
// tells the model), and prints per policy the hit ratio, the fraction of
// requests that waited for a load, loads per second, evictions and the load
// imbalance across servers (max / mean requests, over the run and per
// simulated hour).
//
//   fleet_sim [--policy all|random,chash,chash-bounded,chash-replicated]
//             [--models 10000] [--servers 100] [--server-memory SIZE |
//             --memory-fraction 0.4] [--size-median 200MB] [--size-sigma 1.0]
//             [--zipf 1.0] [--diurnal-shift 1.0] [--rate 2000]
//             [--requests 10000000] [--day-seconds S] [--load-base 0.05]
//             [--load-per-gb 1.0] [--load-threads 4] [--eviction lfu|lru]
//             [--vnodes 100] [--epsilon 0.25] [--window 10] [--hot-models 100]
//             [--replicas 4] [--hot-refresh 60] [--seed 1] [--csv FILE]
//
// SIZE as the server's flags take it ("13GiB", "200MB"). The simulated day
// is the whole trace unless --day-seconds says otherwise: 24 hours compressed
// into requests / rate seconds. --csv writes one row per policy and hour
// (hour "all": the whole run) for bench/fleet_sim/plot.py.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "bench/fleet_sim/fleet.h"
#include "core/memory.h"

namespace {

using mm::fleet::Config;
using mm::fleet::Counters;
using mm::fleet::Policy;
using mm::fleet::Result;

// Prints the flags after `why`; --help's exit code 0 goes to stdout.
[[noreturn]] void Usage(const std::string& why, int code = 2) {
  std::fprintf(code == 0 ? stdout : stderr,
               "fleet_sim: %s\nusage: fleet_sim [--policy all|P1,P2,...] [--models N] "
               "[--servers N] [--server-memory SIZE | --memory-fraction F] [--size-median SIZE] "
               "[--size-sigma S] [--zipf S] [--diurnal-shift W] [--rate R] [--requests N] "
               "[--day-seconds S] [--load-base S] [--load-per-gb S] [--load-threads N] "
               "[--eviction lfu|lru] [--vnodes N] [--epsilon E] [--window S] [--hot-models K] "
               "[--replicas R] [--hot-refresh S] [--seed N] [--csv FILE]\n",
               why.c_str());
  std::exit(code);
}

struct Flags {
  Config config;
  std::vector<Policy> policies{std::begin(mm::fleet::kAllPolicies),
                               std::end(mm::fleet::kAllPolicies)};
  std::string csv;
};

double Number(std::string_view flag, const char* text) {
  char* end = nullptr;
  const double v = std::strtod(text, &end);
  if (end == text || *end != '\0') Usage(std::string(flag) + ": not a number: " + text);
  return v;
}

uint64_t Bytes(std::string_view flag, const char* text) {
  auto bytes = mm::ParseByteSize(text, 0);
  if (!bytes.ok()) Usage(std::string(flag) + ": " + bytes.status().message());
  return *bytes;
}

std::vector<Policy> Policies(const std::string& list) {
  if (list == "all")
    return {std::begin(mm::fleet::kAllPolicies), std::end(mm::fleet::kAllPolicies)};
  std::vector<Policy> out;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    const std::string name = list.substr(start, comma - start);
    auto p = mm::fleet::ParsePolicy(name);
    if (!p) Usage("unknown policy '" + name + "'");
    out.push_back(*p);
    start = comma + 1;
  }
  return out;
}

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  Config& c = f.config;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) Usage(std::string(arg) + " lacks its value");
      return argv[++i];
    };
    auto count = [&]() -> size_t {
      const double v = Number(arg, value());
      if (v < 0 || v != static_cast<double>(static_cast<uint64_t>(v))) {
        Usage(std::string(arg) + ": not a count");
      }
      return static_cast<size_t>(v);
    };
    if (arg == "--help" || arg == "-h") {
      Usage("placement policies over a simulated fleet (docs/fleet_sim.md)", 0);
    } else if (arg == "--policy") {
      f.policies = Policies(value());
    } else if (arg == "--models") {
      c.models = count();
    } else if (arg == "--servers") {
      c.servers = count();
    } else if (arg == "--server-memory") {
      c.server_memory = Bytes(arg, value());
    } else if (arg == "--memory-fraction") {
      c.memory_fraction = Number(arg, value());
    } else if (arg == "--size-median") {
      c.size_median = Bytes(arg, value());
    } else if (arg == "--size-sigma") {
      c.size_sigma = Number(arg, value());
    } else if (arg == "--zipf") {
      c.zipf_s = Number(arg, value());
    } else if (arg == "--diurnal-shift") {
      c.diurnal_shift = Number(arg, value());
    } else if (arg == "--rate") {
      c.rate = Number(arg, value());
    } else if (arg == "--requests") {
      c.requests = count();
    } else if (arg == "--day-seconds") {
      c.day_seconds = Number(arg, value());
    } else if (arg == "--load-base") {
      c.load_base_seconds = Number(arg, value());
    } else if (arg == "--load-per-gb") {
      c.load_seconds_per_gb = Number(arg, value());
    } else if (arg == "--load-threads") {
      c.load_threads = count();
    } else if (arg == "--eviction") {
      const std::string_view v = value();
      if (v != "lfu" && v != "lru") Usage("--eviction: lfu or lru");
      c.eviction = v == "lru" ? mm::EvictionPolicy::kLru : mm::EvictionPolicy::kLfu;
    } else if (arg == "--vnodes") {
      c.vnodes = count();
    } else if (arg == "--epsilon") {
      c.epsilon = Number(arg, value());
    } else if (arg == "--window") {
      c.window_seconds = Number(arg, value());
    } else if (arg == "--hot-models") {
      c.hot_models = count();
    } else if (arg == "--replicas") {
      c.replicas = count();
    } else if (arg == "--hot-refresh") {
      c.hot_refresh_seconds = Number(arg, value());
    } else if (arg == "--seed") {
      c.seed = count();
    } else if (arg == "--csv") {
      f.csv = value();
    } else {
      Usage("unknown argument " + std::string(arg));
    }
  }
  if (c.models < 1 || c.servers < 1 || c.rate <= 0 || c.requests < 1 || c.load_threads < 1 ||
      c.vnodes < 1 || c.replicas < 1 || c.window_seconds <= 0 || c.hot_refresh_seconds <= 0 ||
      c.epsilon < 0 || c.size_sigma < 0 || c.diurnal_shift < 0 || c.diurnal_shift > 1 ||
      c.day_seconds < 0 || (c.server_memory == 0 && c.memory_fraction <= 0)) {
    Usage("a flag is out of range");
  }
  if (c.models > UINT32_MAX || c.servers > UINT32_MAX) Usage("too many models or servers");
  return f;
}

void WriteRow(std::FILE* out, std::string_view policy, const std::string& hour, const Counters& k,
              double seconds) {
  std::fprintf(out, "%.*s,%s,%llu,%.6f,%.6f,%.6f,%.4f,%.4f,%llu,%.4f,%.4f,%.4f\n",
               static_cast<int>(policy.size()), policy.data(), hour.c_str(),
               static_cast<unsigned long long>(k.requests), k.HitRatio(), k.WaitedFraction(),
               k.FailedFraction(), static_cast<double>(k.loads) / seconds,
               static_cast<double>(k.load_bytes) / 1e9 / seconds,
               static_cast<unsigned long long>(k.evictions), k.Imbalance(), k.MeanWaitSeconds(),
               k.max_wait_seconds);
}

}  // namespace

int main(int argc, char** argv) {
  const Flags flags = ParseFlags(argc, argv);
  const Config& c = flags.config;
  const mm::fleet::Workload workload = mm::fleet::MakeWorkload(c);
  const double seconds = static_cast<double>(c.requests) / c.rate;
  const double day = c.day_seconds > 0 ? c.day_seconds : seconds;
  std::printf(
      "fleet_sim: %zu models (%s in all), %zu servers of %s each (the fleet holds %.0f%% of the "
      "models' bytes), %llu requests at %.0f/s (%.0f s simulated; one simulated day = %.0f s, an "
      "hour %.0f s), zipf %.2f, diurnal shift %.2f, eviction %s, seed %llu\n",
      c.models, mm::FormatBytes(workload.total_bytes).c_str(), c.servers,
      mm::FormatBytes(workload.server_memory).c_str(),
      100.0 * static_cast<double>(workload.server_memory) * static_cast<double>(c.servers) /
          static_cast<double>(workload.total_bytes),
      static_cast<unsigned long long>(c.requests), c.rate, seconds, day, day / 24, c.zipf_s,
      c.diurnal_shift, c.eviction == mm::EvictionPolicy::kLfu ? "lfu" : "lru",
      static_cast<unsigned long long>(c.seed));
  const uint64_t largest = *std::max_element(workload.bytes.begin(), workload.bytes.end());
  const auto too_big = std::count_if(workload.bytes.begin(), workload.bytes.end(),
                                     [&](uint64_t b) { return b > workload.server_memory; });
  std::printf("fleet_sim: the largest model takes %s; %lld models do not fit one server\n",
              mm::FormatBytes(largest).c_str(), static_cast<long long>(too_big));

  std::vector<Result> results;
  std::vector<double> walls;
  for (Policy p : flags.policies) {
    const auto start = std::chrono::steady_clock::now();
    results.push_back(mm::fleet::Simulate(c, workload, p));
    walls.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }

  std::printf("\n%-17s %9s %8s %8s %8s %9s %10s %9s %9s %9s %9s %8s %6s\n", "policy", "hit_ratio",
              "waited", "failed", "loads/s", "load_GB/s", "evictions", "imbal_run", "imbal_hr",
              "imbal_max", "mean_wait", "max_wait", "wall_s");
  for (size_t i = 0; i < results.size(); ++i) {
    const Result& r = results[i];
    const Counters& k = r.total;
    const std::string_view name = mm::fleet::PolicyName(r.policy);
    std::printf(
        "%-17.*s %9.4f %8.4f %8.5f %8.2f %9.3f %10llu %9.2f %9.2f %9.2f %9.3f %8.2f %6.1f\n",
        static_cast<int>(name.size()), name.data(), k.HitRatio(), k.WaitedFraction(),
        k.FailedFraction(), static_cast<double>(k.loads) / r.seconds,
        static_cast<double>(k.load_bytes) / 1e9 / r.seconds,
        static_cast<unsigned long long>(k.evictions), k.Imbalance(), r.MeanHourImbalance(),
        r.WorstHourImbalance(), k.MeanWaitSeconds(), k.max_wait_seconds, walls[i]);
  }
  std::printf(
      "\nhit_ratio: served by a resident copy; waited: waited for a load (failed: of those, "
      "the load did not fit); imbal_*: max/mean requests per server over the run, the mean "
      "of the hours', the worst hour's; waits in seconds\n");

  if (!flags.csv.empty()) {
    std::FILE* out = std::fopen(flags.csv.c_str(), "w");
    if (out == nullptr) {
      std::fprintf(stderr, "fleet_sim: cannot write %s\n", flags.csv.c_str());
      return 1;
    }
    std::fprintf(out,
                 "policy,hour,requests,hit_ratio,waited_fraction,failed_fraction,loads_per_s,"
                 "load_gb_per_s,evictions,imbalance,mean_wait_s,max_wait_s\n");
    for (const Result& r : results) {
      const std::string_view name = mm::fleet::PolicyName(r.policy);
      WriteRow(out, name, "all", r.total, r.seconds);
      for (size_t h = 0; h < r.hours.size(); ++h) {
        WriteRow(out, name, std::to_string(h), r.hours[h], r.hour_seconds);
      }
    }
    std::fclose(out);
  }
  return 0;
}
