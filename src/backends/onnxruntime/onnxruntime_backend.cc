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
#include "backends/registry.h"
#include "core/blocking_wait.h"
#include "core/bytes_tensor.h"
#include "repository/repository_file.h"

namespace mm {

namespace {

constexpr std::string_view kPlatform = OnnxRuntimeBackend::kPlatform;
constexpr std::string_view kBackendName = OnnxRuntimeBackend::kName;
constexpr std::string_view kDefaultModelFile = OnnxRuntimeBackend::kDefaultModelFile;
constexpr int kMaxThreads = 1024;  // per session; more is a typo, not a plan

// ------------------------------------------------------------ type mapping

std::optional<DataType> FromOnnx(ONNXTensorElementDataType type) {
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL:
      return DataType::kBool;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8:
      return DataType::kUint8;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16:
      return DataType::kUint16;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32:
      return DataType::kUint32;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64:
      return DataType::kUint64;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8:
      return DataType::kInt8;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16:
      return DataType::kInt16;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32:
      return DataType::kInt32;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64:
      return DataType::kInt64;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16:
      return DataType::kFp16;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT:
      return DataType::kFp32;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE:
      return DataType::kFp64;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING:
      return DataType::kBytes;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16:
      return DataType::kBf16;
    default:
      return std::nullopt;
  }
}

ONNXTensorElementDataType ToOnnx(DataType type) {
  switch (type) {
    case DataType::kBool:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL;
    case DataType::kUint8:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8;
    case DataType::kUint16:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16;
    case DataType::kUint32:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32;
    case DataType::kUint64:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64;
    case DataType::kInt8:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8;
    case DataType::kInt16:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16;
    case DataType::kInt32:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
    case DataType::kInt64:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
    case DataType::kFp16:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
    case DataType::kFp32:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
    case DataType::kFp64:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE;
    case DataType::kBytes:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING;
    case DataType::kBf16:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16;
    case DataType::kInvalid:
      break;
  }
  return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
}

// ONNX's spelling (TensorProto.DataType), for types mmserve cannot serve.
std::string OnnxElementName(ONNXTensorElementDataType type) {
  switch (static_cast<int>(type)) {
    case 0:
      return "UNDEFINED";
    case 14:
      return "COMPLEX64";
    case 15:
      return "COMPLEX128";
    case 17:
      return "FLOAT8E4M3FN";
    case 18:
      return "FLOAT8E4M3FNUZ";
    case 19:
      return "FLOAT8E5M2";
    case 20:
      return "FLOAT8E5M2FNUZ";
    case 21:
      return "UINT4";
    case 22:
      return "INT4";
    case 23:
      return "FLOAT4E2M1";
    default:
      return "element type " + std::to_string(static_cast<int>(type));
  }
}

std::string_view OnnxKindName(ONNXType type) {
  switch (type) {
    case ONNX_TYPE_SEQUENCE:
      return "a sequence";
    case ONNX_TYPE_MAP:
      return "a map";
    case ONNX_TYPE_OPAQUE:
      return "an opaque value";
    case ONNX_TYPE_SPARSETENSOR:
      return "a sparse tensor";
    case ONNX_TYPE_OPTIONAL:
      return "an optional";
    default:
      return "a value of unknown kind";
  }
}

// ------------------------------------------------------------ errors

std::string ModelLabel(std::string_view model) { return "model '" + std::string(model) + "'"; }

Status FromOrt(const Ort::Exception& e, std::string_view context) {
  std::string message = std::string(context) + ": onnxruntime: " + e.what();
  switch (e.GetOrtErrorCode()) {
    case ORT_INVALID_ARGUMENT:
    case ORT_NO_SUCHFILE:
    case ORT_NO_MODEL:
    case ORT_INVALID_PROTOBUF:
    case ORT_INVALID_GRAPH:
    case ORT_NOT_IMPLEMENTED:
    case ORT_MODEL_LOADED:
      return InvalidArgument(std::move(message));
    default:
      return Internal(std::move(message));
  }
}

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

// ------------------------------------------------------------ instance

// Output values of one Run, shared by the response tensors that point into
// them. Holds the session too: the values' memory comes from the session's
// allocator, which must outlive them (a response may outlive its model).
struct RunOutputs {
  std::shared_ptr<Ort::Session> session;  // declared first: destroyed last
  std::vector<Ort::Value> values;
};

class OrtInstance final : public ModelInstance {
 public:
  // `unbounded`: the graph's run time depends on its inputs' values
  // (InlineSafe said no); a run then says it may last (BlockingWait).
  OrtInstance(std::string model_name, std::shared_ptr<Ort::Session> session,
              const inference::ModelConfig& config, bool unbounded)
      : model_name_(std::move(model_name)),
        session_(std::move(session)),
        unbounded_(unbounded),
        cpu_(Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault)) {
    for (const auto& output : config.output()) output_names_.push_back(output.name());
    // A sequence model's state outputs, which its scheduler asks for (by name).
    for (const auto& state : config.sequence_batching().state()) {
      output_names_.push_back(state.output_name());
    }
    for (int i = 0; i < config.output_size(); ++i) {
      output_name_ptrs_.push_back(output_names_[i].c_str());
    }
  }

  Status Execute(const InferRequest& request, InferResponse& response) override {
    try {
      return Run(request, response);
    } catch (const Ort::Exception& e) {
      return FromOrt(e, ModelLabel(model_name_));
    } catch (const std::exception& e) {
      return Internal(ModelLabel(model_name_) + ": " + e.what());
    }
  }

 private:
  // May throw Ort::Exception or std::bad_alloc.
  Status Run(const InferRequest& request, InferResponse& response);
  StatusOr<Ort::Value> StringInput(const Tensor& input);
  static StatusOr<Tensor> StringOutput(std::string name, const Ort::Value& value,
                                       std::vector<int64_t> shape);

  // Constant after construction.
  const std::string model_name_;
  const std::shared_ptr<Ort::Session> session_;
  const bool unbounded_;
  const Ort::MemoryInfo cpu_;
  const Ort::RunOptions run_options_;
  // The config's outputs, in order, then a sequence model's state outputs.
  std::vector<std::string> output_names_;
  std::vector<const char*> output_name_ptrs_;  // the config's outputs, into output_names_
  Ort::AllocatorWithDefaultOptions allocator_;
  // Used by one Execute at a time, kept across runs so that a run allocates
  // none of them: aligned copies of misaligned inputs, the inputs' names and
  // values, the requested outputs' names.
  std::vector<std::byte> scratch_;  // operator new: 16-byte aligned
  std::vector<const char*> input_names_;
  std::vector<Ort::Value> input_values_;
  std::vector<const char*> requested_;
};

StatusOr<Ort::Value> OrtInstance::StringInput(const Tensor& input) {
  std::string what = "input '" + input.name + "'";
  MM_ASSIGN_OR_RETURN(int64_t count, ElementCount(input.shape, what));
  MM_ASSIGN_OR_RETURN(auto elements, SplitBytesTensor(input.data, count, what));
  Ort::Value value = Ort::Value::CreateTensor(allocator_, input.shape.data(), input.shape.size(),
                                              ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING);
  for (size_t i = 0; i < elements.size(); ++i) {
    char* dst = value.GetResizedStringTensorElementBuffer(i, elements[i].size());
    if (!elements[i].empty()) std::memcpy(dst, elements[i].data(), elements[i].size());
  }
  return value;
}

StatusOr<Tensor> OrtInstance::StringOutput(std::string name, const Ort::Value& value,
                                           std::vector<int64_t> shape) {
  const size_t count = value.GetTensorTypeAndShapeInfo().GetElementCount();
  auto buffer = std::make_shared<ByteBuffer>(4 * count + value.GetStringTensorDataLength());
  std::byte* out = buffer->bytes.get();
  size_t pos = 0;
  for (size_t i = 0; i < count; ++i) {
    const size_t len = value.GetStringTensorElementLength(i);
    if (len > UINT32_MAX || pos + 4 + len > buffer->size) {
      return Internal("output '" + name + "': string element " + std::to_string(i) +
                      " does not fit the BYTES layout");
    }
    const auto n = static_cast<uint32_t>(len);
    const unsigned char prefix[4] = {
        static_cast<unsigned char>(n), static_cast<unsigned char>(n >> 8),
        static_cast<unsigned char>(n >> 16), static_cast<unsigned char>(n >> 24)};
    std::memcpy(out + pos, prefix, 4);
    if (len > 0) value.GetStringTensorElement(len, i, out + pos + 4);
    pos += 4 + len;
  }
  Tensor tensor;
  tensor.name = std::move(name);
  tensor.dtype = DataType::kBytes;
  tensor.shape = std::move(shape);
  tensor.data = {out, pos};
  tensor.owner = std::move(buffer);
  return tensor;
}

namespace {
int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

Status OrtInstance::Run(const InferRequest& request, InferResponse& response) {
  // The stages' times (ExecutionTiming): preparing inputs, then the run,
  // then taking the outputs.
  const int64_t begin_ns = SteadyNs();
  // Inputs: views over the request's bytes; copies only when misaligned.
  alignas(16) static std::byte empty_data[16];  // for zero-byte inputs; never written
  const size_t input_count = request.inputs.size();
  std::vector<const char*>& input_names = input_names_;
  std::vector<Ort::Value>& input_values = input_values_;
  input_names.clear();
  input_values.clear();  // releases the last run's input values
  input_names.reserve(input_count);
  input_values.reserve(input_count);
  // Misaligned inputs (a binary section after a JSON header of any length) are
  // copied into this instance's scratch buffer, reused across requests.
  size_t scratch_needed = 0;
  for (const Tensor& input : request.inputs) {
    if (input.dtype != DataType::kBytes && !input.data.empty() &&
        reinterpret_cast<uintptr_t>(input.data.data()) % DataTypeSize(input.dtype) != 0) {
      scratch_needed += (input.data.size() + 15) & ~size_t{15};
    }
  }
  if (scratch_.size() < scratch_needed) scratch_.resize(scratch_needed);
  size_t scratch_used = 0;
  for (const Tensor& input : request.inputs) {
    input_names.push_back(input.name.c_str());
    if (input.dtype == DataType::kBytes) {
      MM_ASSIGN_OR_RETURN(Ort::Value value, StringInput(input));
      input_values.push_back(std::move(value));
      continue;
    }
    const ONNXTensorElementDataType type = ToOnnx(input.dtype);
    if (type == ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED) {
      return InvalidArgument(ModelLabel(model_name_) + " input '" + input.name +
                             "': invalid data type");
    }
    // ONNX Runtime only reads inputs; the const_cast is its API's, not a write.
    auto* data = const_cast<std::byte*>(input.data.data());
    if (input.data.empty()) {
      data = empty_data;
    } else if (reinterpret_cast<uintptr_t>(data) % DataTypeSize(input.dtype) != 0) {
      std::byte* copy = scratch_.data() + scratch_used;
      scratch_used += (input.data.size() + 15) & ~size_t{15};
      std::memcpy(copy, data, input.data.size());
      data = copy;
    }
    input_values.push_back(Ort::Value::CreateTensor(cpu_, data, input.data.size(),
                                                    input.shape.data(), input.shape.size(), type));
  }

  // Outputs: the requested ones, or every configured one.
  const char* const* output_names = output_name_ptrs_.data();
  size_t output_count = output_name_ptrs_.size();
  std::vector<const char*>& requested = requested_;
  requested.clear();
  if (!request.outputs.empty()) {
    requested.reserve(request.outputs.size());
    for (const RequestedOutput& output : request.outputs) {
      if (std::find(output_names_.begin(), output_names_.end(), output.name) ==
          output_names_.end()) {
        return InvalidArgument(ModelLabel(model_name_) + " has no output '" + output.name + "'");
      }
      requested.push_back(output.name.c_str());
    }
    output_names = requested.data();
    output_count = requested.size();
  }

  auto outputs = std::make_shared<RunOutputs>();
  outputs->session = session_;
  const int64_t run_ns = SteadyNs();
  response.timing.input_ns = run_ns - begin_ns;
  {
    // A run whose length its inputs decide (a Loop's trip count) may last
    // without end: if it drags on while other work waits, the execution
    // slots lend its slot to that work (the thread stays busy, the slot does
    // not): one model's long run never stalls the others.
    std::optional<BlockingWait> long_run;
    if (unbounded_) long_run.emplace();
    outputs->values = session_->Run(run_options_, input_names.data(), input_values.data(),
                                    input_count, output_names, output_count);
  }
  input_values.clear();  // views of the request's bytes: none outlives the run
  const int64_t ran_ns = SteadyNs();

  response.outputs.reserve(response.outputs.size() + output_count);
  for (size_t i = 0; i < output_count; ++i) {
    const Ort::Value& value = outputs->values[i];
    if (!value.IsTensor()) {
      return Internal(ModelLabel(model_name_) + " output '" + output_names[i] +
                      "' is not a tensor");
    }
    auto info = value.GetTensorTypeAndShapeInfo();
    std::optional<DataType> dtype = FromOnnx(info.GetElementType());
    if (!dtype) {
      return Internal(ModelLabel(model_name_) + " output '" + output_names[i] + "' has ONNX type " +
                      OnnxElementName(info.GetElementType()));
    }
    if (*dtype == DataType::kBytes) {
      MM_ASSIGN_OR_RETURN(Tensor tensor, StringOutput(output_names[i], value, info.GetShape()));
      response.outputs.push_back(std::move(tensor));
      continue;
    }
    Tensor& tensor = response.outputs.emplace_back();
    tensor.name = output_names[i];
    tensor.dtype = *dtype;
    tensor.shape = info.GetShape();
    const size_t bytes = info.GetElementCount() * DataTypeSize(*dtype);
    const auto* data = static_cast<const std::byte*>(value.GetTensorRawData());
    tensor.data = {data, bytes};
    // Graph inputs are never reused for outputs, but a response must not point
    // into the request (its body may be gone first): copy if it ever does.
    const auto begin = reinterpret_cast<uintptr_t>(data);
    const bool aliases_input =
        std::any_of(request.inputs.begin(), request.inputs.end(), [&](const Tensor& input) {
          const auto input_begin = reinterpret_cast<uintptr_t>(input.data.data());
          return bytes > 0 && begin < input_begin + input.data.size() &&
                 input_begin < begin + bytes;
        });
    if (aliases_input) {
      auto copy = std::make_shared<ByteBuffer>(bytes);
      std::memcpy(copy->bytes.get(), data, bytes);
      AttachBuffer(tensor, std::move(copy));
    } else {
      tensor.owner = outputs;
    }
  }
  response.timing.output_ns = SteadyNs() - ran_ns;
  return OkStatus();
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
        std::make_unique<OrtInstance>(spec.model_name, std::move(first), model->config, unbounded));
    for (int64_t i = 1; i < instances; ++i) {
      auto session = std::make_shared<Ort::Session>(*env, path.c_str(), options);
      model->instances.push_back(std::make_unique<OrtInstance>(spec.model_name, std::move(session),
                                                               model->config, unbounded));
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
