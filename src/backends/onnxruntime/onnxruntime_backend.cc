#include "backends/onnxruntime/onnxruntime_backend.h"

#include <fcntl.h>
#include <onnxruntime_cxx_api.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "backends/auto_complete.h"
#include "backends/model_file.h"
#include "backends/onnxruntime/onnx_graph_scan.h"
#include "backends/onnxruntime/ort_env.h"
#include "backends/onnxruntime/ort_instance.h"
#include "backends/onnxruntime/ort_types.h"
#include "backends/registry.h"
#include "repository/repository_file.h"

namespace mm {

namespace {

using ort::FromOnnx;
using ort::FromOrt;
using ort::ModelLabel;
using ort::OnnxElementName;
using ort::OnnxKindName;

constexpr std::string_view kPlatform = OnnxRuntimeBackend::kPlatform;
constexpr std::string_view kBackendName = OnnxRuntimeBackend::kName;
constexpr std::string_view kDefaultModelFile = OnnxRuntimeBackend::kDefaultModelFile;
constexpr int kMaxThreads = 1024;  // per session; more is a typo, not a plan

// ------------------------------------------------------------ session setup

StatusOr<int> IntParameter(const inference::ModelConfig& config, const std::string& key,
                           int fallback) {
  auto it = config.parameters().find(key);
  if (it == config.parameters().end()) return fallback;
  const std::string& text = it->second.string_value();
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0 || value > kMaxThreads) {
    return InvalidArgument(ModelLabel(config.name()) + ": parameter '" + key +
                           "' must be an integer in [0, " + std::to_string(kMaxThreads) +
                           "], got '" + text + "'");
  }
  return value;
}

StatusOr<GraphOptimizationLevel> OptimizationLevel(const inference::ModelConfig& config) {
  auto it = config.parameters().find("graph_optimization_level");
  if (it == config.parameters().end()) return ORT_ENABLE_ALL;
  const std::string& text = it->second.string_value();
  if (text == "disable") return ORT_DISABLE_ALL;
  if (text == "basic") return ORT_ENABLE_BASIC;
  if (text == "extended") return ORT_ENABLE_EXTENDED;
  if (text == "all") return ORT_ENABLE_ALL;
  return InvalidArgument(ModelLabel(config.name()) +
                         ": parameter 'graph_optimization_level' must be one of disable, basic, "
                         "extended, all; got '" +
                         text + "'");
}

// May throw Ort::Exception.
StatusOr<Ort::SessionOptions> MakeSessionOptions(const inference::ModelConfig& config,
                                                 const OnnxRuntimeBackend::Options& defaults) {
  MM_ASSIGN_OR_RETURN(int intra,
                      IntParameter(config, "intra_op_thread_count", defaults.intra_op_threads));
  MM_ASSIGN_OR_RETURN(int inter,
                      IntParameter(config, "inter_op_thread_count", defaults.inter_op_threads));
  MM_ASSIGN_OR_RETURN(GraphOptimizationLevel level, OptimizationLevel(config));
  Ort::SessionOptions options;
  options.SetIntraOpNumThreads(intra);
  options.SetInterOpNumThreads(inter);
  // Inter-op threads only matter when independent branches run in parallel.
  options.SetExecutionMode(inter > 1 ? ORT_PARALLEL : ORT_SEQUENTIAL);
  options.SetGraphOptimizationLevel(level);
  options.SetLogId(config.name().c_str());
  return options;
}

// The number of sessions to create: the instance groups' counts summed (a
// count of 0 means 1). ONNX Runtime runs here on the CPU only.
StatusOr<int64_t> InstanceCount(const inference::ModelConfig& config) {
  int64_t total = 0;
  for (const auto& group : config.instance_group()) {
    if (group.kind() == inference::ModelInstanceGroup::KIND_GPU) {
      return InvalidArgument(ModelLabel(config.name()) + ": instance_group '" + group.name() +
                             "' asks for KIND_GPU, but the onnxruntime backend runs on the CPU "
                             "only (use KIND_CPU or KIND_AUTO)");
    }
    if (group.count() < 0) {
      return InvalidArgument(ModelLabel(config.name()) + ": instance_group '" + group.name() +
                             "' has a negative count " + std::to_string(group.count()));
    }
    total += group.count() == 0 ? 1 : group.count();
  }
  return std::max<int64_t>(total, 1);
}

// Reads one input's or output's signature. May throw Ort::Exception.
StatusOr<ModelTensorSignature> ReadSignature(std::string_view model, std::string_view kind,
                                             std::string name, const Ort::TypeInfo& info) {
  std::string what = ModelLabel(model) + " " + std::string(kind) + " '" + name + "'";
  ONNXType onnx_type = info.GetONNXType();
  if (onnx_type != ONNX_TYPE_TENSOR) {
    return InvalidArgument(what + " is " + std::string(OnnxKindName(onnx_type)) +
                           "; mmserve serves tensors only");
  }
  auto tensor = info.GetTensorTypeAndShapeInfo();
  ONNXTensorElementDataType element = tensor.GetElementType();
  std::optional<DataType> dtype = FromOnnx(element);
  if (!dtype) {
    return InvalidArgument(what + " has ONNX type " + OnnxElementName(element) +
                           ", which has no KServe data type");
  }
  ModelTensorSignature signature{std::move(name), *dtype, tensor.GetShape()};
  for (int64_t& d : signature.dims) {
    if (d < 0) d = -1;  // symbolic or unknown
  }
  return signature;
}

// May throw Ort::Exception.
StatusOr<ModelSignature> ReadModelSignature(std::string_view model, const Ort::Session& session) {
  Ort::AllocatorWithDefaultOptions allocator;
  ModelSignature signature{"ONNX model", {}, {}};
  for (size_t i = 0; i < session.GetInputCount(); ++i) {
    MM_ASSIGN_OR_RETURN(
        ModelTensorSignature tensor,
        ReadSignature(model, "input", session.GetInputNameAllocated(i, allocator).get(),
                      session.GetInputTypeInfo(i)));
    signature.inputs.push_back(std::move(tensor));
  }
  for (size_t i = 0; i < session.GetOutputCount(); ++i) {
    MM_ASSIGN_OR_RETURN(
        ModelTensorSignature tensor,
        ReadSignature(model, "output", session.GetOutputNameAllocated(i, allocator).get(),
                      session.GetOutputTypeInfo(i)));
    signature.outputs.push_back(std::move(tensor));
  }
  return signature;
}

}  // namespace

// ------------------------------------------------------------ backend

StatusOr<std::unique_ptr<Backend>> OnnxRuntimeBackend::Create(const Options& options) {
  if (options.intra_op_threads < 0 || options.inter_op_threads < 0) {
    return InvalidArgument("onnxruntime backend: thread counts must be non-negative");
  }
  MM_ASSIGN_OR_RETURN(Ort::Env * env, SharedOrtEnv());
  WarmUpOrtRuntime(*env);
  return std::unique_ptr<Backend>(new OnnxRuntimeBackend(options));
}

namespace {

// Whether the graph in `path` runs in a time its inputs' sizes bound
// (onnx_graph_scan.h): only then may a small request run inline on an I/O
// thread. The file is read (not mapped: a tenant truncating its file under a
// mapping would fault the server) through one descriptor, its size taken
// from that descriptor. A file over kMaxScannedBytes is not scanned and not
// inline: a model that large does not run in the inline path's microseconds.
// A file that cannot be read is not either; ONNX Runtime then says what is
// wrong with it.
constexpr uint64_t kMaxScannedBytes = uint64_t{64} << 20;

bool InlineSafe(const std::filesystem::path& path, const std::string& label) {
  const int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st {};
  std::string bytes;
  bool read_whole = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
                    static_cast<uint64_t>(st.st_size) <= kMaxScannedBytes;
  if (read_whole) {
    bytes.resize(static_cast<size_t>(st.st_size));
    size_t got = 0;
    while (got < bytes.size()) {
      const ssize_t n = read(fd, bytes.data() + got, bytes.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    read_whole = got == bytes.size();
  }
  close(fd);
  if (!read_whole) return false;
  auto cost = ScanOnnxGraphCost({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
  if (!cost.ok()) return false;
  if (!cost->bounded_by_input_size) {
    spdlog::info(
        "{}: never runs inline on an I/O thread: its graph uses '{}', whose run time depends on "
        "its inputs' values",
        label, cost->unbounded_op);
  }
  return cost->bounded_by_input_size;
}

}  // namespace

StatusOr<std::unique_ptr<LoadedModel>> OnnxRuntimeBackend::Load(const LoadSpec& spec) {
  MM_ASSIGN_OR_RETURN(Ort::Env * env, SharedOrtEnv());
  const std::string label =
      ModelLabel(spec.model_name) + " version " + std::to_string(spec.version);
  inference::ModelConfig user = spec.config;
  if (user.name().empty()) user.set_name(spec.model_name);

  MM_ASSIGN_OR_RETURN(const std::filesystem::path path,
                      ModelFilePath(spec, kDefaultModelFile, label));

  try {
    MM_ASSIGN_OR_RETURN(Ort::SessionOptions options, MakeSessionOptions(user, options_));
    auto first = std::make_shared<Ort::Session>(*env, path.c_str(), options);
    MM_ASSIGN_OR_RETURN(ModelSignature signature, ReadModelSignature(spec.model_name, *first));
    auto model = std::make_unique<LoadedModel>();
    MM_ASSIGN_OR_RETURN(model->config, CompleteModelConfig(spec.model_name, std::move(user),
                                                           signature, kPlatform, kBackendName));
    MM_ASSIGN_OR_RETURN(int64_t instances, InstanceCount(model->config));
    model->inline_safe = InlineSafe(path, label);
    const bool unbounded = !model->inline_safe;
    model->instances.reserve(static_cast<size_t>(instances));
    model->instances.push_back(
        ort::MakeOrtInstance(spec.model_name, std::move(first), model->config, unbounded));
    for (int64_t i = 1; i < instances; ++i) {
      auto session = std::make_shared<Ort::Session>(*env, path.c_str(), options);
      model->instances.push_back(
          ort::MakeOrtInstance(spec.model_name, std::move(session), model->config, unbounded));
    }
    return model;
  } catch (const Ort::Exception& e) {
    return FromOrt(e, label + ": cannot load '" + path.string() + "'");
  } catch (const std::exception& e) {
    return Internal(label + ": cannot load '" + path.string() + "': " + e.what());
  }
}

Status RegisterOnnxRuntimeBackend(BackendRegistry& registry) {
  return registry.Register(
      {.name = std::string(kBackendName),
       .platforms = {std::string(kPlatform)},
       .default_model_file = std::string(kDefaultModelFile),
       .create = [](const BackendSettings&) { return OnnxRuntimeBackend::Create({}); },
       // Made at the first ONNX model, not at start: ONNX Runtime's
       // environment and warm-up keep ~14 MiB that a server with no ONNX
       // model (tree models only, say) would carry for nothing.
       .lazy = true});
}

}  // namespace mm
