#include "observability/drift.h"

#include "core/small_float.h"

#include <simdjson.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

namespace mm {

static_assert(std::endian::native == std::endian::little, "tensor bytes are read as little-endian");

namespace {

namespace dom = simdjson::dom;

Status BaselineError(std::string_view source, std::string_view message) {
  return InvalidArgument("drift baseline " + std::string(source) + ": " + std::string(message));
}

std::string Quote(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string FeatureWhere(std::string_view input, size_t feature) {
  return "input " + Quote(input) + " feature " + std::to_string(feature);
}

// A JSON array of numbers into `out`; `what` names it in errors.
Status ParseNumbers(dom::element e, std::string_view what, std::vector<double>& out) {
  dom::array array;
  if (e.get_array().get(array)) return InvalidArgument(std::string(what) + " is not an array");
  // The file size cap bounds the array; a feature has at most kMaxBins values
  // (checked after parsing), so stop reading far beyond that.
  constexpr size_t kReadLimit = DriftBaseline::kMaxBins + 1;
  for (dom::element v : array) {
    if (out.size() == kReadLimit) {
      return InvalidArgument(std::string(what) + " has more than " + std::to_string(kReadLimit) +
                             " values (at most " + std::to_string(DriftBaseline::kMaxBins) +
                             " bins)");
    }
    double d;
    if (v.get_double().get(d)) {
      return InvalidArgument(std::string(what) + " value " + std::to_string(out.size()) +
                             " is not a number");
    }
    out.push_back(d);
  }
  return OkStatus();
}

Status ParseFeature(dom::element e, std::string_view where, DriftBaseline::Feature& out) {
  dom::object object;
  if (e.get_object().get(object)) return InvalidArgument(std::string(where) + " is not an object");
  bool have_edges = false, have_expected = false;
  for (dom::key_value_pair field : object) {
    const std::string_view key = field.key;
    bool* seen;
    std::vector<double>* values;
    if (key == "edges") {
      seen = &have_edges;
      values = &out.edges;
    } else if (key == "expected") {
      seen = &have_expected;
      values = &out.expected;
    } else {
      return InvalidArgument(std::string(where) + ": unknown key " + Quote(key) +
                             " (a feature has 'edges' and 'expected')");
    }
    if (*seen) return InvalidArgument(std::string(where) + ": duplicate key " + Quote(key));
    *seen = true;
    MM_RETURN_IF_ERROR(ParseNumbers(field.value, std::string(where) + ": " + Quote(key), *values));
  }
  if (!have_edges) return InvalidArgument(std::string(where) + ": missing 'edges'");
  if (!have_expected) return InvalidArgument(std::string(where) + ": missing 'expected'");
  return OkStatus();
}

Status ParseInput(std::string_view name, dom::element e, DriftBaseline::Input& out) {
  const std::string where = "input " + Quote(name);
  dom::object object;
  if (e.get_object().get(object)) return InvalidArgument(where + " is not an object");
  out.name = std::string(name);
  bool have_features = false, have_rows = false;
  for (dom::key_value_pair field : object) {
    const std::string_view key = field.key;
    if (key == "rows") {
      if (have_rows) return InvalidArgument(where + ": duplicate key 'rows'");
      have_rows = true;
      uint64_t rows;
      if (field.value.get_uint64().get(rows)) {
        return InvalidArgument(where + ": 'rows' is not a non-negative integer");
      }
    } else if (key == "features") {
      if (have_features) return InvalidArgument(where + ": duplicate key 'features'");
      have_features = true;
      dom::array features;
      if (field.value.get_array().get(features)) {
        return InvalidArgument(where + ": 'features' is not an array");
      }
      for (dom::element f : features) {
        if (out.features.size() == DriftBaseline::kMaxFeaturesPerInput) {
          return InvalidArgument(where + " has more than " +
                                 std::to_string(DriftBaseline::kMaxFeaturesPerInput) +
                                 " features (the limit per input)");
        }
        MM_RETURN_IF_ERROR(
            ParseFeature(f, FeatureWhere(name, out.features.size()), out.features.emplace_back()));
      }
    } else {
      return InvalidArgument(where + ": unknown key " + Quote(key) +
                             " (an input has 'features' and optionally 'rows')");
    }
  }
  if (!have_features) return InvalidArgument(where + ": missing 'features'");
  return OkStatus();
}

// The whole document into bins and inputs; semantic checks come after.
Status ParseDocument(dom::element root, int& bins, std::vector<DriftBaseline::Input>& inputs) {
  dom::object object;
  if (root.get_object().get(object)) return InvalidArgument("the top level is not an object");
  bool have_version = false, have_bins = false, have_inputs = false, have_generator = false;
  for (dom::key_value_pair field : object) {
    const std::string_view key = field.key;
    auto once = [&](bool& seen) -> Status {
      if (seen) return InvalidArgument("duplicate key " + Quote(key));
      seen = true;
      return OkStatus();
    };
    if (key == "version") {
      MM_RETURN_IF_ERROR(once(have_version));
      int64_t version;
      if (field.value.get_int64().get(version) || version != DriftBaseline::kVersion) {
        return InvalidArgument("'version' is " + simdjson::minify(field.value) +
                               "; this server reads version " +
                               std::to_string(DriftBaseline::kVersion));
      }
    } else if (key == "bins") {
      MM_RETURN_IF_ERROR(once(have_bins));
      int64_t b;
      if (field.value.get_int64().get(b) || b < 1 || b > DriftBaseline::kMaxBins) {
        return InvalidArgument("'bins' is " + simdjson::minify(field.value) +
                               "; it must be an integer from 1 to " +
                               std::to_string(DriftBaseline::kMaxBins));
      }
      bins = static_cast<int>(b);
    } else if (key == "generator") {
      MM_RETURN_IF_ERROR(once(have_generator));
      if (!field.value.is_string()) return InvalidArgument("'generator' is not a string");
    } else if (key == "inputs") {
      MM_RETURN_IF_ERROR(once(have_inputs));
      dom::object in;
      if (field.value.get_object().get(in)) {
        return InvalidArgument("'inputs' is not an object (input name -> features)");
      }
      for (dom::key_value_pair input : in) {
        if (inputs.size() == DriftBaseline::kMaxInputs) {
          return InvalidArgument("more than " + std::to_string(DriftBaseline::kMaxInputs) +
                                 " inputs (the limit)");
        }
        MM_RETURN_IF_ERROR(ParseInput(input.key, input.value, inputs.emplace_back()));
      }
    } else {
      return InvalidArgument("unknown key " + Quote(key) +
                             " (expected 'version', 'bins', 'inputs', 'generator')");
    }
  }
  if (!have_version) return InvalidArgument("missing 'version'");
  if (!have_bins) return InvalidArgument("missing 'bins'");
  if (!have_inputs) return InvalidArgument("missing 'inputs'");
  return OkStatus();
}

Status ValidateFeature(const DriftBaseline::Feature& f, int bins) {
  const size_t max_edges = static_cast<size_t>(bins) - 1;
  if (f.edges.size() > max_edges) {
    return InvalidArgument("'edges' has " + std::to_string(f.edges.size()) +
                           " values but 'bins' is " + std::to_string(bins) + " (at most " +
                           std::to_string(max_edges) + " edges)");
  }
  if (f.expected.size() != f.edges.size() + 1) {
    return InvalidArgument("'expected' has " + std::to_string(f.expected.size()) +
                           " values but 'edges' has " + std::to_string(f.edges.size()) +
                           " (expected " + std::to_string(f.edges.size() + 1) + ")");
  }
  for (size_t i = 0; i < f.edges.size(); ++i) {
    if (!std::isfinite(f.edges[i])) {
      return InvalidArgument("edge " + std::to_string(i) + " is not finite");
    }
    if (i > 0 && !(f.edges[i - 1] < f.edges[i])) {
      return InvalidArgument("'edges' are not strictly ascending at edge " + std::to_string(i) +
                             " (" + std::to_string(f.edges[i - 1]) + " then " +
                             std::to_string(f.edges[i]) + ")");
    }
  }
  double sum = 0;
  for (size_t i = 0; i < f.expected.size(); ++i) {
    const double e = f.expected[i];
    if (!std::isfinite(e) || e < 0) {
      return InvalidArgument("expected fraction " + std::to_string(i) + " (" + std::to_string(e) +
                             ") is not a finite non-negative number");
    }
    sum += e;
  }
  if (std::abs(sum - 1.0) > DriftBaseline::kExpectedSumTolerance) {
    return InvalidArgument("'expected' sums to " + std::to_string(sum) + ", not 1");
  }
  return OkStatus();
}

// ------------------------------------------------------------ conversions

// (16-bit floats widen exactly: core/small_float.h.)
double HalfToDouble(uint16_t h) { return HalfToFloat(h); }
double Bf16ToDouble(uint16_t b) { return Bf16ToFloat(b); }

}  // namespace

// ------------------------------------------------------------ DriftBaseline

StatusOr<DriftBaseline> DriftBaseline::Parse(std::string_view json, std::string_view source_name) {
  if (json.size() > kMaxFileBytes) {
    return BaselineError(source_name, "the file is " + std::to_string(json.size()) +
                                          " bytes, over the limit of " +
                                          std::to_string(kMaxFileBytes) + " bytes");
  }
  dom::parser parser;
  dom::element root;
  // The view's allocation may end at its last byte: let simdjson copy it into
  // a padded buffer (baselines are small and parsed once per model load).
  const simdjson::error_code err = parser.parse(json.data(), json.size(), true).get(root);
  if (err == simdjson::UTF8_ERROR) return BaselineError(source_name, "the file is not valid UTF-8");
  if (err) {
    return BaselineError(source_name,
                         std::string("the JSON is invalid: ") + simdjson::error_message(err));
  }
  int bins = 0;
  std::vector<Input> inputs;
  Status status = ParseDocument(root, bins, inputs);
  if (!status.ok()) return BaselineError(source_name, status.message());
  return FromInputs(bins, std::move(inputs), source_name);
}

StatusOr<DriftBaseline> DriftBaseline::FromInputs(int bins, std::vector<Input> inputs,
                                                  std::string_view source_name) {
  if (bins < 1 || bins > kMaxBins) {
    return BaselineError(source_name, "'bins' is " + std::to_string(bins) +
                                          "; it must be an integer from 1 to " +
                                          std::to_string(kMaxBins));
  }
  if (inputs.empty()) return BaselineError(source_name, "'inputs' names no input");
  if (inputs.size() > kMaxInputs) {
    return BaselineError(source_name, std::to_string(inputs.size()) + " inputs; the limit is " +
                                          std::to_string(kMaxInputs));
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Input& input = inputs[i];
    for (size_t j = 0; j < i; ++j) {
      if (inputs[j].name == input.name) {
        return BaselineError(source_name, "input " + Quote(input.name) + " appears twice");
      }
    }
    if (input.features.empty()) {
      return BaselineError(source_name, "input " + Quote(input.name) + " has no features");
    }
    if (input.features.size() > kMaxFeaturesPerInput) {
      return BaselineError(source_name, "input " + Quote(input.name) + " has " +
                                            std::to_string(input.features.size()) +
                                            " features; the limit per input is " +
                                            std::to_string(kMaxFeaturesPerInput));
    }
    for (size_t f = 0; f < input.features.size(); ++f) {
      Status status = ValidateFeature(input.features[f], bins);
      if (!status.ok()) {
        return BaselineError(source_name, FeatureWhere(input.name, f) + ": " + status.message());
      }
    }
  }
  DriftBaseline baseline;
  baseline.bins_ = bins;
  baseline.inputs_ = std::move(inputs);
  return baseline;
}

size_t DriftBaseline::BinOf(std::span<const double> edges, double v) {
  return static_cast<size_t>(std::lower_bound(edges.begin(), edges.end(), v) - edges.begin());
}

const DriftBaseline::Input* DriftBaseline::FindInput(std::string_view name) const {
  for (const Input& input : inputs_) {
    if (input.name == name) return &input;
  }
  return nullptr;
}

// ------------------------------------------------------------ DriftMonitor

StatusOr<std::unique_ptr<DriftMonitor>> DriftMonitor::Create(DriftBaseline baseline,
                                                             Options options) {
  auto bad = [](std::string message) { return InvalidArgument("drift options: " + message); };
  if (options.sample_every < 1) return bad("sample_every must be at least 1");
  if (options.sub_windows < 2 || options.sub_windows > kMaxSubWindows) {
    return bad("sub_windows is " + std::to_string(options.sub_windows) + "; it must be from 2 to " +
               std::to_string(kMaxSubWindows));
  }
  if (options.window_rows < options.sub_windows || options.window_rows > kMaxWindowRows) {
    return bad("window_rows is " + std::to_string(options.window_rows) + "; it must be from " +
               "sub_windows (" + std::to_string(options.sub_windows) + ") to " +
               std::to_string(kMaxWindowRows));
  }
  if (!std::isfinite(options.threshold) || options.threshold <= 0) {
    return bad("threshold is " + std::to_string(options.threshold) +
               "; it must be a positive number");
  }
  const uint64_t per_sub = options.window_rows / options.sub_windows;
  const uint64_t kept = (options.sub_windows - 1) * per_sub + 1;
  if (options.min_rows < 1 || options.min_rows > kept) {
    return bad("min_rows is " + std::to_string(options.min_rows) + "; it must be from 1 to " +
               std::to_string(kept) + " (the rows the window keeps right after it slides)");
  }
  uint64_t bytes = 0;
  for (const DriftBaseline::Input& input : baseline.inputs()) {
    uint64_t bins = 0;
    for (const DriftBaseline::Feature& f : input.features) bins += f.expected.size();
    const uint64_t features = input.features.size();
    bytes += options.sub_windows * (bins + features) * sizeof(uint32_t) +
             (bins + features) * sizeof(uint64_t) + bins * 3 * sizeof(double);
  }
  if (bytes > kMaxWindowBytes) {
    return bad("the drift window would take " + std::to_string(bytes >> 20) +
               " MiB, over the limit of " + std::to_string(kMaxWindowBytes >> 20) +
               " MiB: lower sub_windows or the baseline's features and bins");
  }
  return std::unique_ptr<DriftMonitor>(new DriftMonitor(std::move(baseline), options));
}

DriftMonitor::DriftMonitor(DriftBaseline baseline, Options options)
    : baseline_(std::move(baseline)),
      options_(options),
      rows_per_sub_(options.window_rows / options.sub_windows) {
  const size_t subs = options_.sub_windows;
  inputs_.reserve(baseline_.inputs().size());
  for (const DriftBaseline::Input& input : baseline_.inputs()) {
    InputState& s = inputs_.emplace_back();
    s.baseline = &input;
    const size_t features = input.features.size();
    s.bin_offset.reserve(features + 1);
    s.edge_offset.reserve(features + 1);
    for (const DriftBaseline::Feature& f : input.features) {
      s.bin_offset.push_back(static_cast<uint32_t>(s.total_bins));
      s.edge_offset.push_back(static_cast<uint32_t>(s.edges.size()));
      s.edges.insert(s.edges.end(), f.edges.begin(), f.edges.end());
      for (double e : f.expected) {
        const double floored = std::max(e, kPsiEpsilon);
        s.expected.push_back(floored);
        s.log_expected.push_back(std::log(floored));
      }
      s.total_bins += f.expected.size();
    }
    s.bin_offset.push_back(static_cast<uint32_t>(s.total_bins));
    s.edge_offset.push_back(static_cast<uint32_t>(s.edges.size()));
    s.counts.assign(subs * s.total_bins, 0);
    s.nans.assign(subs * features, 0);
    s.sub_rows.assign(subs, 0);
    s.total.assign(s.total_bins, 0);
    s.total_nans.assign(features, 0);
    s.alerting.assign(features, 0);
  }
}

void DriftMonitor::Mismatch(std::string why) {
  mismatches_.fetch_add(1, std::memory_order_relaxed);
  MutexLock lock(mu_);
  last_mismatch_ = std::move(why);
}

void DriftMonitor::AdvanceIfFull(InputState& s) {
  if (s.sub_rows[s.current] < rows_per_sub_) return;
  s.current = (s.current + 1) % options_.sub_windows;
  const size_t features = s.total_nans.size();
  uint32_t* hist = s.counts.data() + s.current * s.total_bins;
  for (size_t b = 0; b < s.total_bins; ++b) {
    s.total[b] -= hist[b];
    hist[b] = 0;
  }
  uint32_t* nans = s.nans.data() + s.current * features;
  for (size_t f = 0; f < features; ++f) {
    s.total_nans[f] -= nans[f];
    nans[f] = 0;
  }
  s.window_rows -= s.sub_rows[s.current];
  s.sub_rows[s.current] = 0;
}

template <typename T, typename Convert>
void DriftMonitor::BinRows(InputState& s, int64_t rows, const uint8_t* data, Convert convert) {
  const size_t features = s.total_nans.size();
  const double* edges = s.edges.data();
  for (int64_t r = 0; r < rows; ++r) {
    AdvanceIfFull(s);
    uint32_t* hist = s.counts.data() + s.current * s.total_bins;
    uint32_t* nans = s.nans.data() + s.current * features;
    for (size_t f = 0; f < features; ++f, data += sizeof(T)) {
      T raw;
      std::memcpy(&raw, data, sizeof(T));  // tensor bytes need not be aligned
      const double v = convert(raw);
      if (std::isnan(v)) {
        ++nans[f];
        ++s.total_nans[f];
        continue;
      }
      const double* first = edges + s.edge_offset[f];
      const double* last = edges + s.edge_offset[f + 1];
      const size_t bin =
          s.bin_offset[f] + static_cast<size_t>(std::lower_bound(first, last, v) - first);
      ++hist[bin];
      ++s.total[bin];
    }
    ++s.sub_rows[s.current];
    ++s.window_rows;
  }
}

void DriftMonitor::Observe(std::string_view input, DataType dtype, int64_t rows,
                           std::span<const uint8_t> data) {
  InputState* state = nullptr;
  for (InputState& s : inputs_) {
    if (s.baseline->name == input) {
      state = &s;
      break;
    }
  }
  // Messages are built on the mismatch paths only: no allocation otherwise.
  auto where = [input] { return "input " + Quote(input); };
  if (state == nullptr) return Mismatch(where() + " is not in the drift baseline");
  const size_t element_size = DataTypeSize(dtype);
  if (dtype == DataType::kBytes || element_size == 0) {
    return Mismatch(where() + ": " + std::string(DataTypeName(dtype)) + " values cannot be binned");
  }
  if (rows < 0) return Mismatch(where() + ": " + std::to_string(rows) + " rows");
  const size_t features = state->total_nans.size();
  const uint64_t row_bytes = features * element_size;
  if (rows == 0) {
    if (!data.empty()) {
      return Mismatch(where() + ": 0 rows but " + std::to_string(data.size()) + " bytes");
    }
    return;
  }
  const uint64_t n = static_cast<uint64_t>(rows);
  if (data.size() % n != 0 || data.size() / n != row_bytes) {
    if (data.size() % n == 0 && (data.size() / n) % element_size == 0) {
      return Mismatch(where() + ": rows of " + std::to_string(data.size() / n / element_size) +
                      " elements but the baseline has " + std::to_string(features) + " features");
    }
    return Mismatch(where() + ": " + std::to_string(data.size()) + " bytes are not " +
                    std::to_string(rows) + " rows of " + std::to_string(features) + " " +
                    std::string(DataTypeName(dtype)) + " features");
  }

  MutexLock lock(mu_);
  InputState& s = *state;
  const uint8_t* p = data.data();
  auto same = [](auto v) { return static_cast<double>(v); };
  switch (dtype) {
    case DataType::kBool:
      BinRows<uint8_t>(s, rows, p, [](uint8_t v) { return v != 0 ? 1.0 : 0.0; });
      break;
    case DataType::kUint8:
      BinRows<uint8_t>(s, rows, p, same);
      break;
    case DataType::kUint16:
      BinRows<uint16_t>(s, rows, p, same);
      break;
    case DataType::kUint32:
      BinRows<uint32_t>(s, rows, p, same);
      break;
    case DataType::kUint64:
      BinRows<uint64_t>(s, rows, p, same);
      break;
    case DataType::kInt8:
      BinRows<int8_t>(s, rows, p, same);
      break;
    case DataType::kInt16:
      BinRows<int16_t>(s, rows, p, same);
      break;
    case DataType::kInt32:
      BinRows<int32_t>(s, rows, p, same);
      break;
    case DataType::kInt64:
      BinRows<int64_t>(s, rows, p, same);
      break;
    case DataType::kFp16:
      BinRows<uint16_t>(s, rows, p, HalfToDouble);
      break;
    case DataType::kBf16:
      BinRows<uint16_t>(s, rows, p, Bf16ToDouble);
      break;
    case DataType::kFp32:
      BinRows<float>(s, rows, p, same);
      break;
    case DataType::kFp64:
      BinRows<double>(s, rows, p, same);
      break;
    case DataType::kBytes:
    case DataType::kInvalid:
      return;  // refused above
  }
  observed_rows_.fetch_add(n, std::memory_order_relaxed);
}

double DriftMonitor::Psi(const InputState& s, size_t feature, bool& ready) const {
  const uint64_t counted = s.window_rows - s.total_nans[feature];
  ready = counted >= options_.min_rows;
  if (!ready) return std::numeric_limits<double>::quiet_NaN();
  const double inv = 1.0 / static_cast<double>(counted);
  double psi = 0;
  for (size_t b = s.bin_offset[feature]; b < s.bin_offset[feature + 1]; ++b) {
    const double a = std::max(static_cast<double>(s.total[b]) * inv, kPsiEpsilon);
    psi += (a - s.expected[b]) * (std::log(a) - s.log_expected[b]);
  }
  return psi;
}

std::vector<DriftMonitor::FeatureDrift> DriftMonitor::Read() const {
  std::vector<FeatureDrift> out;
  MutexLock lock(mu_);
  for (const InputState& s : inputs_) {
    for (size_t f = 0; f < s.total_nans.size(); ++f) {
      FeatureDrift& d = out.emplace_back();
      d.input = s.baseline->name;
      d.feature = static_cast<int>(f);
      d.psi = Psi(s, f, d.ready);
      d.rows = s.window_rows;
      d.nans = s.total_nans[f];
      d.alerting = s.alerting[f] != 0;
    }
  }
  return out;
}

std::vector<DriftMonitor::Crossing> DriftMonitor::CheckThreshold() {
  std::vector<Crossing> out;
  MutexLock lock(mu_);
  for (InputState& s : inputs_) {
    for (size_t f = 0; f < s.total_nans.size(); ++f) {
      bool ready;
      const double psi = Psi(s, f, ready);
      if (!ready) continue;
      // Hysteresis: an alerting feature clears only once its PSI is well
      // below the threshold, so that a PSI hovering at it does not flap.
      const bool alerting = s.alerting[f] != 0;
      const bool above =
          alerting ? psi > options_.threshold * kClearFraction : psi > options_.threshold;
      if (above == alerting) continue;
      s.alerting[f] = above ? 1 : 0;
      out.push_back({s.baseline->name, static_cast<int>(f), psi, above});
    }
  }
  return out;
}

std::vector<uint64_t> DriftMonitor::WindowCounts(std::string_view input, int feature) const {
  MutexLock lock(mu_);
  for (const InputState& s : inputs_) {
    if (s.baseline->name != input) continue;
    if (feature < 0 || static_cast<size_t>(feature) >= s.total_nans.size()) return {};
    const size_t f = static_cast<size_t>(feature);
    return std::vector<uint64_t>(s.total.begin() + s.bin_offset[f],
                                 s.total.begin() + s.bin_offset[f + 1]);
  }
  return {};
}

uint64_t DriftMonitor::sampled() const {
  uint64_t sampled = 0;  // per thread's shard: its calls 0, n, 2n, ... sampled
  calls_.VisitShards(0, [&](uint64_t calls) {
    sampled += calls / options_.sample_every + (calls % options_.sample_every != 0 ? 1 : 0);
  });
  return sampled;
}

std::string DriftMonitor::last_mismatch() const {
  MutexLock lock(mu_);
  return last_mismatch_;
}

}  // namespace mm
