// bench_torch_raw: the in-process libtorch baseline for bench/pytorch.sh.
//
// Loads a TorchScript module (torch::jit::load) and times `forward` with the
// settings the server's PyTorch backend uses by default (docs/pytorch.md):
// intra-op threads 1 (set on each running thread, as the backend does per
// execution), inter-op threads 1 (process-wide, once), InferenceMode,
// optimized execution on (torch::jit::setGraphExecutorOptimize(true)). Per
// call it does what the backend's instance does on the CPU: wrap the input
// bytes in a tensor with torch::from_blob (no copy), run `forward`, and make
// the output contiguous. Everything HTTP, scheduling and batching cost on top
// of this is mmserve's overhead.
//
//   bench_torch_raw [--seconds S] [--warmup-seconds S] [--threads T]
//                   [--batch B] --input-shape D,D,... MODEL.pt
//
// The module takes one FP32 input of shape [B, D, D, ...] (--input-shape is
// one row's shape); the bytes are a fixed ramp. --threads 1 (the default)
// reports forward's latency p50/p99 and single-thread throughput; --threads T
// runs T threads at once, each with its own copy of the module (like T model
// instances without weight sharing), and reports their combined throughput.
// One machine-readable line:
//
//   TORCH_RAW model=<dir name> threads=T batch=B runs=N p50_us=X p90_us=Y
//             p99_us=Z max_us=W rps=R rows_per_s=Q cpu_us_per_call=C
//
// (rps: forward calls per second, all threads; rows_per_s = rps x B;
// cpu_us_per_call: the measuring threads' CPU time, user + system, per call:
// unlike the wall-clock figures it does not grow when other processes take
// the CPU away, so it compares with a server's CPU time per request on a
// shared machine.)
#include <ATen/Parallel.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <time.h>

namespace {

using Clock = std::chrono::steady_clock;

struct Flags {
  double seconds = 3.0;
  double warmup_seconds = 1.0;
  int threads = 1;
  int64_t batch = 1;
  std::vector<int64_t> row_shape;  // --input-shape: one row's shape (without the batch)
  std::string model;
};

[[noreturn]] void Usage(const char* why) {
  std::fprintf(stderr,
               "bench_torch_raw: %s\nusage: bench_torch_raw [--seconds S] [--warmup-seconds S] "
               "[--threads T] [--batch B] --input-shape D,D,... MODEL.pt\n",
               why);
  std::exit(2);
}

Flags ParseFlags(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) Usage("a flag lacks its value");
      return argv[++i];
    };
    if (arg == "--seconds") {
      flags.seconds = std::atof(value());
    } else if (arg == "--warmup-seconds") {
      flags.warmup_seconds = std::atof(value());
    } else if (arg == "--threads") {
      flags.threads = std::atoi(value());
    } else if (arg == "--batch") {
      flags.batch = std::atoll(value());
    } else if (arg == "--input-shape") {
      const std::string list = value();
      for (size_t pos = 0; pos <= list.size();) {
        size_t end = list.find(',', pos);
        if (end == std::string::npos) end = list.size();
        flags.row_shape.push_back(std::atoll(list.substr(pos, end - pos).c_str()));
        pos = end + 1;
      }
    } else if (!arg.empty() && arg[0] == '-') {
      Usage("unknown flag");
    } else if (flags.model.empty()) {
      flags.model = arg;
    } else {
      Usage("one model at a time");
    }
  }
  if (flags.model.empty()) Usage("no model given");
  if (flags.row_shape.empty()) Usage("--input-shape is required");
  for (int64_t d : flags.row_shape) {
    if (d < 1) Usage("--input-shape needs positive dimensions, e.g. 3,64,64");
  }
  if (flags.threads < 1 || flags.batch < 1 || flags.seconds <= 0 || flags.warmup_seconds < 0) {
    Usage("bad flag value");
  }
  return flags;
}

// examples/models/<name>/1/model.pt -> <name>; a bare file names itself.
std::string ModelName(const std::string& path) {
  std::filesystem::path p(path);
  std::string name = p.parent_path().parent_path().filename().string();
  if (name.empty()) name = p.filename().string();
  return name;
}

int64_t ThreadCpuNs() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

struct ThreadResult {
  std::vector<double> latencies_us;
  int64_t cpu_ns = 0;  // the measured calls' CPU time
  float sink = 0;
  std::string error;  // what forward threw, if it did
};

// One forward as the backend's instance runs it on the CPU: the input is a
// view of existing bytes, the output is made contiguous before it is read.
float RunOnce(torch::jit::Module& module, float* input, const std::vector<int64_t>& shape) {
  std::vector<torch::jit::IValue> args;
  args.emplace_back(torch::from_blob(input, shape, torch::kFloat32));
  torch::Tensor out = module.forward(std::move(args)).toTensor().contiguous();
  return out.data_ptr<float>()[0];
}

void Worker(torch::jit::Module& module, const Flags& flags, Clock::time_point warm_until,
            Clock::time_point stop_at, ThreadResult& result) {
  try {
    at::set_num_threads(1);  // per thread, as the backend does on its execution threads
    torch::jit::setGraphExecutorOptimize(true);  // thread-local; the backend's default
    c10::InferenceMode inference_mode;
    std::vector<int64_t> shape{flags.batch};
    shape.insert(shape.end(), flags.row_shape.begin(), flags.row_shape.end());
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    std::vector<float> input(static_cast<size_t>(count));
    for (size_t k = 0; k < input.size(); ++k) input[k] = static_cast<float>(k % 17) * 0.0625f;
    // At least a few calls even with no warm-up time: the profiling executor
    // specializes the graph over its first runs.
    for (int i = 0; i < 3 || Clock::now() < warm_until; ++i) {
      result.sink += RunOnce(module, input.data(), shape);
    }
    result.latencies_us.reserve(1 << 18);
    const int64_t cpu_start = ThreadCpuNs();
    for (;;) {
      const auto start = Clock::now();
      if (start >= stop_at) break;
      result.sink += RunOnce(module, input.data(), shape);
      const auto end = Clock::now();
      result.latencies_us.push_back(std::chrono::duration<double, std::micro>(end - start).count());
    }
    result.cpu_ns = ThreadCpuNs() - cpu_start;
  } catch (const c10::Error& e) {
    result.error = e.what_without_backtrace();
  } catch (const std::exception& e) {
    result.error = e.what();
  }
}

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto index = static_cast<size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(index, sorted.size() - 1)];
}

int Bench(const Flags& flags) {
  // Process-wide, before any parallel work, as the backend does at creation.
  at::set_num_interop_threads(1);
  std::vector<std::unique_ptr<torch::jit::Module>> modules;
  for (int i = 0; i < flags.threads; ++i) {
    auto module = std::make_unique<torch::jit::Module>(torch::jit::load(flags.model));
    module->eval();
    modules.push_back(std::move(module));
  }
  std::vector<ThreadResult> results(static_cast<size_t>(flags.threads));
  const auto begin = Clock::now();
  const auto warm_until = begin + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(flags.warmup_seconds));
  const auto stop_at = warm_until + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(flags.seconds));
  std::vector<std::thread> threads;
  for (int t = 0; t < flags.threads; ++t) {
    const auto i = static_cast<size_t>(t);
    threads.emplace_back(Worker, std::ref(*modules[i]), std::cref(flags), warm_until, stop_at,
                         std::ref(results[i]));
  }
  for (auto& t : threads) t.join();

  std::vector<double> all;
  float sink = 0;
  int64_t cpu_ns = 0;
  for (auto& r : results) {
    if (!r.error.empty()) {
      std::fprintf(stderr, "bench_torch_raw: forward failed: %s\n", r.error.c_str());
      return 1;
    }
    all.insert(all.end(), r.latencies_us.begin(), r.latencies_us.end());
    sink += r.sink;
    cpu_ns += r.cpu_ns;
  }
  std::sort(all.begin(), all.end());
  // Measured time: from the end of the warm-up to the last call's end (a
  // call that started before stop_at may end after it).
  const double measured_s =
      std::max(flags.seconds, std::chrono::duration<double>(Clock::now() - warm_until).count());
  const double rps = static_cast<double>(all.size()) / measured_s;
  std::printf(
      "TORCH_RAW model=%s threads=%d batch=%lld runs=%zu p50_us=%.2f p90_us=%.2f p99_us=%.2f "
      "max_us=%.2f rps=%.1f rows_per_s=%.1f cpu_us_per_call=%.2f\n",
      ModelName(flags.model).c_str(), flags.threads, static_cast<long long>(flags.batch),
      all.size(), Percentile(all, 50), Percentile(all, 90), Percentile(all, 99),
      all.empty() ? 0.0 : all.back(), rps, rps * static_cast<double>(flags.batch),
      all.empty() ? 0.0 : static_cast<double>(cpu_ns) / 1e3 / static_cast<double>(all.size()));
  if (sink == 12345.678f) std::printf("(sink)\n");  // keeps the outputs observable
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Flags flags = ParseFlags(argc, argv);
  try {
    return Bench(flags);
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "bench_torch_raw: libtorch: %s\n", e.what_without_backtrace());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_torch_raw: %s\n", e.what());
  }
  return 1;
}
