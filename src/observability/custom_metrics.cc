#include "observability/custom_metrics.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace mm {

struct CustomMetrics::Series {
  const Owner* owner = nullptr;  // the one owner whose ids name it
  std::string family;
  CustomMetricKind kind = CustomMetricKind::kCounter;
  MetricLabels labels;           // model, version, then the series' own, by name
  std::vector<double> bounds;    // histograms
  std::vector<uint64_t> counts;  // histograms: per bucket, one more for +Inf
  double value = 0;              // counter, gauge; histogram: the sum
  size_t refs = 0;               // ids naming it
};

struct CustomMetrics::Family {
  std::string description;
  CustomMetricKind kind = CustomMetricKind::kCounter;
  // By the series' labels (model, version and its own) in one string.
  std::map<std::string, std::shared_ptr<Series>> series;
};

namespace {

const char* KindName(CustomMetricKind kind) {
  switch (kind) {
    case CustomMetricKind::kCounter:
      return "counter";
    case CustomMetricKind::kGauge:
      return "gauge";
    case CustomMetricKind::kHistogram:
      return "histogram";
  }
  return "?";
}

bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t more = 0;
    if (c < 0x80) {
      more = 0;
    } else if ((c >> 5) == 0x6) {
      more = 1;
    } else if ((c >> 4) == 0xe) {
      more = 2;
    } else if ((c >> 3) == 0x1e) {
      more = 3;
    } else {
      return false;
    }
    if (more > s.size() - i - 1) return false;
    for (size_t k = 1; k <= more; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    }
    i += more + 1;
  }
  return true;
}

// One string for a label set ("\0"-separated: label values may hold anything else).
std::string LabelKey(const MetricLabels& labels) {
  std::string key;
  for (const auto& l : labels) {
    key += l.name;
    key += '\0';
    key += l.value;
    key += '\0';
  }
  return key;
}

}  // namespace

CustomMetrics::CustomMetrics(Options options) : options_(options) {}
CustomMetrics::~CustomMetrics() = default;

Status CustomMetrics::CheckFamilyName(std::string_view name, size_t max_bytes) {
  if (name.empty()) return InvalidArgument("a metric family needs a name; it is empty");
  if (name.size() > max_bytes) {
    return InvalidArgument("metric family name '" + std::string(name.substr(0, 32)) + "...' has " +
                           std::to_string(name.size()) + " bytes; the limit is " +
                           std::to_string(max_bytes));
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                    (i > 0 && c >= '0' && c <= '9');
    if (!ok) {
      return InvalidArgument(
          "metric family name '" + std::string(name) +
          "' is not a Prometheus metric name: expected [a-zA-Z_:][a-zA-Z0-9_:]*");
    }
  }
  for (std::string_view prefix : {"mmserve_", "process_"}) {
    if (name.starts_with(prefix)) {
      return InvalidArgument("metric family name '" + std::string(name) + "' starts with '" +
                             std::string(prefix) +
                             "', which the server's own metrics use; choose another name");
    }
  }
  return OkStatus();
}

Status CustomMetrics::CheckLabelName(std::string_view name, bool histogram, size_t max_bytes) {
  if (name.empty()) return InvalidArgument("a metric label needs a name; it is empty");
  if (name.size() > max_bytes) {
    return InvalidArgument("metric label name '" + std::string(name.substr(0, 32)) + "...' has " +
                           std::to_string(name.size()) + " bytes; the limit is " +
                           std::to_string(max_bytes));
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                    (i > 0 && c >= '0' && c <= '9');
    if (!ok) {
      return InvalidArgument("metric label name '" + std::string(name) +
                             "' is not a Prometheus label name: expected [a-zA-Z_][a-zA-Z0-9_]*");
    }
  }
  if (name.starts_with("__")) {
    return InvalidArgument("metric label name '" + std::string(name) +
                           "' starts with '__', which Prometheus reserves");
  }
  if (histogram && name == "le") {
    return InvalidArgument(
        "metric label name 'le' is reserved in a histogram (its buckets' bound)");
  }
  return OkStatus();
}

Status CustomMetrics::CheckSpec(const CustomMetricSpec& spec) const {
  MM_RETURN_IF_ERROR(CheckFamilyName(spec.family, options_.max_name_bytes));
  const std::string what = "metric family '" + spec.family + "'";
  if (spec.description.size() > options_.max_description_bytes) {
    return InvalidArgument(what + ": the description has " +
                           std::to_string(spec.description.size()) + " bytes; the limit is " +
                           std::to_string(options_.max_description_bytes));
  }
  if (!ValidUtf8(spec.description)) {
    return InvalidArgument(what + ": the description is not valid UTF-8");
  }
  const bool histogram = spec.kind == CustomMetricKind::kHistogram;
  if (spec.labels.size() > options_.max_labels) {
    return InvalidArgument(what + ": a metric with " + std::to_string(spec.labels.size()) +
                           " labels; the limit is " + std::to_string(options_.max_labels));
  }
  for (const auto& [name, value] : spec.labels) {
    MM_RETURN_IF_ERROR(CheckLabelName(name, histogram, options_.max_name_bytes).WithContext(what));
    if (value.size() > options_.max_label_value_bytes) {
      return InvalidArgument(what + ": label '" + name + "' has a value of " +
                             std::to_string(value.size()) + " bytes; the limit is " +
                             std::to_string(options_.max_label_value_bytes));
    }
    if (!ValidUtf8(value)) {
      return InvalidArgument(what + ": the value of label '" + name + "' is not valid UTF-8");
    }
  }
  if (!histogram && !spec.buckets.empty()) {
    return InvalidArgument(what + ": buckets are for histograms; this family is a " +
                           KindName(spec.kind));
  }
  if (histogram) {
    if (spec.buckets.empty()) {
      return InvalidArgument(what + ": a histogram metric needs buckets (ascending upper bounds)");
    }
    if (spec.buckets.size() > options_.max_buckets) {
      return InvalidArgument(what + ": " + std::to_string(spec.buckets.size()) +
                             " buckets; the limit is " + std::to_string(options_.max_buckets));
    }
    for (size_t i = 0; i < spec.buckets.size(); ++i) {
      if (!std::isfinite(spec.buckets[i])) {
        return InvalidArgument(what + ": bucket bounds must be finite (+Inf is implied)");
      }
      if (i > 0 && !(spec.buckets[i] > spec.buckets[i - 1])) {
        return InvalidArgument(what + ": bucket bounds must be strictly ascending");
      }
    }
  }
  return OkStatus();
}

std::unique_ptr<CustomMetrics::Owner> CustomMetrics::ForModel(std::string model,
                                                              std::string version) {
  return std::unique_ptr<Owner>(new Owner(this, std::move(model), std::move(version)));
}

CustomMetrics::Owner::~Owner() {
  MutexLock lock(registry_->mu_);
  while (!ids_.empty()) DropLocked(ids_.begin()->first);
}

StatusOr<uint64_t> CustomMetrics::Owner::Create(const CustomMetricSpec& spec) {
  MM_RETURN_IF_ERROR(registry_->CheckSpec(spec));
  const std::string what = "metric family '" + spec.family + "'";
  MetricLabels labels;
  labels.push_back({"model", model_});
  labels.push_back({"version", version_});
  for (const auto& [name, value] : spec.labels) {
    // The owner's labels: a model may name them (Triton's examples do) only
    // with its own values.
    if (name == "model" || name == "version") {
      const std::string& own = name == "model" ? model_ : version_;
      if (value != own) {
        return InvalidArgument(what + ": label '" + name + "' is the server's: it is this " +
                               "model's " + (name == "model" ? "name" : "version") + " ('" + own +
                               "'), not '" + value + "'; leave it out");
      }
      continue;
    }
    labels.push_back({name, value});
  }
  std::sort(labels.begin(), labels.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  const std::string key = LabelKey(labels);

  MutexLock lock(registry_->mu_);
  if (ids_.size() >= registry_->options_.max_metrics_per_model) {
    return ResourceExhausted(what + ": model '" + model_ + "' version " + version_ + " holds " +
                             std::to_string(ids_.size()) +
                             " metrics, the limit per model; release some (Metric objects "
                             "that are no longer used)");
  }
  auto it = registry_->families_.find(spec.family);
  if (it == registry_->families_.end()) {
    if (registry_->families_.size() >= registry_->options_.max_families) {
      return ResourceExhausted(what + ": the server holds " +
                               std::to_string(registry_->families_.size()) +
                               " custom metric families, its limit");
    }
  } else {
    const Family& f = *it->second;
    if (f.kind != spec.kind) {
      return AlreadyExists(what + " exists as a " + KindName(f.kind) + "; this asks for a " +
                           KindName(spec.kind));
    }
    // Another description: the family keeps its first (as Triton does).
  }
  // Families this owner has series in.
  std::set<std::string_view> mine;
  for (const auto& entry : ids_) mine.insert(entry.second->family);
  if (!mine.count(spec.family) && mine.size() >= registry_->options_.max_families_per_model) {
    return ResourceExhausted(what + ": model '" + model_ + "' version " + version_ +
                             " has metrics in " + std::to_string(mine.size()) +
                             " families, the limit per model");
  }
  if (it == registry_->families_.end()) {
    auto family = std::make_unique<Family>();
    family->description = spec.description;
    family->kind = spec.kind;
    it = registry_->families_.emplace(spec.family, std::move(family)).first;
  }
  Family& family = *it->second;
  auto& slot = family.series[key];
  if (slot == nullptr) {
    slot = std::make_shared<Series>();
    slot->owner = this;
    slot->family = spec.family;
    slot->kind = spec.kind;
    slot->labels = std::move(labels);
    if (spec.kind == CustomMetricKind::kHistogram) {
      slot->bounds = spec.buckets;
      slot->counts.assign(spec.buckets.size() + 1, 0);
    }
  } else if (slot->owner != this) {
    return AlreadyExists(what + ": another model named '" + model_ + "' version " + version_ +
                         " (in another repository) already has a metric with these labels");
  } else if (spec.kind == CustomMetricKind::kHistogram && slot->bounds != spec.buckets) {
    return AlreadyExists(what +
                         ": this model has a histogram metric with these labels and "
                         "other buckets");
  }
  ++slot->refs;
  const uint64_t id = next_id_++;
  ids_.emplace(id, slot);
  return id;
}

Status CustomMetrics::Owner::Update(uint64_t id, CustomMetricOp op, double value) {
  if (std::isnan(value)) return InvalidArgument("a metric's value must be a number, not NaN");
  MutexLock lock(registry_->mu_);
  auto it = ids_.find(id);
  if (it == ids_.end()) {
    return NotFound("metric " + std::to_string(id) + " is not one of model '" + model_ +
                    "' (released, or never created)");
  }
  Series& s = *it->second;
  switch (op) {
    case CustomMetricOp::kIncrement:
      if (s.kind == CustomMetricKind::kHistogram) {
        return InvalidArgument("metric family '" + s.family +
                               "' is a histogram: it has observe(), not increment()");
      }
      if (s.kind == CustomMetricKind::kCounter && value < 0) {
        return InvalidArgument("metric family '" + s.family +
                               "' is a counter: it only goes up; increment by a value >= 0 "
                               "(got " +
                               std::to_string(value) + ")");
      }
      s.value += value;
      return OkStatus();
    case CustomMetricOp::kSet:
      if (s.kind != CustomMetricKind::kGauge) {
        return InvalidArgument("metric family '" + s.family + "' is a " + KindName(s.kind) +
                               ": only a gauge has set()");
      }
      s.value = value;
      return OkStatus();
    case CustomMetricOp::kObserve: {
      if (s.kind != CustomMetricKind::kHistogram) {
        return InvalidArgument("metric family '" + s.family + "' is a " + KindName(s.kind) +
                               ": only a histogram has observe()");
      }
      const size_t bucket =
          std::lower_bound(s.bounds.begin(), s.bounds.end(), value) - s.bounds.begin();
      ++s.counts[bucket];
      s.value += value;
      return OkStatus();
    }
  }
  return InvalidArgument("unknown metric operation " + std::to_string(static_cast<int>(op)));
}

StatusOr<double> CustomMetrics::Owner::Value(uint64_t id) const {
  MutexLock lock(registry_->mu_);
  auto it = ids_.find(id);
  if (it == ids_.end()) {
    return NotFound("metric " + std::to_string(id) + " is not one of model '" + model_ +
                    "' (released, or never created)");
  }
  return it->second->value;
}

void CustomMetrics::Owner::Release(uint64_t id) {
  MutexLock lock(registry_->mu_);
  DropLocked(id);
}

void CustomMetrics::Owner::DropLocked(uint64_t id) {
  auto it = ids_.find(id);
  if (it == ids_.end()) return;
  std::shared_ptr<Series> series = std::move(it->second);
  ids_.erase(it);
  if (--series->refs > 0) return;
  auto& families = registry_->families_;
  auto family = families.find(series->family);
  if (family == families.end()) return;
  family->second->series.erase(LabelKey(series->labels));
  if (family->second->series.empty()) families.erase(family);
}

void CustomMetrics::Collect(MetricFamilies& out) const {
  MutexLock lock(mu_);
  for (const auto& [name, family] : families_) {
    const auto type = family->kind == CustomMetricKind::kCounter ? prometheus::MetricType::Counter
                      : family->kind == CustomMetricKind::kGauge
                          ? prometheus::MetricType::Gauge
                          : prometheus::MetricType::Histogram;
    prometheus::MetricFamily& f = AddFamily(out, name, family->description, type);
    for (const auto& [key, series] : family->series) {
      (void)key;
      if (family->kind == CustomMetricKind::kHistogram) {
        AddHistogram(f, series->labels, series->bounds, series->counts, series->value);
      } else {
        AddValue(f, series->labels, series->value);
      }
    }
  }
}

size_t CustomMetrics::family_count() const {
  MutexLock lock(mu_);
  return families_.size();
}

}  // namespace mm
