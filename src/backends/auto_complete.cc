#include "backends/auto_complete.h"

#include <algorithm>
#include <set>
#include <span>
#include <utility>

namespace mm {

namespace {

using inference::ModelConfig;

// Everything a message about one tensor shares: "model 'm' input 'x'".
struct TensorContext {
  std::string_view model;
  std::string_view kind;  // "input" / "output"
  std::string_view format;
  std::string Prefix(std::string_view tensor) const {
    return "model '" + std::string(model) + "' " + std::string(kind) + " '" + std::string(tensor) +
           "'";
  }
};

std::string NameList(const std::vector<ModelTensorSignature>& tensors) {
  std::string out;
  for (const auto& t : tensors) {
    if (!out.empty()) out += ", ";
    out += "'" + t.name + "'";
  }
  return out.empty() ? "none" : out;
}

const ModelTensorSignature* Find(const std::vector<ModelTensorSignature>& tensors,
                                 std::string_view name) {
  auto it = std::find_if(tensors.begin(), tensors.end(),
                         [&](const ModelTensorSignature& t) { return t.name == name; });
  return it == tensors.end() ? nullptr : &*it;
}

std::string_view ConfigTypeName(int data_type) {
  return DataTypeConfigName(static_cast<DataType>(data_type));
}

// The model's dims as the config spells them: without the batch dim when
// batching. Fails when batching and the model's first dim is not dynamic.
StatusOr<std::span<const int64_t>> ConfigDims(const TensorContext& ctx,
                                              const ModelTensorSignature& tensor,
                                              int32_t max_batch_size) {
  std::span<const int64_t> dims(tensor.dims);
  if (max_batch_size <= 0) return dims;
  if (dims.empty() || dims[0] != -1) {
    return InvalidArgument(ctx.Prefix(tensor.name) + " has shape " + ShapeToString(dims, true) +
                           " in the " + std::string(ctx.format) + ", but max_batch_size is " +
                           std::to_string(max_batch_size) +
                           ": a batching model's first dim must be dynamic (set max_batch_size "
                           "0 to serve it without batching)");
  }
  return dims.subspan(1);
}

// Checks one configured tensor (ModelInput or ModelOutput) against the model
// and tightens its -1 dims where the model is fixed.
template <typename ConfigTensor>
Status CheckTensor(const TensorContext& ctx, ConfigTensor& configured,
                   const std::vector<ModelTensorSignature>& model_tensors, int32_t max_batch_size) {
  const ModelTensorSignature* model = Find(model_tensors, configured.name());
  if (model == nullptr) {
    return InvalidArgument(ctx.Prefix(configured.name()) + ": the config lists it but the " +
                           std::string(ctx.format) + " has no such " + std::string(ctx.kind) +
                           " (it has " + NameList(model_tensors) + ")");
  }
  if (configured.data_type() != static_cast<int>(model->dtype)) {
    return InvalidArgument(ctx.Prefix(configured.name()) + ": config says " +
                           std::string(ConfigTypeName(configured.data_type())) + " but the " +
                           std::string(ctx.format) + " has " +
                           std::string(DataTypeConfigName(model->dtype)));
  }
  MM_ASSIGN_OR_RETURN(std::span<const int64_t> model_dims, ConfigDims(ctx, *model, max_batch_size));
  const bool reshaped = configured.has_reshape();
  const auto& dims = reshaped ? configured.reshape().shape() : configured.dims();
  const std::string what = reshaped ? "reshape" : "dims";
  const std::string batch_note = max_batch_size > 0 ? " (batch dim excluded)" : "";
  Shape config_dims(dims.begin(), dims.end());
  if (config_dims.size() != model_dims.size()) {
    return InvalidArgument(ctx.Prefix(configured.name()) + ": config " + what + " " +
                           ShapeToString(config_dims, true) + " have rank " +
                           std::to_string(config_dims.size()) + " but the " +
                           std::string(ctx.format) + "'s shape " + ShapeToString(model_dims, true) +
                           batch_note + " has rank " + std::to_string(model_dims.size()));
  }
  for (size_t i = 0; i < model_dims.size(); ++i) {
    if (model_dims[i] == -1 || config_dims[i] == model_dims[i]) continue;
    if (config_dims[i] == -1) {
      if (!reshaped) configured.set_dims(static_cast<int>(i), model_dims[i]);
      continue;
    }
    return InvalidArgument(ctx.Prefix(configured.name()) + ": config " + what + " " +
                           ShapeToString(config_dims, true) + " disagree with the " +
                           std::string(ctx.format) + "'s shape " + ShapeToString(model_dims, true) +
                           batch_note + " at dim " + std::to_string(i));
  }
  return OkStatus();
}

template <typename ConfigTensor>
Status FillTensor(const TensorContext& ctx, const ModelTensorSignature& model,
                  int32_t max_batch_size, ConfigTensor* out) {
  MM_ASSIGN_OR_RETURN(std::span<const int64_t> dims, ConfigDims(ctx, model, max_batch_size));
  out->set_name(model.name);
  out->set_data_type(static_cast<inference::DataType>(model.dtype));
  for (int64_t d : dims) out->add_dims(d);
  return OkStatus();
}

}  // namespace

StatusOr<ModelConfig> CompleteModelConfig(std::string_view model_name, ModelConfig user,
                                          const ModelSignature& model, std::string_view platform,
                                          std::string_view backend) {
  if (user.name().empty()) user.set_name(std::string(model_name));
  if (user.platform().empty()) user.set_platform(std::string(platform));
  if (user.backend().empty()) user.set_backend(std::string(backend));
  const int32_t max_batch_size = user.max_batch_size();
  if (max_batch_size < 0) {
    return InvalidArgument("model '" + std::string(model_name) + "': max_batch_size " +
                           std::to_string(max_batch_size) + " is negative");
  }

  // A sequence model's control and state inputs are fed by its scheduler,
  // and its state outputs taken by it: they are not the clients' tensors.
  std::set<std::string> provided, taken;
  if (user.has_sequence_batching()) {
    for (const auto& ci : user.sequence_batching().control_input()) provided.insert(ci.name());
    for (const auto& st : user.sequence_batching().state()) {
      provided.insert(st.input_name());
      taken.insert(st.output_name());
    }
  }
  const TensorContext in_ctx{model_name, "input", model.format};
  if (user.input_size() == 0) {
    for (const auto& tensor : model.inputs) {
      if (provided.count(tensor.name)) continue;
      MM_RETURN_IF_ERROR(FillTensor(in_ctx, tensor, max_batch_size, user.add_input()));
    }
  } else {
    for (auto& input : *user.mutable_input()) {
      if (provided.count(input.name())) {
        return InvalidArgument(in_ctx.Prefix(input.name()) +
                               ": sequence_batching feeds it (a control or state input); "
                               "remove it from the config's inputs");
      }
      MM_RETURN_IF_ERROR(CheckTensor(in_ctx, input, model.inputs, max_batch_size));
    }
    for (const auto& tensor : model.inputs) {
      if (provided.count(tensor.name)) continue;
      bool listed = std::any_of(user.input().begin(), user.input().end(),
                                [&](const auto& input) { return input.name() == tensor.name; });
      if (!listed) {
        return InvalidArgument(in_ctx.Prefix(tensor.name) + ": the " + model.format +
                               " requires it but the config does not list it");
      }
    }
  }

  const TensorContext out_ctx{model_name, "output", model.format};
  if (user.output_size() == 0) {
    for (const auto& tensor : model.outputs) {
      if (taken.count(tensor.name)) continue;
      MM_RETURN_IF_ERROR(FillTensor(out_ctx, tensor, max_batch_size, user.add_output()));
    }
  } else {
    // Listing a subset of the outputs is fine: only those are served.
    for (auto& output : *user.mutable_output()) {
      MM_RETURN_IF_ERROR(CheckTensor(out_ctx, output, model.outputs, max_batch_size));
    }
  }

  if (user.instance_group_size() == 0) {
    auto* group = user.add_instance_group();
    group->set_count(1);
    group->set_kind(inference::ModelInstanceGroup::KIND_CPU);
  }
  return user;
}

}  // namespace mm
