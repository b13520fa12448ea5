#include "backends/fil/fil_config.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <optional>
#include <system_error>
#include <utility>

namespace mm::fil {

namespace {

struct TypeEntry {
  ModelType type;
  std::string_view name;
  std::string_view file;
};

// Triton FIL's model types and the file each loads from a version folder.
constexpr std::array<TypeEntry, 5> kTypes = {{
    {ModelType::kXGBoost, "xgboost", "xgboost.model"},
    {ModelType::kXGBoostJson, "xgboost_json", "xgboost.json"},
    {ModelType::kXGBoostUbj, "xgboost_ubj", "xgboost.ubj"},
    {ModelType::kLightGBM, "lightgbm", "model.txt"},
    {ModelType::kTreeliteCheckpoint, "treelite_checkpoint", "checkpoint.tl"},
}};

// Parameters FIL reads (or read before 25.09) that only tune its speed, and
// why each has no effect here. Accepted with one warning each.
constexpr std::string_view kNoCpuEffect =
    "it tunes FIL's GPU inference, and mmserve runs tree models on the CPU";
constexpr std::string_view kOneThread =
    "mmserve runs each execution on one thread; for parallelism add instances "
    "(instance_group count) or execution slots";
constexpr std::array<std::pair<std::string_view, std::string_view>, 9> kSpeedOnly = {{
    {"algo",
     "it chose FIL's GPU algorithm (removed in FIL 25.09), and mmserve runs tree models "
     "on the CPU"},
    {"threads_per_tree",
     "it tuned FIL's GPU inference (removed in FIL 25.09), and mmserve runs "
     "tree models on the CPU"},
    {"storage_type",
     "it chose FIL's GPU tree storage (removed in FIL 25.09), and mmserve runs "
     "tree models on the CPU"},
    {"blocks_per_sm",
     "it tuned FIL's GPU inference (removed in FIL 25.09), and mmserve runs "
     "tree models on the CPU"},
    {"layout", kNoCpuEffect},
    {"chunk_size", kNoCpuEffect},
    {"transfer_threshold", kNoCpuEffect},
    {"use_experimental_optimizations",
     "it chose FIL's experimental CPU path; mmserve runs each framework's own library"},
    {"cpu_nthread", kOneThread},
}};

constexpr std::array<std::string_view, 6> kRead = {"model_type",   "is_classifier",
                                                   "output_class", "predict_proba",
                                                   "threshold",    "xgboost_allow_unknown_field"};

std::string Quote(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string TypeList() {
  std::string list;
  for (const auto& entry : kTypes) {
    if (!list.empty()) list += ", ";
    list += entry.name;
  }
  return list;
}

const std::string* Find(const inference::ModelConfig& config, std::string_view key) {
  auto it = config.parameters().find(std::string(key));
  return it == config.parameters().end() ? nullptr : &it->second.string_value();
}

// FIL's bools: exactly "true" or "false".
StatusOr<std::optional<bool>> Bool(const inference::ModelConfig& config, std::string_view key) {
  const std::string* text = Find(config, key);
  if (text == nullptr) return std::optional<bool>();
  if (*text == "true") return std::optional<bool>(true);
  if (*text == "false") return std::optional<bool>(false);
  return InvalidArgument("parameter " + Quote(key) + " is " + Quote(*text) +
                         "; expected exactly 'true' or 'false' (as Triton's FIL backend)");
}

}  // namespace

std::string_view ModelTypeName(ModelType type) {
  for (const auto& entry : kTypes) {
    if (entry.type == type) return entry.name;
  }
  return "unknown";
}

std::string_view DefaultModelFileName(ModelType type) {
  for (const auto& entry : kTypes) {
    if (entry.type == type) return entry.file;
  }
  return "";
}

StatusOr<FilParameters> ParseFilParameters(const inference::ModelConfig& config) {
  FilParameters out;

  if (const std::string* text = Find(config, "model_type")) {
    bool known = false;
    for (const auto& entry : kTypes) {
      if (*text == entry.name) {
        out.model_type = entry.type;
        known = true;
      }
    }
    if (!known) {
      return InvalidArgument("parameter 'model_type' is " + Quote(*text) + "; expected one of " +
                             TypeList());
    }
  }

  // is_classifier, or its older name output_class; FIL takes either.
  MM_ASSIGN_OR_RETURN(std::optional<bool> is_classifier, Bool(config, "is_classifier"));
  MM_ASSIGN_OR_RETURN(std::optional<bool> output_class, Bool(config, "output_class"));
  if (is_classifier && output_class && *is_classifier != *output_class) {
    return InvalidArgument(
        "parameters 'is_classifier' (" + std::string(*is_classifier ? "true" : "false") +
        ") and 'output_class' (" + std::string(*output_class ? "true" : "false") +
        ") disagree; expected one of them (output_class is its older name), or both the same");
  }
  out.rule.output_class = is_classifier.value_or(output_class.value_or(false));

  MM_ASSIGN_OR_RETURN(std::optional<bool> proba, Bool(config, "predict_proba"));
  out.rule.predict_proba = proba.value_or(false);

  if (const std::string* text = Find(config, "threshold")) {
    float value = 0;
    // As FIL's istream reads it, but whole: "+0.5" is 0.5, "0.5x" is refused.
    const bool plus = text->starts_with('+') && text->size() > 1 && (*text)[1] != '-';
    const char* begin = text->data() + (plus ? 1 : 0);
    const char* last = text->data() + text->size();
    auto [end, ec] = std::from_chars(begin, last, value);
    if (ec != std::errc() || end != last || !std::isfinite(value)) {
      return InvalidArgument("parameter 'threshold' is " + Quote(*text) +
                             "; expected a finite number (the default is 0.5)");
    }
    out.rule.threshold = value;
  }

  MM_ASSIGN_OR_RETURN(std::optional<bool> unknown_field,
                      Bool(config, "xgboost_allow_unknown_field"));
  out.allow_unknown_field = unknown_field.value_or(false);

  // In name order (a protobuf map's order is unspecified), for stable logs.
  std::vector<std::string> keys;
  for (const auto& entry : config.parameters()) keys.push_back(entry.first);
  std::sort(keys.begin(), keys.end());
  std::string unread;
  for (const std::string& key : keys) {
    bool read = false;
    for (std::string_view k : kRead) read = read || key == k;
    if (read) continue;
    bool speed_only = false;
    for (const auto& [name, why] : kSpeedOnly) {
      if (key != name) continue;
      speed_only = true;
      out.warnings.push_back("parameter " + Quote(key) + " (" + Quote(*Find(config, key)) +
                             ") has no effect here: " + std::string(why));
    }
    if (!speed_only) unread += (unread.empty() ? "" : ", ") + Quote(key);
  }
  if (!unread.empty()) {
    out.warnings.push_back("the fil backend does not read parameter(s) " + unread +
                           " (ignored, as Triton's FIL backend ignores unknown keys)");
  }
  return out;
}

}  // namespace mm::fil
