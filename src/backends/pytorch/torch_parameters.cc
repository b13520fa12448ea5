#include "backends/pytorch/torch_parameters.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <string_view>

namespace mm {

namespace {

constexpr std::array<std::string_view, 10> kKeys = {
    "INFERENCE_MODE",        "DISABLE_OPTIMIZED_EXECUTION", "ENABLE_JIT_EXECUTOR",
    "ENABLE_JIT_PROFILING",  "ENABLE_TENSOR_FUSER",         "DISABLE_CUDNN",
    "INTRA_OP_THREAD_COUNT", "INTER_OP_THREAD_COUNT",       "ENABLE_CACHE_CLEANING",
    "ENABLE_WEIGHT_SHARING",
};

std::string Lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

StatusOr<bool> ParseBool(std::string_view key, const std::string& text) {
  const std::string value = Lower(text);
  if (value == "true" || value == "on" || value == "1") return true;
  if (value == "false" || value == "off" || value == "0") return false;
  return InvalidArgument("parameter '" + std::string(key) +
                         "' must be a boolean (true/on/1 or false/off/0), got '" + text + "'");
}

// A thread count; nullopt for a value <= 0 (the default stays).
StatusOr<std::optional<int>> ParseThreads(std::string_view key, const std::string& text) {
  long long value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || value > kMaxTorchThreads) {
    return InvalidArgument("parameter '" + std::string(key) + "' must be an integer of at most " +
                           std::to_string(kMaxTorchThreads) + " (<= 0 keeps the default), got '" +
                           text + "'");
  }
  if (value <= 0) return std::optional<int>();
  return std::optional<int>(static_cast<int>(value));
}

}  // namespace

std::string KnownTorchParameters() {
  std::string out;
  for (std::string_view key : kKeys) {
    if (!out.empty()) out += ", ";
    out += key;
  }
  return out;
}

StatusOr<TorchParameters> ParseTorchParameters(const inference::ModelConfig& config) {
  TorchParameters p;
  // In key order, so messages do not depend on the map's iteration order.
  std::vector<std::string> keys;
  for (const auto& [key, value] : config.parameters()) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  for (const std::string& key : keys) {
    const std::string& text = config.parameters().at(key).string_value();
    auto as_bool = [&](bool& out) -> Status {
      MM_ASSIGN_OR_RETURN(out, ParseBool(key, text));
      return OkStatus();
    };
    auto as_optional_bool = [&](std::optional<bool>& out) -> Status {
      MM_ASSIGN_OR_RETURN(bool value, ParseBool(key, text));
      out = value;
      return OkStatus();
    };
    if (key == "INFERENCE_MODE") {
      MM_RETURN_IF_ERROR(as_bool(p.inference_mode));
    } else if (key == "DISABLE_OPTIMIZED_EXECUTION") {
      MM_RETURN_IF_ERROR(as_bool(p.disable_optimized_execution));
    } else if (key == "ENABLE_JIT_EXECUTOR") {
      MM_RETURN_IF_ERROR(as_optional_bool(p.enable_jit_executor));
    } else if (key == "ENABLE_JIT_PROFILING") {
      MM_RETURN_IF_ERROR(as_optional_bool(p.enable_jit_profiling));
    } else if (key == "ENABLE_TENSOR_FUSER") {
      MM_RETURN_IF_ERROR(as_optional_bool(p.enable_tensor_fuser));
    } else if (key == "DISABLE_CUDNN") {
      MM_RETURN_IF_ERROR(as_bool(p.disable_cudnn));
    } else if (key == "ENABLE_CACHE_CLEANING") {
      MM_RETURN_IF_ERROR(as_bool(p.enable_cache_cleaning));
    } else if (key == "ENABLE_WEIGHT_SHARING") {
      MM_RETURN_IF_ERROR(as_bool(p.enable_weight_sharing));
    } else if (key == "INTRA_OP_THREAD_COUNT") {
      MM_ASSIGN_OR_RETURN(std::optional<int> threads, ParseThreads(key, text));
      if (threads) p.intra_op_threads = *threads;
    } else if (key == "INTER_OP_THREAD_COUNT") {
      MM_ASSIGN_OR_RETURN(p.inter_op_threads, ParseThreads(key, text));
    } else {
      p.warnings.push_back("unknown parameter '" + key +
                           "' is ignored; the PyTorch backend reads " + KnownTorchParameters());
    }
  }
  return p;
}

}  // namespace mm
