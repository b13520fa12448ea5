// CustomMetrics: the metrics models keep themselves (Triton's Python backend:
// pb_utils.MetricFamily / Metric), exported on /metrics beside the server's.
//
// A family (name, help, kind) is server-wide: every model that names it with
// the same kind shares it (with another help, the family keeps its first, as
// Triton's Python backend does); each model's series in it carry the
// model's own labels plus `model` and `version` (the owner's, added here, so
// a model cannot speak for another). Values live here and are read at scrape
// time (Collect), as every other collector's.
//
// Each loaded model version holds one Owner (ForModel). An id is the owner's
// handle of one series; creating a series the owner already has returns a new
// id on the same series (Triton's Metric objects behave alike). A series
// leaves /metrics when its last id is released or its owner is destroyed (the
// model version unloaded); a family leaves with its last series.
//
// Bounds, so a model cannot blow up /metrics (Options): families server-wide,
// families and ids per owner, labels per series, the sizes of names, label
// values and help, and histogram buckets. Over one: RESOURCE_EXHAUSTED or
// INVALID_ARGUMENT naming the bound and the value.
//
// Rules (Prometheus' data model): a family name matches
// [a-zA-Z_:][a-zA-Z0-9_:]* and does not start with the server's own prefixes
// ("mmserve_", "process_"); a label name matches [a-zA-Z_][a-zA-Z0-9_]*, does
// not start with "__", and is not "le" for a histogram; "model" and "version"
// are the owner's (a series may name them only with the owner's values); label values are UTF-8.
// Buckets are finite and strictly ascending (+Inf is implied).
//
// Thread-safety: every method may be called concurrently; one mutex guards
// the registry (models' metric updates are not on the server's request path).
// An Owner must not outlive its CustomMetrics.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/thread_annotations.h"
#include "observability/metrics.h"

namespace mm {

enum class CustomMetricKind : uint8_t { kCounter, kGauge, kHistogram };
enum class CustomMetricOp : uint8_t { kIncrement, kSet, kObserve };

struct CustomMetricSpec {
  std::string family;
  std::string description;
  CustomMetricKind kind = CustomMetricKind::kCounter;
  std::map<std::string, std::string> labels;  // the series' own labels
  std::vector<double> buckets;                // histograms only
};

class CustomMetrics {
 public:
  struct Options {
    size_t max_families = 1024;           // server-wide
    size_t max_families_per_model = 64;   // families one owner has series in
    size_t max_metrics_per_model = 1024;  // ids one owner holds at once
    size_t max_labels = 16;               // a series' own labels
    size_t max_name_bytes = 128;          // family and label names
    size_t max_label_value_bytes = 256;
    size_t max_description_bytes = 1024;
    size_t max_buckets = 64;
  };
  explicit CustomMetrics(Options options);
  CustomMetrics() : CustomMetrics(Options{}) {}
  ~CustomMetrics();
  CustomMetrics(const CustomMetrics&) = delete;
  CustomMetrics& operator=(const CustomMetrics&) = delete;

  struct Series;
  struct Family;

  // One model version's metrics. Destroying it removes them all.
  class Owner {
   public:
    ~Owner();
    Owner(const Owner&) = delete;
    Owner& operator=(const Owner&) = delete;

    // The id of the series `spec` names (see the rules above); ALREADY_EXISTS
    // when the family exists with another kind, or (histograms)
    // when the series exists with other buckets, or when another owner of
    // the same model name and version (another tenant's) holds the series.
    StatusOr<uint64_t> Create(const CustomMetricSpec& spec);
    // kIncrement: counters (value >= 0) and gauges; kSet: gauges; kObserve:
    // histograms. INVALID_ARGUMENT otherwise (and for a NaN), NOT_FOUND for
    // an id this owner does not hold.
    Status Update(uint64_t id, CustomMetricOp op, double value);
    // A counter's or gauge's value, a histogram's sum.
    StatusOr<double> Value(uint64_t id) const;
    // Unknown ids are ignored.
    void Release(uint64_t id);

    const std::string& model() const { return model_; }
    const std::string& version() const { return version_; }

   private:
    friend class CustomMetrics;
    Owner(CustomMetrics* registry, std::string model, std::string version)
        : registry_(registry), model_(std::move(model)), version_(std::move(version)) {}
    void DropLocked(uint64_t id) MM_REQUIRES(registry_->mu_);
    CustomMetrics* const registry_;
    const std::string model_;
    const std::string version_;
    std::map<uint64_t, std::shared_ptr<Series>> ids_ MM_GUARDED_BY(registry_->mu_);
    uint64_t next_id_ MM_GUARDED_BY(registry_->mu_) = 1;
  };

  // The owner for one model version, whose series carry model=`model`,
  // version=`version`.
  std::unique_ptr<Owner> ForModel(std::string model, std::string version);

  // Appends every family with at least one series (a collector for MetricsServer).
  void Collect(MetricFamilies& out) const;
  // The families (tests).
  size_t family_count() const;

  // Checks of the rules above, for callers that check early (pb_utils).
  static Status CheckFamilyName(std::string_view name, size_t max_bytes);
  static Status CheckLabelName(std::string_view name, bool histogram, size_t max_bytes);

 private:
  Status CheckSpec(const CustomMetricSpec& spec) const;

  const Options options_;
  mutable Mutex mu_;
  std::map<std::string, std::unique_ptr<Family>, std::less<>> families_ MM_GUARDED_BY(mu_);
};

}  // namespace mm
