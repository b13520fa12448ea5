// libFuzzer target for drift baselines (a model's drift_baseline.json), the
// file the lifecycle reads when a model loads. Beyond "no crash, leak or UB":
// every rejection is INVALID_ARGUMENT with a message, and whatever parses
// satisfies the invariants the monitor relies on; a monitor made from it
// then bins the fuzz bytes as live input without trouble.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>

#include "observability/drift.h"

namespace {

void Check(bool cond, const char* what) {
  if (!cond) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 << 10) return 0;  // keep runs fast
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto baseline = mm::DriftBaseline::Parse(text, "fuzz.json");
  if (!baseline.ok()) {
    Check(baseline.status().code() == mm::StatusCode::kInvalidArgument,
          "a bad baseline is INVALID_ARGUMENT");
    Check(!baseline.status().message().empty(), "a rejection says why");
    return 0;
  }
  for (const auto& input : baseline->inputs()) {
    Check(!input.features.empty(), "an input has features");
    for (const auto& f : input.features) {
      Check(f.expected.size() == f.edges.size() + 1, "k edges, k+1 fractions");
      for (size_t i = 1; i < f.edges.size(); ++i) Check(f.edges[i - 1] < f.edges[i], "ascending");
      double sum = 0;
      for (double p : f.expected) {
        Check(p >= 0 && std::isfinite(p), "fractions are finite and non-negative");
        sum += p;
      }
      Check(std::fabs(sum - 1) <= 1.01e-3, "fractions add up to 1");
    }
  }
  mm::DriftMonitor::Options options;
  options.sample_every = 1;
  options.window_rows = 20;
  options.sub_windows = 2;
  options.min_rows = 1;
  auto monitor = mm::DriftMonitor::Create(*baseline, options);
  if (!monitor.ok()) return 0;  // (a window too large for these options)
  for (const auto& input : baseline->inputs()) {
    const size_t row_bytes = input.features.size() * sizeof(float);
    const int64_t rows = static_cast<int64_t>(size / row_bytes);
    (*monitor)->Observe(input.name, mm::DataType::kFp32, rows,
                        std::span<const uint8_t>(data, static_cast<size_t>(rows) * row_bytes));
  }
  for (const auto& f : (*monitor)->Read())
    Check(!f.ready || f.psi >= -1e-9, "PSI is never negative");
  (*monitor)->CheckThreshold();
  return 0;
}
