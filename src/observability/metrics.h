// The Prometheus endpoint: prometheus-cpp's exposer serves GET /metrics on a
// port of its own (--metrics-port), and every scrape builds the metric
// families afresh from the collectors it was given. Nothing is registered or
// updated on the request path: the counters live where the work happens
// (ModelStats, the usage ledger, the tracer...) and are read at scrape time.
//
// Label values are escaped by prometheus-cpp's text serializer (backslash,
// double quote, newline). Cardinality is the collectors' business: each says
// what bounds its label values (docs/observability.md lists them).
//
// Thread-safety: collectors run on the exposer's threads, possibly two
// scrapes at once; they must only read thread-safe state.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/metric_family.h>

#include "core/status.h"
#include "observability/histogram.h"

namespace mm {

using MetricFamilies = std::vector<prometheus::MetricFamily>;
using MetricsCollector = std::function<void(MetricFamilies&)>;
using MetricLabels = std::vector<prometheus::ClientMetric::Label>;

class MetricsServer {
 public:
  struct Options {
    std::string address = "127.0.0.1";
    uint16_t port = 8002;  // 0: a free one (see port())
    size_t threads = 2;
  };
  // Listens at once; UNAVAILABLE naming the address when it cannot.
  static StatusOr<std::unique_ptr<MetricsServer>> Create(Options options,
                                                         std::vector<MetricsCollector> collectors);
  ~MetricsServer();

  uint16_t port() const { return port_; }

  // Every collector's families, as a scrape sees them (tests, and the text
  // format through Serialize).
  MetricFamilies Collect() const;
  static std::string Serialize(const MetricFamilies& families);

  class Impl;

 private:
  MetricsServer() = default;
  std::unique_ptr<Impl> impl_;
  uint16_t port_ = 0;
};

// Helpers for collectors. Each Add* appends one sample to `family`.
// A family to fill, then move into the output.
prometheus::MetricFamily Family(std::string name, std::string help, prometheus::MetricType type);
// Appends a family to `out` and returns it: valid until the next append (so
// fill it before adding another; use Family() to fill several at once).
prometheus::MetricFamily& AddFamily(MetricFamilies& out, std::string name, std::string help,
                                    prometheus::MetricType type);
void AddValue(prometheus::MetricFamily& family, MetricLabels labels, double value);
// A latency histogram, in seconds, with LatencyHistogram's buckets.
void AddHistogram(prometheus::MetricFamily& family, MetricLabels labels,
                  const LatencyHistogram::Snapshot& histogram);
// A histogram of any values: `bounds` ascending (finite), `counts` per
// bucket (not cumulative) with one more for +Inf, and the sum of the values.
void AddHistogram(prometheus::MetricFamily& family, MetricLabels labels,
                  const std::vector<double>& bounds, const std::vector<uint64_t>& counts,
                  double sum);

// process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_start_time_seconds, process_threads
// (from /proc/self; nothing when it cannot be read).
void CollectProcessMetrics(MetricFamilies& out);

}  // namespace mm
