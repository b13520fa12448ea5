// Input drift detection: how far a model's live inputs have moved from the
// inputs it was built for, per input feature, as a population stability index
// (PSI).
//
// A model may ship a baseline beside its config (drift_baseline.json, written
// by scripts/make_drift_baseline.py from sample inputs). The server samples
// requests (1 in N), bins each sampled input's values into a sliding window of
// per-feature histograms, and compares the window with the baseline:
//
//   PSI = Σ_i (a_i − e_i) · ln(a_i / e_i)
//
// over the feature's bins, with a_i the window's fraction of the feature's
// values in bin i and e_i the baseline's. Both fractions are floored at
// kPsiEpsilon (1e-4) first, so an empty bin gives a large but finite term.
// Rule of thumb: < 0.1 no real shift, 0.1–0.2 moderate, > 0.2 significant.
//
// ## Baseline file format (version 1)
//
//   {
//     "version": 1,
//     "bins": 10,
//     "generator": "make_drift_baseline.py",        // optional, ignored
//     "inputs": {
//       "INPUT0": {
//         "rows": 5000,                               // optional: sample rows used
//         "features": [
//           {"edges": [-1.28, -0.84, ...], "expected": [0.1, 0.1, ...]},
//           ...
//         ]
//       }
//     }
//   }
//
// - A row is one input without its batch dimension, flattened row-major;
//   feature j of an input is the j-th element of every row. The number of
//   features must equal the elements per row of the live input.
// - "bins" (1..kMaxBins) is the most bins any feature has; a feature may have
//   fewer (the tool merges bins whose cut points coincide).
// - "edges": k−1 finite cut points, strictly ascending; "expected": k
//   non-negative fractions summing to 1 (±1e-3). Value v falls in bin
//   i = the number of edges < v (BinOf): bin i holds (edges[i−1], edges[i]],
//   upper bound inclusive; bin 0 is everything ≤ edges[0], the last bin
//   everything above edges[k−2]. −Inf and +Inf fall in the first and last bin;
//   NaN falls in none (it is counted apart).
// - At most kMaxInputs inputs and kMaxFeaturesPerInput features per input.
//   Unknown keys are errors (the version says what a file may contain).
//
// Values of every numeric type are compared as double: INT64/UINT64 values
// beyond 2^53 round to the nearest double, as numpy's astype(float64) does,
// so the tool and the server bin the same value into the same bin.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/data_type.h"
#include "core/sharded_counters.h"
#include "core/status.h"
#include "core/thread_annotations.h"

namespace mm {

// A parsed, validated baseline. Immutable value; copy or move freely.
class DriftBaseline {
 public:
  static constexpr int kVersion = 1;
  static constexpr int kMaxBins = 100;
  static constexpr size_t kMaxFeaturesPerInput = 4096;
  static constexpr size_t kMaxInputs = 64;
  static constexpr size_t kMaxFileBytes = 64u << 20;
  static constexpr double kExpectedSumTolerance = 1e-3;

  struct Feature {
    std::vector<double> edges;     // ascending cut points, size k-1
    std::vector<double> expected;  // baseline fraction per bin, size k
  };
  struct Input {
    std::string name;
    std::vector<Feature> features;
  };

  // Parses and validates a baseline file's text. `source_name` (the file's
  // path) starts every error message: "drift baseline m/drift_baseline.json:
  // input 'x' feature 3: 'expected' has 9 values but 'edges' has 9 (expected
  // 10)". INVALID_ARGUMENT for any malformed or out-of-bounds content.
  static StatusOr<DriftBaseline> Parse(std::string_view json, std::string_view source_name);

  // Validates a baseline built in code (the same checks as Parse, the same
  // messages).
  static StatusOr<DriftBaseline> FromInputs(int bins, std::vector<Input> inputs,
                                            std::string_view source_name);

  // The bin of `v` given ascending `edges`: the number of edges < v
  // (numpy: searchsorted(edges, v, side='left')). Not meaningful for NaN.
  static size_t BinOf(std::span<const double> edges, double v);

  int bins() const { return bins_; }
  const std::vector<Input>& inputs() const { return inputs_; }
  // nullptr when the baseline does not cover `name`.
  const Input* FindInput(std::string_view name) const;

 private:
  int bins_ = 0;
  std::vector<Input> inputs_;
};

// Keeps the sliding window of live histograms for one model and computes PSI
// against its baseline.
//
// Window: each input has a ring of `sub_windows` histograms holding
// sub_rows = window_rows / sub_windows rows each. Rows go into the current
// one; when it is full and another row arrives, the oldest is cleared and
// becomes current. The window therefore holds the latest
// (sub_windows−1)·sub_rows + 1 … sub_windows·sub_rows rows of that input:
// count-based and deterministic, no clock. Memory: about
// (4·sub_windows + 32) bytes per bin of every feature, capped at
// kMaxWindowBytes (defaults, 4096 features of 10 bins: about 3 MiB).
//
// Thread-safety: every method may be called concurrently. ShouldSample is
// lock-free (one relaxed atomic increment, on the thread's own shard); Observe, Read and
// CheckThreshold take one internal mutex (only sampled requests reach Observe); the counters are
// relaxed atomics.
class DriftMonitor {
 public:
  static constexpr double kPsiEpsilon = 1e-4;
  // An alerting feature clears when its PSI falls to this fraction of the
  // threshold or below (hysteresis; see CheckThreshold).
  static constexpr double kClearFraction = 0.8;
  static constexpr size_t kMaxSubWindows = 1000;
  static constexpr uint64_t kMaxWindowRows = 1'000'000'000;  // counts are uint32
  static constexpr size_t kMaxWindowBytes = 256u << 20;

  struct Options {
    uint64_t sample_every = 100;   // observe 1 request in N (>= 1)
    uint64_t window_rows = 10000;  // rows the window covers (sub_windows..kMaxWindowRows)
    size_t sub_windows = 10;       // the window slides by window_rows/sub_windows rows
    double threshold = 0.2;        // PSI alert threshold (> 0); alerting when PSI > threshold
    // No PSI (NaN, ready=false) before a feature has this many non-NaN values
    // in the window. 1..(sub_windows−1)·sub_rows + 1, the rows the window
    // keeps right after it slides, so that a warmed-up feature never flips
    // back to not ready (unless NaN values push it below).
    uint64_t min_rows = 100;
  };

  // INVALID_ARGUMENT for out-of-range options (naming the option) or a
  // window over kMaxWindowBytes.
  static StatusOr<std::unique_ptr<DriftMonitor>> Create(DriftBaseline baseline, Options options);

  // The request-path check: true for 1 request in sample_every (the first
  // call included). One relaxed atomic increment and a compare; no lock.
  // Every sample_every-th call of each thread (calls are counted per thread,
  // core/sharded_counters.h: no cache line shared by the threads serving the
  // model), so over all threads one call in sample_every, give or take one
  // per thread.
  bool ShouldSample() { return calls_.FetchAddMine(0, 1) % options_.sample_every == 0; }

  // Bins one sampled request's input: `rows` rows (the batch dimension, or 1
  // for a non-batching model) of `data`, raw little-endian elements of
  // `dtype`, contiguous row-major. Each row's elements are its features.
  // FP16/BF16/FP32/FP64, INT8..INT64, UINT8..UINT64 and BOOL are binned.
  // An input the baseline does not name, an unsupported dtype (BYTES), a row
  // whose element count differs from the baseline's features, or a data size
  // other than rows × features × element size is ignored and counted in
  // mismatches() (last_mismatch() says why); it is never an error to the
  // request. Does not keep `data`. O(rows × features × log bins), no
  // allocation on the accepted path.
  void Observe(std::string_view input, DataType dtype, int64_t rows, std::span<const uint8_t> data);

  struct FeatureDrift {
    std::string input;
    int feature = 0;        // index within the input's row
    double psi = 0;         // NaN when !ready
    uint64_t rows = 0;      // rows of the input in the window
    uint64_t nans = 0;      // NaN values of this feature in the window (in no bin)
    bool ready = false;     // rows - nans >= min_rows
    bool alerting = false;  // as of the last CheckThreshold
  };
  // Every feature of every baseline input, in baseline order.
  std::vector<FeatureDrift> Read() const;

  struct Crossing {
    std::string input;
    int feature = 0;
    double psi = 0;
    bool above = false;  // true: rose above the threshold; false: fell back (hysteresis)
  };
  // For a background thread to call periodically: the features whose PSI
  // crossed the threshold since the previous call, each once, and records
  // their new alerting state. A feature starts alerting when its PSI rises
  // above the threshold, and stops when it falls to kClearFraction of it or
  // below. A feature that is not ready keeps its state.
  std::vector<Crossing> CheckThreshold();

  // The window's count per bin of one feature (NaN values excluded); empty
  // when the baseline has no such input or feature. For stats and tests.
  std::vector<uint64_t> WindowCounts(std::string_view input, int feature) const;

  uint64_t sampled() const;         // ShouldSample calls that returned true
  uint64_t observed_rows() const {  // rows binned, summed over inputs
    return observed_rows_.load(std::memory_order_relaxed);
  }
  uint64_t mismatches() const { return mismatches_.load(std::memory_order_relaxed); }
  std::string last_mismatch() const;  // "" when none yet

  const DriftBaseline& baseline() const { return baseline_; }
  const Options& options() const { return options_; }

  DriftMonitor(const DriftMonitor&) = delete;
  DriftMonitor& operator=(const DriftMonitor&) = delete;

 private:
  // One input's flattened feature layout and window.
  struct InputState {
    // Constant after construction.
    const DriftBaseline::Input* baseline = nullptr;  // into baseline_
    size_t total_bins = 0;
    std::vector<uint32_t> bin_offset;   // per feature: first bin in a histogram
    std::vector<double> edges;          // every feature's edges, back to back
    std::vector<uint32_t> edge_offset;  // per feature: first edge in `edges`
    std::vector<double> log_expected;   // per bin: ln(max(e, eps))
    std::vector<double> expected;       // per bin: max(e, eps)

    // Guarded by the monitor's mu_ (a nested struct's annotation cannot name
    // it; the members that touch them say MM_REQUIRES(mu_)).
    std::vector<uint32_t> counts;      // sub_windows histograms of total_bins, back to back
    std::vector<uint32_t> nans;        // sub_windows × features
    std::vector<uint64_t> sub_rows;    // rows per histogram
    std::vector<uint64_t> total;       // per bin: sum over the ring
    std::vector<uint64_t> total_nans;  // per feature: sum over the ring
    uint64_t window_rows = 0;          // sum of sub_rows
    size_t current = 0;                // histogram receiving rows
    std::vector<uint8_t> alerting;     // per feature
  };

  DriftMonitor(DriftBaseline baseline, Options options);
  void Mismatch(std::string why);
  // Moves to the next histogram when the current one is full.
  void AdvanceIfFull(InputState& state) MM_REQUIRES(mu_);
  template <typename T, typename Convert>
  void BinRows(InputState& state, int64_t rows, const uint8_t* data, Convert convert)
      MM_REQUIRES(mu_);
  // NaN when not ready.
  double Psi(const InputState& state, size_t feature, bool& ready) const MM_REQUIRES(mu_);

  // Constant after construction.
  const DriftBaseline baseline_;
  const Options options_;
  const uint64_t rows_per_sub_;

  ShardedCounters<1> calls_;
  std::atomic<uint64_t> observed_rows_{0};
  std::atomic<uint64_t> mismatches_{0};

  mutable Mutex mu_;
  // Per baseline input: the list is constant after construction, the
  // windows in it are guarded by mu_.
  std::vector<InputState> inputs_;
  std::string last_mismatch_ MM_GUARDED_BY(mu_);
};

}  // namespace mm
