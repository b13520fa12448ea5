#include "backends/pytorch/torch_instance.h"

#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>
#include <torch/csrc/jit/passes/tensorexpr_fuser.h>
#include <torch/csrc/jit/python/update_graph_executor_opt.h>
#include <torch/csrc/jit/runtime/graph_executor.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "backends/aligned_inputs.h"
#include "backends/pytorch/torch_types.h"
#include "core/blocking_wait.h"
#include "core/bytes_tensor.h"

namespace mm {

namespace {

int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool Overlaps(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  const auto a0 = reinterpret_cast<uintptr_t>(a);
  const auto b0 = reinterpret_cast<uintptr_t>(b);
  return a_bytes > 0 && b_bytes > 0 && a0 < b0 + b_bytes && b0 < a0 + a_bytes;
}

// A TorchScript exception's text is two tracebacks, then what was raised
// ("builtins.ValueError: too big"): that last line goes first, so that a
// bounded message keeps it.
std::string SummaryFirst(std::string error) {
  if (error.find("Traceback of TorchScript") == std::string::npos) return error;
  size_t end = error.find_last_not_of("\n ");
  if (end == std::string::npos) return error;
  const size_t begin = error.rfind('\n', end);
  if (begin == std::string::npos) return error;
  std::string summary = error.substr(begin + 1, end - begin);
  error.erase(begin);
  return summary + "\n" + error;
}

// Keeps a response's output tensors alive while its views are read.
struct OutputHolder {
  std::vector<at::Tensor> tensors;
};

class TorchInstance final : public ModelInstance {
 public:
  explicit TorchInstance(TorchInstanceOptions options)
      : o_(std::move(options)),
        label_("model '" + o_.model_name + "'"),
        forward_(o_.module->get_method("forward")),
        arg_count_(o_.io.dict_input ? 1 : static_cast<size_t>(o_.config.input_size())) {}

  Status Execute(const InferRequest& request, InferResponse& response) override {
    std::string error;
    // A failure leaves no output behind (they would view freed tensors).
    const size_t outputs_before = response.outputs.size();
    try {
      Status status = Run(request, response);
      args_.clear();
      if (!status.ok()) response.outputs.resize(outputs_before);
      return status;
    } catch (const c10::Error& e) {
      error = e.what_without_backtrace();
    } catch (const std::exception& e) {
      error = e.what();
    } catch (...) {
      error = "an exception that is not a std::exception";
    }
    args_.clear();
    response.outputs.resize(outputs_before);
    spdlog::warn("{}: PyTorch execute failure: {}", label_, error);
    error = SummaryFirst(std::move(error));
    if (error.size() > kMaxTorchErrorBytes) {
      error.resize(kMaxTorchErrorBytes);
      error += "... (truncated; the server's log has the whole message)";
    }
    return Internal(label_ + ": PyTorch execute failure: " + error);
  }

 private:
  Status Run(const InferRequest& request, InferResponse& response);
  void ApplySettings();
  StatusOr<c10::IValue> Input(const Tensor& input, int config_index);
  // The shape the client sees: with a reshape, the model's shape is
  // reshape.shape and the client's is dims (after the batch dimension).
  Shape ReportedShape(const inference::ModelOutput& config, int64_t rows, Shape shape,
                      int64_t count) const {
    if (!config.has_reshape()) return shape;
    Shape dims;
    if (o_.config.max_batch_size() > 0) dims.push_back(rows);
    dims.insert(dims.end(), config.dims().begin(), config.dims().end());
    auto elements = ElementCount(dims, "dims");
    return elements.ok() && *elements == count ? dims : shape;
  }
  StatusOr<Tensor> Output(const c10::IValue& value, int config_index, int64_t rows,
                          const InferRequest& request, OutputHolder& holder);

  const TorchInstanceOptions o_;
  const std::string label_;
  torch::jit::Method forward_;
  const size_t arg_count_;
  // Used by one Execute at a time.
  std::vector<c10::IValue> args_;
  AlignedInputs aligned_;  // aligned copies of misaligned inputs
};

void TorchInstance::ApplySettings() {
  const TorchParameters& p = o_.parameters;
  if (at::get_num_threads() != p.intra_op_threads) at::set_num_threads(p.intra_op_threads);
  if (torch::jit::getGraphExecutorOptimize() == p.disable_optimized_execution) {
    torch::jit::setGraphExecutorOptimize(!p.disable_optimized_execution);
  }
  if (p.enable_jit_executor) torch::jit::getExecutorMode() = *p.enable_jit_executor;
  if (p.enable_jit_profiling) torch::jit::getProfilingMode() = *p.enable_jit_profiling;
  if (p.enable_tensor_fuser) torch::jit::setTensorExprFuserEnabled(*p.enable_tensor_fuser);
  if (o_.placement.gpu) at::globalContext().setUserEnabledCuDNN(!p.disable_cudnn);
}

StatusOr<c10::IValue> TorchInstance::Input(const Tensor& input, int config_index) {
  const auto& config = o_.config.input(config_index);
  if (input.dtype == DataType::kBytes) {
    const std::string what = label_ + " input '" + input.name + "'";
    MM_ASSIGN_OR_RETURN(int64_t count, ElementCount(input.shape, what));
    MM_ASSIGN_OR_RETURN(auto elements, SplitBytesTensor(input.data, count, what));
    c10::List<std::string> list;
    list.reserve(elements.size());
    for (std::string_view element : elements) list.push_back(std::string(element));
    return c10::IValue(std::move(list));
  }
  std::optional<c10::ScalarType> type = ToTorchType(input.dtype);
  if (!type) {
    return InvalidArgument(label_ + " input '" + input.name + "' has data type " +
                           std::string(DataTypeName(input.dtype)) + ", which libtorch has not");
  }
  at::Tensor tensor = torch::from_blob(aligned_.Data(input), at::IntArrayRef(input.shape),
                                       at::TensorOptions().dtype(*type).device(c10::kCPU));
  if (config.has_reshape()) {
    std::vector<int64_t> shape;
    if (o_.config.max_batch_size() > 0 && !input.shape.empty()) shape.push_back(input.shape[0]);
    shape.insert(shape.end(), config.reshape().shape().begin(), config.reshape().shape().end());
    tensor = tensor.view(shape);
  }
  if (o_.placement.gpu && o_.placement.device) {
    tensor = tensor.to(*o_.placement.device);
  } else if (o_.writes_inputs) {
    tensor = tensor.clone();  // the model writes into it: never into the client's bytes
  }
  return c10::IValue(std::move(tensor));
}

StatusOr<Tensor> TorchInstance::Output(const c10::IValue& value, int config_index, int64_t rows,
                                       const InferRequest& request, OutputHolder& holder) {
  const auto& config = o_.config.output(config_index);
  const std::string what = label_ + " output '" + config.name() + "'";
  const auto want = static_cast<DataType>(config.data_type());
  Tensor out;
  out.name = config.name();
  if (value.isList()) {
    c10::List<c10::IValue> list = value.toList();
    if (list.elementType()->kind() != c10::TypeKind::StringType) {
      return Internal(what + ": forward returned a " + list.elementType()->annotation_str() +
                      " list where a Tensor or List[str] was expected");
    }
    if (want != DataType::kBytes) {
      return Internal(what + ": configuration expects datatype " +
                      std::string(DataTypeConfigName(want)) +
                      ", model provides a List[str] (TYPE_STRING)");
    }
    const int64_t count = static_cast<int64_t>(list.size());
    if (o_.config.max_batch_size() > 0 && count != rows) {
      return Internal(what + ": forward returned " + std::to_string(count) +
                      " strings for a batch of " + std::to_string(rows) +
                      " (max_batch_size > 0: one string per batch row)");
    }
    std::string bytes;
    for (const c10::IValue& element : list.vec()) AppendBytesElement(element.toStringRef(), bytes);
    auto buffer = std::make_shared<ByteBuffer>(bytes.size());
    if (!bytes.empty()) std::memcpy(buffer->bytes.get(), bytes.data(), bytes.size());
    out.dtype = DataType::kBytes;
    out.shape = ReportedShape(config, rows, {count}, count);
    AttachBuffer(out, std::move(buffer));
    return out;
  }
  if (!value.isTensor()) {
    return Internal(what + " must be of type Tensor or List[str]; forward returned a " +
                    value.type()->annotation_str());
  }
  at::Tensor tensor = value.toTensor();
  std::optional<DataType> dtype = FromTorchType(tensor.scalar_type());
  if (!dtype || *dtype != want) {
    return Internal(what + ": configuration expects datatype " +
                    std::string(DataTypeConfigName(want)) + ", model provides " +
                    TorchTypeLabel(tensor.scalar_type()));
  }
  if (tensor.dim() == 0) {
    return Internal(what +
                    " is a scalar (a 0-dim tensor), which is not supported: return it "
                    "with at least one dimension");
  }
  if (o_.config.max_batch_size() > 0 && tensor.size(0) != rows) {
    return Internal(what + " has shape " + ShapeToString(tensor.sizes().vec()) +
                    ", but the model batches (max_batch_size " +
                    std::to_string(o_.config.max_batch_size()) +
                    "), so its first dimension must be the batch size, " + std::to_string(rows));
  }
  if (!tensor.device().is_cpu()) tensor = tensor.to(c10::kCPU);
  tensor = tensor.contiguous();
  out.dtype = *dtype;
  out.shape = ReportedShape(config, rows, tensor.sizes().vec(), tensor.numel());
  const size_t bytes = tensor.nbytes();
  const auto* data = static_cast<const std::byte*>(tensor.data_ptr());
  out.data = {data, bytes};
  // A response must not point into the request (its buffer may be gone
  // first) or the scratch buffer (the next request reuses it).
  bool aliases = aligned_.Overlaps(data, bytes);
  for (const Tensor& input : request.inputs) {
    aliases = aliases || Overlaps(data, bytes, input.data.data(), input.data.size());
  }
  if (aliases) {
    auto copy = std::make_shared<ByteBuffer>(bytes);
    std::memcpy(copy->bytes.get(), data, bytes);
    AttachBuffer(out, std::move(copy));
  } else {
    holder.tensors.push_back(std::move(tensor));
  }
  return out;
}

Status TorchInstance::Run(const InferRequest& request, InferResponse& response) {
  const int64_t begin_ns = SteadyNs();
  ApplySettings();
  c10::InferenceMode inference_mode(o_.parameters.inference_mode);
  torch::NoGradGuard no_grad;

  // Inputs, by the config's map; misaligned ones copied (AlignedInputs).
  aligned_.Prepare(request.inputs);
  args_.assign(arg_count_, c10::IValue());
  std::optional<c10::Dict<std::string, at::Tensor>> dict;
  if (o_.io.dict_input) dict.emplace();
  int64_t rows = 1;
  for (const Tensor& input : request.inputs) {
    int index = 0;
    while (index < o_.config.input_size() && o_.config.input(index).name() != input.name) ++index;
    if (index == o_.config.input_size()) {
      return InvalidArgument(label_ + " has no input '" + input.name + "'");
    }
    if (&input == &request.inputs.front() && !input.shape.empty()) rows = input.shape[0];
    MM_ASSIGN_OR_RETURN(c10::IValue value, Input(input, index));
    if (dict) {
      dict->insert(input.name, value.toTensor());
    } else {
      args_[static_cast<size_t>(o_.io.input_position[index])] = std::move(value);
    }
  }
  if (dict) args_[0] = c10::IValue(std::move(*dict));
  for (size_t i = 0; i < args_.size(); ++i) {
    if (args_[i].isNone()) {
      return InvalidArgument(label_ + ": the request has no value for forward's argument " +
                             std::to_string(i));
    }
  }

  const int64_t run_ns = SteadyNs();
  response.timing.input_ns = run_ns - begin_ns;
  c10::IValue result;
  {
    // A run whose length its inputs' values decide (a loop) may last: the
    // execution slots may lend this thread's slot to other work meanwhile.
    std::optional<BlockingWait> long_run;
    if (o_.unbounded) long_run.emplace();
    result = forward_(std::move(args_));
  }
  const int64_t ran_ns = SteadyNs();

  // The returned values, by position (tuple, list, tensor) or by key (dict).
  std::vector<c10::IValue> values;
  std::optional<c10::impl::GenericDict> by_key;
  if (result.isTuple()) {
    const auto& elements = result.toTupleRef().elements();
    values.assign(elements.begin(), elements.end());
  } else if (result.isList() &&
             result.toList().elementType()->kind() != c10::TypeKind::StringType) {
    values = result.toList().vec();
  } else if (result.isGenericDict()) {
    by_key = result.toGenericDict();
  } else if (result.isTensor() || result.isList()) {
    values.push_back(result);
  } else {
    return Internal(label_ + ": forward returned a " + result.type()->annotation_str() +
                    "; the PyTorch backend takes a Tensor, a tuple or list of Tensors and "
                    "List[str], or a Dict[str, Tensor]");
  }

  auto holder = std::make_shared<OutputHolder>();
  auto emit = [&](int index) -> Status {
    const auto& name = o_.config.output(index).name();
    const c10::IValue* value = nullptr;
    c10::IValue found;
    if (by_key) {
      auto it = by_key->find(c10::IValue(name));
      if (it == by_key->end()) {
        std::string keys;
        for (const auto& entry : *by_key) {
          keys += (keys.empty() ? "" : ", ") + entry.key().toStringRef();
        }
        return Internal(label_ + ": output '" + name +
                        "' is not a key of the dict forward returned (its keys: " + keys + ")");
      }
      found = it->value();
      value = &found;
    } else {
      const int position = o_.io.output_position[index];
      if (position < 0 || static_cast<size_t>(position) >= values.size()) {
        return Internal(label_ + ": the output " + name +
                        " in the model configuration refers to an output index which doesn't "
                        "exist. This model has " +
                        std::to_string(values.size()) + " outputs");
      }
      value = &values[static_cast<size_t>(position)];
    }
    MM_ASSIGN_OR_RETURN(Tensor tensor, Output(*value, index, rows, request, *holder));
    response.outputs.push_back(std::move(tensor));
    return OkStatus();
  };
  if (request.outputs.empty()) {
    response.outputs.reserve(response.outputs.size() + o_.config.output_size());
    for (int i = 0; i < o_.config.output_size(); ++i) MM_RETURN_IF_ERROR(emit(i));
  } else {
    response.outputs.reserve(response.outputs.size() + request.outputs.size());
    for (const RequestedOutput& requested : request.outputs) {
      int index = 0;
      while (index < o_.config.output_size() && o_.config.output(index).name() != requested.name) {
        ++index;
      }
      if (index == o_.config.output_size()) {
        return InvalidArgument(label_ + " has no output '" + requested.name + "'");
      }
      MM_RETURN_IF_ERROR(emit(index));
    }
  }
  if (!holder->tensors.empty()) {
    std::shared_ptr<const void> owner = holder;
    for (Tensor& tensor : response.outputs) {
      if (!tensor.owner) tensor.owner = owner;
    }
  }
  if (o_.parameters.enable_cache_cleaning && o_.placement.gpu) EmptyCudaCache();
  response.timing.output_ns = SteadyNs() - ran_ns;
  return OkStatus();
}

}  // namespace

std::unique_ptr<ModelInstance> MakeTorchInstance(TorchInstanceOptions options) {
  return std::make_unique<TorchInstance>(std::move(options));
}

}  // namespace mm
