// bench_fil_raw: the in-process XGBoost baseline for bench/fil.sh (issue 21).
//
// Opens libxgboost (the same file the FIL backend opens: build/fil.env's
// FIL_XGBOOST_LIBRARY, from PyPI's xgboost-cpu wheel) with dlopen, loads a
// model file with XGBoosterLoadModelFromBuffer, sets nthread=1 and times
// XGBoosterPredictFromDense on B rows taken from a file of FP32 rows
// (row-major, --features columns): the array-interface JSON points at the
// caller's bytes (no copy), the predictions are copied out, as the backend's
// engine does. Everything HTTP, scheduling and FIL's output rule cost on top
// of this is mmserve's overhead.
//
//   bench_fil_raw --library LIBXGBOOST.so --rows ROWS.f32 [--features 30]
//                 [--batch B] [--seconds S] [--warmup-seconds S]
//                 [--expected EXPECTED.f32] MODEL
//
// --expected: FP32 [B, 2] (1 - p, p) from xgboost's Python predict_proba of
// the same rows; the largest difference from this program's p is reported
// (a check that the C API is called as the framework calls it).
// One machine-readable line:
//
//   FIL_RAW batch=B runs=N p50_us=X p90_us=Y p99_us=Z max_us=W rps=R
//           rows_per_s=Q cpu_us_per_call=C max_abs_diff=D xgboost=V
//
// (cpu_us_per_call: the thread's CPU time per call, which, unlike the wall
// clock, does not grow when other processes take the CPU away.)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include <dlfcn.h>
#include <time.h>

namespace {

using Clock = std::chrono::steady_clock;

// XGBoost's C API (include/xgboost/c_api.h of XGBoost 3.2; the wheel has no
// headers): every call returns 0 on success, -1 with XGBGetLastError().
using BoosterHandle = void*;
using DMatrixHandle = void*;
using bst_ulong = uint64_t;
struct XgbApi {
  const char* (*GetLastError)();
  void (*Version)(int*, int*, int*);
  int (*BoosterCreate)(const DMatrixHandle[], bst_ulong, BoosterHandle*);
  int (*BoosterFree)(BoosterHandle);
  int (*BoosterLoadModelFromBuffer)(BoosterHandle, const void*, bst_ulong);
  int (*BoosterSetParam)(BoosterHandle, const char*, const char*);
  int (*BoosterPredictFromDense)(BoosterHandle, const char*, const char*, DMatrixHandle,
                                 const bst_ulong**, bst_ulong*, const float**);
};

struct Flags {
  std::string library;
  std::string rows;
  std::string expected;
  std::string model;
  int64_t features = 30;
  int64_t batch = 1;
  double seconds = 3.0;
  double warmup_seconds = 1.0;
};

[[noreturn]] void Usage(const char* why) {
  std::fprintf(stderr,
               "bench_fil_raw: %s\nusage: bench_fil_raw --library LIBXGBOOST.so --rows ROWS.f32 "
               "[--features F] [--batch B] [--seconds S] [--warmup-seconds S] "
               "[--expected EXPECTED.f32] MODEL\n",
               why);
  std::exit(2);
}

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "bench_fil_raw: %s\n", what.c_str());
  std::exit(1);
}

Flags ParseFlags(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) Usage("a flag lacks its value");
      return argv[++i];
    };
    if (arg == "--library") {
      flags.library = value();
    } else if (arg == "--rows") {
      flags.rows = value();
    } else if (arg == "--expected") {
      flags.expected = value();
    } else if (arg == "--features") {
      flags.features = std::atoll(value());
    } else if (arg == "--batch") {
      flags.batch = std::atoll(value());
    } else if (arg == "--seconds") {
      flags.seconds = std::atof(value());
    } else if (arg == "--warmup-seconds") {
      flags.warmup_seconds = std::atof(value());
    } else if (!arg.empty() && arg[0] == '-') {
      Usage("unknown flag");
    } else if (flags.model.empty()) {
      flags.model = arg;
    } else {
      Usage("one model at a time");
    }
  }
  if (flags.model.empty()) Usage("no model given");
  if (flags.library.empty()) Usage("--library is required (build/fil.env's FIL_XGBOOST_LIBRARY)");
  if (flags.rows.empty()) Usage("--rows is required");
  if (flags.features < 1 || flags.batch < 1 || flags.seconds <= 0 || flags.warmup_seconds < 0) {
    Usage("bad flag value");
  }
  return flags;
}

std::vector<char> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail("cannot read " + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

template <typename F>
void Sym(void* lib, const char* name, F& out) {
  void* p = dlsym(lib, name);
  if (p == nullptr) Fail(std::string("libxgboost has no symbol ") + name);
  out = reinterpret_cast<F>(p);
}

XgbApi OpenXgboost(const std::string& path) {
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) Fail("dlopen " + path + ": " + dlerror());
  XgbApi api{};
  Sym(lib, "XGBGetLastError", api.GetLastError);
  Sym(lib, "XGBoostVersion", api.Version);
  Sym(lib, "XGBoosterCreate", api.BoosterCreate);
  Sym(lib, "XGBoosterFree", api.BoosterFree);
  Sym(lib, "XGBoosterLoadModelFromBuffer", api.BoosterLoadModelFromBuffer);
  Sym(lib, "XGBoosterSetParam", api.BoosterSetParam);
  Sym(lib, "XGBoosterPredictFromDense", api.BoosterPredictFromDense);
  return api;
}

int64_t ThreadCpuNs() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto index = static_cast<size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(index, sorted.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  const Flags flags = ParseFlags(argc, argv);
  const XgbApi xgb = OpenXgboost(flags.library);
  auto check = [&](int rc, const char* what) {
    if (rc != 0) Fail(std::string(what) + ": " + xgb.GetLastError());
  };
  int major = 0, minor = 0, patch = 0;
  xgb.Version(&major, &minor, &patch);

  const std::vector<char> model = ReadFile(flags.model);
  BoosterHandle booster = nullptr;
  check(xgb.BoosterCreate(nullptr, 0, &booster), "XGBoosterCreate");
  check(xgb.BoosterLoadModelFromBuffer(booster, model.data(), model.size()),
        "XGBoosterLoadModelFromBuffer");
  check(xgb.BoosterSetParam(booster, "nthread", "1"), "XGBoosterSetParam nthread");

  const std::vector<char> bytes = ReadFile(flags.rows);
  const auto row_bytes = static_cast<size_t>(flags.features) * sizeof(float);
  if (bytes.size() < static_cast<size_t>(flags.batch) * row_bytes) {
    Fail(flags.rows + " holds fewer than --batch rows of --features FP32 values");
  }
  // The rows, in an aligned buffer of their own (a request's tensor bytes).
  std::vector<float> rows(static_cast<size_t>(flags.batch * flags.features));
  std::copy_n(bytes.data(), rows.size() * sizeof(float), reinterpret_cast<char*>(rows.data()));

  // As xgboost's Python inplace_predict: value predictions (type 0), the
  // caller's buffer through the array interface, NaN as missing, no proxy.
  char array_interface[256];
  std::snprintf(array_interface, sizeof(array_interface),
                "{\"data\":[%llu,true],\"shape\":[%lld,%lld],\"typestr\":\"<f4\",\"version\":3}",
                static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(rows.data())),
                static_cast<long long>(flags.batch), static_cast<long long>(flags.features));
  const char* config =
      "{\"type\":0,\"training\":false,\"iteration_begin\":0,\"iteration_end\":0,"
      "\"strict_shape\":false,\"missing\":NaN,\"cache_id\":0}";
  std::vector<float> out(static_cast<size_t>(flags.batch));
  auto predict = [&] {
    const bst_ulong* shape = nullptr;
    bst_ulong dim = 0;
    const float* result = nullptr;
    check(xgb.BoosterPredictFromDense(booster, array_interface, config, nullptr, &shape, &dim,
                                      &result),
          "XGBoosterPredictFromDense");
    bst_ulong n = 1;
    for (bst_ulong d = 0; d < dim; ++d) n *= shape[d];
    if (n != out.size()) Fail("XGBoosterPredictFromDense: unexpected output size");
    std::copy_n(result, out.size(), out.data());
  };

  double max_abs_diff = -1;
  if (!flags.expected.empty()) {
    predict();
    const std::vector<char> e = ReadFile(flags.expected);
    if (e.size() < out.size() * 2 * sizeof(float)) Fail(flags.expected + " is too short");
    const auto* proba = reinterpret_cast<const float*>(e.data());
    max_abs_diff = 0;
    for (size_t r = 0; r < out.size(); ++r) {
      max_abs_diff = std::max(max_abs_diff, std::fabs(double(out[r]) - double(proba[2 * r + 1])));
    }
  }

  const auto warm_until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(flags.warmup_seconds));
  for (int i = 0; i < 3 || Clock::now() < warm_until; ++i) predict();
  const auto stop_at = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(flags.seconds));
  std::vector<double> latencies_us;
  latencies_us.reserve(1 << 18);
  float sink = 0;
  const auto begin = Clock::now();
  const int64_t cpu_start = ThreadCpuNs();
  for (;;) {
    const auto start = Clock::now();
    if (start >= stop_at) break;
    predict();
    sink += out[0];
    latencies_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
  }
  const int64_t cpu_ns = ThreadCpuNs() - cpu_start;
  const double wall_s = std::chrono::duration<double>(Clock::now() - begin).count();
  check(xgb.BoosterFree(booster), "XGBoosterFree");

  std::sort(latencies_us.begin(), latencies_us.end());
  const double runs = static_cast<double>(latencies_us.size());
  const double rps = runs / wall_s;
  std::printf(
      "FIL_RAW batch=%lld runs=%zu p50_us=%.1f p90_us=%.1f p99_us=%.1f max_us=%.1f rps=%.1f "
      "rows_per_s=%.0f cpu_us_per_call=%.1f max_abs_diff=%.3g xgboost=%d.%d.%d\n",
      static_cast<long long>(flags.batch), latencies_us.size(), Percentile(latencies_us, 50),
      Percentile(latencies_us, 90), Percentile(latencies_us, 99),
      latencies_us.empty() ? 0.0 : latencies_us.back(), rps, rps * static_cast<double>(flags.batch),
      runs > 0 ? static_cast<double>(cpu_ns) / 1e3 / runs : 0.0, max_abs_diff, major, minor, patch);
  std::fprintf(stderr, "bench_fil_raw: sink %g\n", static_cast<double>(sink));
  return 0;
}
