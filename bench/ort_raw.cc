// bench_ort_raw: the in-process ONNX Runtime baseline for bench/run.sh.
//
// Loads each model given on the command line with the session options mmserve
// uses by default (src/backends/onnxruntime/onnxruntime_backend.cc: intra-op 1,
// inter-op 1, sequential execution, graph optimization "all"), then times
// Session::Run at a fixed batch size. Per Run it does what the server's
// OrtInstance does: wrap the input bytes in Ort::Values (no copy) and let ONNX
// Runtime allocate the outputs. Everything HTTP, JSON and scheduling costs on
// top of this is mmserve's overhead.
//
//   bench_ort_raw [--seconds S] [--warmup-seconds S] [--threads T] [--batch B]
//                 [--shared-session] [--preallocated-outputs] MODEL.onnx...
//   bench_ort_raw --create-sessions N MODEL.onnx...
//
// --threads 1 (the default) reports Run latency p50/p99 and single-thread
// throughput. --threads T runs T threads at once, each with its own session
// (like T model instances; --shared-session makes them share one) and reports
// their combined throughput: the in-process ceiling a server on this machine
// cannot beat. Each model prints one machine-readable line:
//
//   ORT_RAW model=<dir name> threads=T batch=B runs=N p50_us=X p99_us=Y rps=Z
//
// --preallocated-outputs: each Run gets its outputs allocated by the caller
// (one buffer per Run, their shapes taken from a first Run) and passed to
// Run, as the server's OrtInstance does when the graph declares its output
// shapes (src/backends/onnxruntime/output_plan.h); the line then ends with
// outputs=preallocated instead of outputs=ort.
//
// --create-sessions N times session creation instead (bench/many_models.py:
// what an on-demand load cannot avoid): per model, one untimed session first
// (the process's first one pays ONNX Runtime's one-time set-up, which a
// running server has paid already), then N sessions created and destroyed one
// after another with the server's options, each creation timed alone:
//
//   ORT_CREATE model=<dir name> sessions=N p50_ms=X p90_ms=Y p99_ms=Z max_ms=W
#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Flags {
  double seconds = 3.0;
  double warmup_seconds = 0.5;
  int threads = 1;
  int64_t batch = 1;
  bool shared_session = false;
  bool preallocated_outputs = false;
  int create_sessions = 0;           // --create-sessions: time session creation, not Run
  std::vector<int64_t> input_shape;  // --input-shape: replaces the inputs' shapes
  std::vector<std::string> models;
};

[[noreturn]] void Usage(const char* why) {
  std::fprintf(stderr,
               "bench_ort_raw: %s\nusage: bench_ort_raw [--seconds S] [--warmup-seconds S] "
               "[--threads T] [--batch B] [--input-shape D,D,...] [--shared-session] "
               "[--preallocated-outputs] "
               "MODEL.onnx...\n       bench_ort_raw --create-sessions N MODEL.onnx...\n",
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
      std::string list = value();
      for (size_t pos = 0; pos <= list.size();) {
        size_t end = list.find(',', pos);
        if (end == std::string::npos) end = list.size();
        flags.input_shape.push_back(std::atoll(list.substr(pos, end - pos).c_str()));
        pos = end + 1;
      }
    } else if (arg == "--shared-session") {
      flags.shared_session = true;
    } else if (arg == "--preallocated-outputs") {
      flags.preallocated_outputs = true;
    } else if (arg == "--create-sessions") {
      flags.create_sessions = std::atoi(value());
      if (flags.create_sessions < 1) Usage("--create-sessions needs a count of at least 1");
    } else if (!arg.empty() && arg[0] == '-') {
      Usage("unknown flag");
    } else {
      flags.models.emplace_back(arg);
    }
  }
  if (flags.models.empty()) Usage("no model given");
  if (flags.threads < 1 || flags.batch < 1 || flags.seconds <= 0) Usage("bad flag value");
  return flags;
}

// The server's defaults (MakeSessionOptions with no config parameters; the
// server also names the session's log after the model, as log_id does here).
Ort::SessionOptions ServerSessionOptions(const char* log_id = nullptr) {
  Ort::SessionOptions options;
  options.SetIntraOpNumThreads(1);
  options.SetInterOpNumThreads(1);
  options.SetExecutionMode(ORT_SEQUENTIAL);
  options.SetGraphOptimizationLevel(ORT_ENABLE_ALL);
  if (log_id != nullptr) options.SetLogId(log_id);
  return options;
}

// examples/models/<name>/1/model.onnx -> <name>; a bare file names itself.
std::string ModelName(const std::string& path) {
  std::filesystem::path p(path);
  std::string name = p.parent_path().parent_path().filename().string();
  if (name.empty()) name = p.filename().string();
  return name;
}

size_t ElementSize(ONNXTensorElementDataType type) {
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32:
      return 4;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64:
      return 8;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16:
      return 2;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL:
      return 1;
    default:
      return 0;  // strings and the like: not benchmarked here
  }
}

// One model's inputs, read from the session: dynamic dimensions become the
// batch size (the first) or 1 (any other). Input bytes are small ramps.
struct Feed {
  std::vector<std::string> input_names;
  std::vector<std::string> output_names;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<ONNXTensorElementDataType> types;
  std::vector<std::vector<float>> buffers;  // float-aligned storage for any type
  std::vector<size_t> byte_sizes;
};

std::vector<int64_t> g_input_shape;  // from --input-shape; set once before any Worker

Feed MakeFeed(Ort::Session& session, int64_t batch) {
  Feed feed;
  Ort::AllocatorWithDefaultOptions allocator;
  for (size_t i = 0; i < session.GetInputCount(); ++i) {
    feed.input_names.emplace_back(session.GetInputNameAllocated(i, allocator).get());
    const Ort::TypeInfo type_info = session.GetInputTypeInfo(i);  // owns what info views
    auto info = type_info.GetTensorTypeAndShapeInfo();
    std::vector<int64_t> shape = info.GetShape();
    if (!g_input_shape.empty()) shape = g_input_shape;
    for (size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] < 0) shape[d] = d == 0 ? batch : 1;
    }
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    const size_t element = ElementSize(info.GetElementType());
    if (element == 0) {
      std::fprintf(stderr, "bench_ort_raw: input %zu has a type this program does not feed\n", i);
      std::exit(1);
    }
    const size_t bytes = static_cast<size_t>(count) * element;
    std::vector<float> buffer((bytes + sizeof(float) - 1) / sizeof(float));
    if (info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
      for (size_t k = 0; k < buffer.size(); ++k) buffer[k] = static_cast<float>(k % 17) * 0.25f;
    }
    feed.shapes.push_back(std::move(shape));
    feed.types.push_back(info.GetElementType());
    feed.buffers.push_back(std::move(buffer));
    feed.byte_sizes.push_back(bytes);
  }
  for (size_t i = 0; i < session.GetOutputCount(); ++i) {
    feed.output_names.emplace_back(session.GetOutputNameAllocated(i, allocator).get());
  }
  return feed;
}

// An output as the caller allocates it (--preallocated-outputs).
struct OutputSpec {
  std::vector<int64_t> shape;
  ONNXTensorElementDataType type;
  size_t bytes;
};

// One Run as OrtInstance::Run does it: input values wrap existing bytes, the
// outputs come back in values ONNX Runtime allocated, or, with `preallocated`,
// in one buffer this Run allocates. Returns an output byte so the work cannot
// be optimized away.
float RunOnce(Ort::Session& session, Feed& feed, const Ort::MemoryInfo& cpu,
              const std::vector<const char*>& in_names, const std::vector<const char*>& out_names,
              const std::vector<OutputSpec>* preallocated = nullptr) {
  static const Ort::RunOptions run_options;
  std::vector<Ort::Value> inputs;
  inputs.reserve(in_names.size());
  for (size_t i = 0; i < in_names.size(); ++i) {
    inputs.push_back(Ort::Value::CreateTensor(cpu, feed.buffers[i].data(), feed.byte_sizes[i],
                                              feed.shapes[i].data(), feed.shapes[i].size(),
                                              feed.types[i]));
  }
  if (preallocated != nullptr) {
    size_t total = 0;
    for (const OutputSpec& o : *preallocated) total += (o.bytes + 63) & ~size_t{63};
    auto buffer = std::make_unique_for_overwrite<std::byte[]>(total + 64);
    std::vector<Ort::Value> outputs;
    outputs.reserve(preallocated->size());
    size_t offset = 0;
    for (const OutputSpec& o : *preallocated) {
      outputs.push_back(Ort::Value::CreateTensor(cpu, buffer.get() + offset, o.bytes,
                                                 o.shape.data(), o.shape.size(), o.type));
      offset += (o.bytes + 63) & ~size_t{63};
    }
    session.Run(run_options, in_names.data(), inputs.data(), inputs.size(), out_names.data(),
                outputs.data(), outputs.size());
    return *reinterpret_cast<const float*>(buffer.get());
  }
  std::vector<Ort::Value> outputs = session.Run(run_options, in_names.data(), inputs.data(),
                                                inputs.size(), out_names.data(), out_names.size());
  return *static_cast<const float*>(outputs[0].GetTensorRawData());
}

// The outputs' shapes and types, from one Run.
std::vector<OutputSpec> OutputSpecs(Ort::Session& session, Feed& feed, const Ort::MemoryInfo& cpu,
                                    const std::vector<const char*>& in_names,
                                    const std::vector<const char*>& out_names) {
  static const Ort::RunOptions run_options;
  std::vector<Ort::Value> inputs;
  for (size_t i = 0; i < in_names.size(); ++i) {
    inputs.push_back(Ort::Value::CreateTensor(cpu, feed.buffers[i].data(), feed.byte_sizes[i],
                                              feed.shapes[i].data(), feed.shapes[i].size(),
                                              feed.types[i]));
  }
  std::vector<OutputSpec> specs;
  for (const Ort::Value& v : session.Run(run_options, in_names.data(), inputs.data(), inputs.size(),
                                         out_names.data(), out_names.size())) {
    auto info = v.GetTensorTypeAndShapeInfo();
    specs.push_back({info.GetShape(), info.GetElementType(),
                     info.GetElementCount() * ElementSize(info.GetElementType())});
  }
  return specs;
}

struct ThreadResult {
  std::vector<double> latencies_us;
  float sink = 0;
};

void Worker(Ort::Session& session, int64_t batch, bool preallocated_outputs,
            Clock::time_point warm_until, Clock::time_point stop_at, ThreadResult& result) {
  Feed feed = MakeFeed(session, batch);
  const Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  std::vector<const char*> in_names, out_names;
  for (const auto& n : feed.input_names) in_names.push_back(n.c_str());
  for (const auto& n : feed.output_names) out_names.push_back(n.c_str());
  std::vector<OutputSpec> specs;
  if (preallocated_outputs) specs = OutputSpecs(session, feed, cpu, in_names, out_names);
  const std::vector<OutputSpec>* pre = preallocated_outputs ? &specs : nullptr;
  while (Clock::now() < warm_until) {
    result.sink += RunOnce(session, feed, cpu, in_names, out_names, pre);
  }
  result.latencies_us.reserve(1 << 20);
  for (;;) {
    const auto start = Clock::now();
    if (start >= stop_at) break;
    result.sink += RunOnce(session, feed, cpu, in_names, out_names, pre);
    const auto end = Clock::now();
    result.latencies_us.push_back(std::chrono::duration<double, std::micro>(end - start).count());
  }
}

double Percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto index = static_cast<size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(index, sorted.size() - 1)];
}

void BenchModel(Ort::Env& env, const Flags& flags, const std::string& path) {
  const Ort::SessionOptions options = ServerSessionOptions();
  std::vector<std::unique_ptr<Ort::Session>> sessions;
  const int session_count = flags.shared_session ? 1 : flags.threads;
  for (int i = 0; i < session_count; ++i) {
    sessions.push_back(std::make_unique<Ort::Session>(env, path.c_str(), options));
  }
  std::vector<ThreadResult> results(static_cast<size_t>(flags.threads));
  const auto begin = Clock::now();
  const auto warm_until = begin + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(flags.warmup_seconds));
  const auto stop_at = warm_until + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(flags.seconds));
  std::vector<std::thread> threads;
  for (int t = 0; t < flags.threads; ++t) {
    Ort::Session& session = *sessions[flags.shared_session ? 0 : static_cast<size_t>(t)];
    threads.emplace_back(Worker, std::ref(session), flags.batch, flags.preallocated_outputs,
                         warm_until, stop_at, std::ref(results[static_cast<size_t>(t)]));
  }
  for (auto& t : threads) t.join();

  std::vector<double> all;
  float sink = 0;
  for (auto& r : results) {
    all.insert(all.end(), r.latencies_us.begin(), r.latencies_us.end());
    sink += r.sink;
  }
  std::sort(all.begin(), all.end());
  const double rps = static_cast<double>(all.size()) / flags.seconds;
  const std::string name = ModelName(path);
  std::printf(
      "ORT_RAW model=%s threads=%d batch=%lld sessions=%d runs=%zu p50_us=%.2f p90_us=%.2f "
      "p99_us=%.2f max_us=%.2f rps=%.1f outputs=%s\n",
      name.c_str(), flags.threads, static_cast<long long>(flags.batch), session_count, all.size(),
      Percentile(all, 50), Percentile(all, 90), Percentile(all, 99), all.empty() ? 0.0 : all.back(),
      rps, flags.preallocated_outputs ? "preallocated" : "ort");
  if (sink == 12345.678f) std::printf("(sink)\n");  // keeps the outputs observable
  std::fflush(stdout);
}

// --create-sessions: N sessions created (timed) and destroyed (not timed) in
// turn, as a server loading and evicting the same model over and over would.
void BenchCreate(Ort::Env& env, const Flags& flags, const std::string& path) {
  const std::string name = ModelName(path);
  const Ort::SessionOptions options = ServerSessionOptions(name.c_str());
  { Ort::Session first(env, path.c_str(), options); }  // one-time set-up, untimed
  std::vector<double> ms;
  ms.reserve(static_cast<size_t>(flags.create_sessions));
  for (int i = 0; i < flags.create_sessions; ++i) {
    const auto start = Clock::now();
    auto session = std::make_unique<Ort::Session>(env, path.c_str(), options);
    const auto end = Clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(end - start).count());
    session.reset();
  }
  std::sort(ms.begin(), ms.end());
  std::printf("ORT_CREATE model=%s sessions=%zu p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
              name.c_str(), ms.size(), Percentile(ms, 50), Percentile(ms, 90), Percentile(ms, 99),
              ms.back());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const Flags flags = ParseFlags(argc, argv);
  g_input_shape = flags.input_shape;
  try {
    // As the server: ONNX Runtime's telemetry off (see onnxruntime_backend.cc).
    setenv("ORT_DISABLE_TELEMETRY", "1", 0);
    Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "bench_ort_raw");
    env.DisableTelemetryEvents();
    for (const auto& model : flags.models) {
      if (flags.create_sessions > 0) {
        BenchCreate(env, flags, model);
      } else {
        BenchModel(env, flags, model);
      }
    }
  } catch (const Ort::Exception& e) {
    std::fprintf(stderr, "bench_ort_raw: ONNX Runtime: %s\n", e.what());
    return 1;
  }
  return 0;
}
