#include "observability/metrics.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <limits>
#include <sstream>
#include <utility>

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/text_serializer.h>

namespace mm {

namespace {

class Collectors final : public prometheus::Collectable {
 public:
  explicit Collectors(std::vector<MetricsCollector> collectors)
      : collectors_(std::move(collectors)) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    MetricFamilies out;
    for (const auto& collect : collectors_) collect(out);
    return out;
  }

 private:
  const std::vector<MetricsCollector> collectors_;
};

}  // namespace

class MetricsServer::Impl {
 public:
  std::shared_ptr<Collectors> collectors;
  std::unique_ptr<prometheus::Exposer> exposer;
};

StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Create(
    Options options, std::vector<MetricsCollector> collectors) {
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  server->impl_ = std::make_unique<Impl>();
  server->impl_->collectors = std::make_shared<Collectors>(std::move(collectors));
  const std::string where =
      (options.address.find(':') != std::string::npos ? "[" + options.address + "]"
                                                      : options.address) +
      ":" + std::to_string(options.port);
  try {
    server->impl_->exposer = std::make_unique<prometheus::Exposer>(where, options.threads);
  } catch (const std::exception& e) {
    return Unavailable("metrics: cannot listen on " + where + " (--metrics-address, " +
                       "--metrics-port): " + e.what());
  }
  server->impl_->exposer->RegisterCollectable(server->impl_->collectors, "/metrics");
  auto ports = server->impl_->exposer->GetListeningPorts();
  server->port_ = ports.empty() ? options.port : static_cast<uint16_t>(ports.front());
  return server;
}

MetricsServer::~MetricsServer() = default;

MetricFamilies MetricsServer::Collect() const { return impl_->collectors->Collect(); }

std::string MetricsServer::Serialize(const MetricFamilies& families) {
  return prometheus::TextSerializer().Serialize(families);
}

prometheus::MetricFamily Family(std::string name, std::string help, prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

prometheus::MetricFamily& AddFamily(MetricFamilies& out, std::string name, std::string help,
                                    prometheus::MetricType type) {
  return out.emplace_back(Family(std::move(name), std::move(help), type));
}

void AddValue(prometheus::MetricFamily& family, MetricLabels labels, double value) {
  prometheus::ClientMetric& m = family.metric.emplace_back();
  m.label = std::move(labels);
  switch (family.type) {
    case prometheus::MetricType::Counter:
      m.counter.value = value;
      break;
    case prometheus::MetricType::Gauge:
      m.gauge.value = value;
      break;
    default:
      m.untyped.value = value;
      break;
  }
}

void AddHistogram(prometheus::MetricFamily& family, MetricLabels labels,
                  const std::vector<double>& bounds, const std::vector<uint64_t>& counts,
                  double sum) {
  prometheus::ClientMetric& m = family.metric.emplace_back();
  m.label = std::move(labels);
  uint64_t cumulative = 0;
  m.histogram.bucket.reserve(bounds.size() + 1);
  for (size_t i = 0; i <= bounds.size(); ++i) {
    cumulative += i < counts.size() ? counts[i] : 0;
    m.histogram.bucket.push_back(
        {cumulative, i < bounds.size() ? bounds[i] : std::numeric_limits<double>::infinity()});
  }
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = sum;
}

void AddHistogram(prometheus::MetricFamily& family, MetricLabels labels,
                  const LatencyHistogram::Snapshot& histogram) {
  static const std::vector<double> bounds = [] {
    std::vector<double> b;
    for (int64_t ns : LatencyHistogram::kBoundsNs) b.push_back(static_cast<double>(ns) / 1e9);
    return b;
  }();
  AddHistogram(family, std::move(labels), bounds,
               std::vector<uint64_t>(histogram.counts.begin(), histogram.counts.end()),
               static_cast<double>(histogram.sum_ns) / 1e9);
}

void CollectProcessMetrics(MetricFamilies& out) {
  // /proc/self/stat: fields after the command name (which may hold spaces),
  // utime (14), stime (15), num_threads (20), starttime (22), vsize (23), rss (24).
  std::ifstream stat_file("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return;
  std::istringstream fields(stat.substr(close + 2));
  std::vector<std::string> f;  // f[0] is field 3 (state)
  for (std::string s; fields >> s;) f.push_back(s);
  if (f.size() < 22) return;
  auto field = [&](int n) { return std::strtod(f[static_cast<size_t>(n - 3)].c_str(), nullptr); };
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  double boot_time = 0;
  {
    std::ifstream proc_stat("/proc/stat");
    for (std::string line; std::getline(proc_stat, line);) {
      if (line.rfind("btime ", 0) == 0) boot_time = std::strtod(line.c_str() + 6, nullptr);
    }
  }
  AddValue(AddFamily(out, "process_cpu_seconds_total", "User and system CPU time the server used",
                     prometheus::MetricType::Counter),
           {}, (field(14) + field(15)) / ticks);
  AddValue(AddFamily(out, "process_resident_memory_bytes", "Resident memory of the server",
                     prometheus::MetricType::Gauge),
           {}, field(24) * page);
  AddValue(AddFamily(out, "process_virtual_memory_bytes", "Virtual memory of the server",
                     prometheus::MetricType::Gauge),
           {}, field(23));
  AddValue(
      AddFamily(out, "process_threads", "Threads of the server", prometheus::MetricType::Gauge), {},
      field(20));
  if (boot_time > 0) {
    AddValue(AddFamily(out, "process_start_time_seconds",
                       "When the server started, in seconds since the epoch",
                       prometheus::MetricType::Gauge),
             {}, boot_time + field(22) / ticks);
  }
}

}  // namespace mm
