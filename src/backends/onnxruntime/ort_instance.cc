#include "backends/onnxruntime/ort_instance.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "backends/aligned_inputs.h"
#include "backends/onnxruntime/ort_types.h"
#include "backends/onnxruntime/output_plan.h"
#include "core/blocking_wait.h"
#include "core/bytes_tensor.h"
#include "core/shape.h"

namespace mm::ort {
namespace {

int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A graph input or output as declared, for planning outputs (output_plan.h).
// May throw Ort::Exception.
DeclaredTensor Declare(std::string name, const Ort::TypeInfo& info) {
  DeclaredTensor tensor{std::move(name), {}, {}};
  if (info.GetONNXType() != ONNX_TYPE_TENSOR) return tensor;
  auto shape = info.GetTensorTypeAndShapeInfo();
  tensor.dims = shape.GetShape();
  std::vector<const char*> names(tensor.dims.size(), nullptr);
  shape.GetSymbolicDimensions(names.data(), names.size());
  for (const char* n : names) tensor.dim_names.emplace_back(n == nullptr ? "" : n);
  return tensor;
}

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
    PlanOutputs();
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
  // Fills planned_ from the session's declarations. May throw Ort::Exception.
  void PlanOutputs();
  // Runs with outputs this instance allocates, when every requested one is
  // planned and small; false (nothing added to `response`) when not, or when
  // ONNX Runtime refused the outputs (`refused` says why). May throw.
  bool RunPreallocated(const InferRequest& request, const char* const* output_names,
                       size_t output_count, InferResponse& response, std::string& refused);

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
  AlignedInputs aligned_;
  std::vector<const char*> input_names_;
  std::vector<Ort::Value> input_values_;
  std::vector<const char*> requested_;
  std::vector<size_t> requested_index_;  // into output_names_

  // Outputs ONNX Runtime writes into memory this instance allocates
  // (output_plan.h), one per output_names_ entry: its shape's plan and type.
  struct PlannedOutput {
    OutputShapePlan shape;
    ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    DataType dtype = DataType::kBytes;
  };
  std::vector<PlannedOutput> planned_;
  // Off for good once a model's declared output shape proved wrong.
  bool preallocate_ = true;
  // Kept across runs, as the vectors above: the planned outputs' shapes,
  // places in the run's buffer (their sizes computed once), and values.
  struct Place {
    size_t offset = 0;
    size_t bytes = 0;
  };
  std::vector<std::vector<int64_t>> planned_shapes_;
  std::vector<Place> planned_places_;
  std::vector<Ort::Value> output_values_;
};

// At most this many bytes of outputs are allocated before a run: the saving
// is per run, not per byte, and a wrong declaration must not make a large
// allocation for nothing. Larger outputs come from ONNX Runtime's arena.
constexpr size_t kMaxPreallocatedBytes = size_t{1} << 20;
constexpr size_t kOutputAlignment = 64;  // as ONNX Runtime's own allocator

void OrtInstance::PlanOutputs() {
  Ort::AllocatorWithDefaultOptions allocator;
  std::vector<DeclaredTensor> inputs;
  for (size_t i = 0; i < session_->GetInputCount(); ++i) {
    inputs.push_back(Declare(session_->GetInputNameAllocated(i, allocator).get(),
                             session_->GetInputTypeInfo(i)));
  }
  planned_.resize(output_names_.size());
  for (size_t i = 0; i < session_->GetOutputCount(); ++i) {
    const std::string name = session_->GetOutputNameAllocated(i, allocator).get();
    const auto it = std::find(output_names_.begin(), output_names_.end(), name);
    if (it == output_names_.end()) continue;
    const Ort::TypeInfo info = session_->GetOutputTypeInfo(i);
    if (info.GetONNXType() != ONNX_TYPE_TENSOR) continue;
    const ONNXTensorElementDataType type = info.GetTensorTypeAndShapeInfo().GetElementType();
    const std::optional<DataType> dtype = FromOnnx(type);
    if (!dtype || *dtype == DataType::kBytes) continue;  // strings: ONNX Runtime's own
    PlannedOutput& out = planned_[static_cast<size_t>(it - output_names_.begin())];
    out.shape = OutputShapePlan::Make(Declare(name, info), inputs);
    out.type = type;
    out.dtype = *dtype;
  }
}

bool OrtInstance::RunPreallocated(const InferRequest& request, const char* const* output_names,
                                  size_t output_count, InferResponse& response,
                                  std::string& refused) {
  if (planned_shapes_.size() < output_count) planned_shapes_.resize(output_count);
  planned_places_.resize(output_count);
  size_t total = 0;
  for (size_t k = 0; k < output_count; ++k) {
    const PlannedOutput& out = planned_[requested_index_[k]];
    std::vector<int64_t>& shape = planned_shapes_[k];
    if (!out.shape.Resolve(request.inputs, shape)) return false;
    size_t bytes = DataTypeSize(out.dtype);
    for (int64_t d : shape) {
      if (d > 0 && bytes > kMaxPreallocatedBytes / static_cast<size_t>(d)) return false;
      bytes *= static_cast<size_t>(d);
    }
    planned_places_[k] = {total, bytes};
    total += (bytes + kOutputAlignment - 1) & ~(kOutputAlignment - 1);
    if (total > kMaxPreallocatedBytes) return false;
  }
  // One allocation for every output, aligned within.
  std::shared_ptr<std::byte[]> buffer =
      std::make_shared_for_overwrite<std::byte[]>(total + kOutputAlignment);
  const auto misalignment = reinterpret_cast<uintptr_t>(buffer.get()) % kOutputAlignment;
  std::byte* base = buffer.get() + (misalignment == 0 ? 0 : kOutputAlignment - misalignment);
  output_values_.clear();
  output_values_.reserve(output_count);
  for (size_t k = 0; k < output_count; ++k) {
    const PlannedOutput& out = planned_[requested_index_[k]];
    const std::vector<int64_t>& shape = planned_shapes_[k];
    const Place& place = planned_places_[k];
    output_values_.push_back(Ort::Value::CreateTensor(cpu_, base + place.offset, place.bytes,
                                                      shape.data(), shape.size(), out.type));
  }
  try {
    session_->Run(run_options_, input_names_.data(), input_values_.data(), input_values_.size(),
                  output_names, output_values_.data(), output_count);
  } catch (const Ort::Exception& e) {
    output_values_.clear();
    refused = e.what();
    return false;
  }
  output_values_.clear();
  const int64_t ran_ns = SteadyNs();
  response.outputs.reserve(response.outputs.size() + output_count);
  for (size_t k = 0; k < output_count; ++k) {
    const PlannedOutput& out = planned_[requested_index_[k]];
    Tensor& tensor = response.outputs.emplace_back();
    tensor.name = output_names[k];
    tensor.dtype = out.dtype;
    tensor.shape = planned_shapes_[k];
    tensor.data = {base + planned_places_[k].offset, planned_places_[k].bytes};
    tensor.owner = buffer;
  }
  response.timing.output_ns = SteadyNs() - ran_ns;
  return true;
}

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

Status OrtInstance::Run(const InferRequest& request, InferResponse& response) {
  // The stages' times (ExecutionTiming): preparing inputs, then the run,
  // then taking the outputs.
  const int64_t begin_ns = SteadyNs();
  // Inputs: views over the request's bytes; copies only when misaligned.
  const size_t input_count = request.inputs.size();
  input_names_.clear();
  input_values_.clear();  // releases the last run's input values
  input_names_.reserve(input_count);
  input_values_.reserve(input_count);
  aligned_.Prepare(request.inputs);
  for (const Tensor& input : request.inputs) {
    input_names_.push_back(input.name.c_str());
    if (input.dtype == DataType::kBytes) {
      MM_ASSIGN_OR_RETURN(Ort::Value value, StringInput(input));
      input_values_.push_back(std::move(value));
      continue;
    }
    const ONNXTensorElementDataType type = ToOnnx(input.dtype);
    if (type == ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED) {
      return InvalidArgument(ModelLabel(model_name_) + " input '" + input.name +
                             "': invalid data type");
    }
    input_values_.push_back(Ort::Value::CreateTensor(cpu_, aligned_.Data(input), input.data.size(),
                                                     input.shape.data(), input.shape.size(), type));
  }

  // Outputs: the requested ones, or every configured one.
  const char* const* output_names = output_name_ptrs_.data();
  size_t output_count = output_name_ptrs_.size();
  requested_.clear();
  requested_index_.clear();
  if (!request.outputs.empty()) {
    requested_.reserve(request.outputs.size());
    requested_index_.reserve(request.outputs.size());
    for (const RequestedOutput& output : request.outputs) {
      const auto it = std::find(output_names_.begin(), output_names_.end(), output.name);
      if (it == output_names_.end()) {
        return InvalidArgument(ModelLabel(model_name_) + " has no output '" + output.name + "'");
      }
      requested_.push_back(output.name.c_str());
      requested_index_.push_back(static_cast<size_t>(it - output_names_.begin()));
    }
    output_names = requested_.data();
    output_count = requested_.size();
  } else {
    for (size_t i = 0; i < output_count; ++i) requested_index_.push_back(i);
  }

  const int64_t run_ns = SteadyNs();
  response.timing.input_ns = run_ns - begin_ns;
  // A run whose length its inputs decide (a Loop's trip count) may last
  // without end: if it drags on while other work waits, the execution
  // slots lend its slot to that work (the thread stays busy, the slot does
  // not): one model's long run never stalls the others.
  std::optional<BlockingWait> long_run;
  if (unbounded_) long_run.emplace();
  std::string refused;
  if (preallocate_ && RunPreallocated(request, output_names, output_count, response, refused)) {
    input_values_.clear();
    return OkStatus();
  }
  auto outputs = std::make_shared<RunOutputs>();
  outputs->session = session_;
  outputs->values = session_->Run(run_options_, input_names_.data(), input_values_.data(),
                                  input_count, output_names, output_count);
  long_run.reset();
  if (!refused.empty()) {
    // The outputs as declared were refused and the run without them
    // succeeded: the model's declared output shapes are not what it computes.
    preallocate_ = false;
    spdlog::warn(
        "{}: its outputs are no longer allocated before a run: ONNX Runtime refused them with the "
        "shapes the model declares: {}",
        ModelLabel(model_name_), refused);
  }
  input_values_.clear();  // views of the request's bytes: none outlives the run
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

std::unique_ptr<ModelInstance> MakeOrtInstance(std::string model_name,
                                               std::shared_ptr<Ort::Session> session,
                                               const inference::ModelConfig& config,
                                               bool unbounded) {
  return std::make_unique<OrtInstance>(std::move(model_name), std::move(session), config,
                                       unbounded);
}

}  // namespace mm::ort
