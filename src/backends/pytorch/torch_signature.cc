#include "backends/pytorch/torch_signature.h"

#include <ATen/core/jit_type.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <string_view>

#include "core/data_type.h"

namespace mm {

namespace {

TorchValueKind KindOf(const c10::TypePtr& type) {
  switch (type->kind()) {
    case c10::TypeKind::TensorType:
      return TorchValueKind::kTensor;
    case c10::TypeKind::ListType: {
      const auto element = type->expectRef<c10::ListType>().getElementType()->kind();
      if (element == c10::TypeKind::StringType) return TorchValueKind::kStringList;
      if (element == c10::TypeKind::TensorType) return TorchValueKind::kTensorList;
      return TorchValueKind::kOther;
    }
    case c10::TypeKind::TupleType:
      return TorchValueKind::kTuple;
    case c10::TypeKind::DictType: {
      const auto& dict = type->expectRef<c10::DictType>();
      if (dict.getKeyType()->kind() == c10::TypeKind::StringType &&
          dict.getValueType()->kind() == c10::TypeKind::TensorType) {
        return TorchValueKind::kTensorDict;
      }
      return TorchValueKind::kOther;
    }
    default:
      return TorchValueKind::kOther;
  }
}

std::string TypeText(const c10::TypePtr& type) { return type->annotation_str(); }

// The index of `<name>__<digits>`; nullopt when the name is not of that form.
std::optional<int> NamedIndex(std::string_view name) {
  const size_t sep = name.find("__");
  if (sep == std::string_view::npos) return std::nullopt;
  std::string_view digits = name.substr(sep + 2);
  if (digits.empty() || digits.size() > 6) return std::nullopt;
  if (!std::all_of(digits.begin(), digits.end(),
                   [](unsigned char c) { return std::isdigit(c) != 0; })) {
    return std::nullopt;
  }
  return std::stoi(std::string(digits));
}

std::string_view KindText(TorchValueKind kind) {
  switch (kind) {
    case TorchValueKind::kTensor:
      return "Tensor";
    case TorchValueKind::kStringList:
      return "List[str]";
    case TorchValueKind::kTensorList:
      return "List[Tensor]";
    case TorchValueKind::kTuple:
      return "a tuple";
    case TorchValueKind::kTensorDict:
      return "Dict[str, Tensor]";
    case TorchValueKind::kOther:
      break;
  }
  return "another type";
}

bool IsStringTensor(const auto& tensor) { return tensor.data_type() == inference::TYPE_STRING; }

// Triton's 1-D rule for strings: the dims (or reshape) plus the batch dim.
template <typename T>
Status CheckStringRank(const T& tensor, std::string_view kind, int max_batch_size) {
  const int rank = tensor.has_reshape() ? tensor.reshape().shape_size() : tensor.dims_size();
  if (rank + (max_batch_size > 0 ? 1 : 0) > 1) {
    return InvalidArgument(std::string(kind) + " '" + tensor.name() +
                           "' is TYPE_STRING, which the PyTorch backend passes as a 1-D "
                           "List[str]; its dims (with the batch dimension) must have rank 1 "
                           "(a batching model: dims: [ 1 ] with reshape: { shape: [ ] })");
  }
  return OkStatus();
}

// Positions for names by the `<name>__<index>` rule, or nullopt when some
// name does not follow it. `limit`: the number of positions there are (-1:
// unknown). INVALID_ARGUMENT for an index out of range or used twice.
template <typename List>
StatusOr<std::optional<std::vector<int>>> NamedPositions(const List& tensors, std::string_view kind,
                                                         int limit, const std::string& where) {
  std::vector<int> positions;
  for (const auto& tensor : tensors) {
    std::optional<int> index = NamedIndex(tensor.name());
    if (!index) return std::optional<std::vector<int>>();
    if (limit >= 0 && *index >= limit) {
      return InvalidArgument(std::string(kind) + " '" + tensor.name() + "' names index " +
                             std::to_string(*index) + ", but " + where + " has " +
                             std::to_string(limit));
    }
    if (std::find(positions.begin(), positions.end(), *index) != positions.end()) {
      return InvalidArgument(std::string(kind) + " '" + tensor.name() + "' names index " +
                             std::to_string(*index) + ", which another " + std::string(kind) +
                             " names too");
    }
    positions.push_back(*index);
  }
  return std::optional<std::vector<int>>(std::move(positions));
}

template <typename List>
bool AnyLooksNamed(const List& tensors) {
  return std::any_of(tensors.begin(), tensors.end(), [](const auto& tensor) {
    return tensor.name().find("__") != std::string::npos;
  });
}

Status MapInputs(const inference::ModelConfig& config, const ForwardSignature& sig,
                 TorchIoMap& map) {
  const auto& inputs = config.input();
  if (sig.args.size() == 1 && sig.args[0].kind == TorchValueKind::kTensorDict) {
    map.dict_input = true;
    map.input_convention = "a Dict[str, Tensor] argument";
    for (const auto& input : inputs) {
      if (IsStringTensor(input)) {
        return InvalidArgument("input '" + input.name() +
                               "' is TYPE_STRING, but forward takes its inputs as one "
                               "Dict[str, Tensor], which holds tensors only: " +
                               sig.text);
      }
      map.input_position.push_back(-1);
    }
    return OkStatus();
  }
  for (const ForwardArgument& arg : sig.args) {
    if (arg.kind == TorchValueKind::kTensorDict || arg.type.starts_with("Dict")) {
      return InvalidArgument(
          "forward's argument '" + arg.name + "' is a " + arg.type +
          " beside other arguments; only a single input of type Dict[str, Tensor] is supported "
          "(or Tensor and List[str] arguments): " +
          sig.text);
    }
    if (arg.kind != TorchValueKind::kTensor && arg.kind != TorchValueKind::kStringList) {
      return InvalidArgument("forward's argument '" + arg.name + "' has type " + arg.type +
                             "; the PyTorch backend passes Tensor and List[str] arguments (or "
                             "one Dict[str, Tensor]): " +
                             sig.text);
    }
  }
  const int args = static_cast<int>(sig.args.size());
  if (inputs.size() != args) {
    return InvalidArgument("configuration expects " + std::to_string(inputs.size()) +
                           " inputs, model provides " + std::to_string(args) + ": " + sig.text);
  }
  // 1. FORWARD_ARGUMENT.
  bool all_args = true;
  for (const auto& input : inputs) {
    auto it = std::find_if(sig.args.begin(), sig.args.end(),
                           [&](const ForwardArgument& arg) { return arg.name == input.name(); });
    if (it == sig.args.end()) {
      all_args = false;
      break;
    }
    map.input_position.push_back(static_cast<int>(it - sig.args.begin()));
  }
  if (all_args) {
    map.input_convention = "FORWARD_ARGUMENT";
  } else {
    map.input_position.clear();
    // 2. NAMED_INDEX.
    MM_ASSIGN_OR_RETURN(auto named, NamedPositions(inputs, "input", args,
                                                   "forward's argument list (" + sig.text + ")"));
    if (named) {
      map.input_convention = "NAMED_INDEX";
      map.input_position = std::move(*named);
    } else {
      // 3. STRICT_CONFIG_ORDERING.
      map.input_convention = "STRICT_CONFIG_ORDERING";
      for (int i = 0; i < inputs.size(); ++i) map.input_position.push_back(i);
      if (AnyLooksNamed(inputs)) {
        map.warnings.push_back(
            "the inputs are neither all arguments of forward nor all of the <name>__<index> "
            "naming convention; falling back to the config's order: " +
            sig.text);
      }
    }
  }
  for (int i = 0; i < inputs.size(); ++i) {
    const auto& input = inputs[i];
    const ForwardArgument& arg = sig.args[static_cast<size_t>(map.input_position[i])];
    const TorchValueKind want =
        IsStringTensor(input) ? TorchValueKind::kStringList : TorchValueKind::kTensor;
    if (arg.kind != want) {
      return InvalidArgument(
          "input '" + input.name() + "' (" +
          std::string(DataTypeConfigName(static_cast<DataType>(input.data_type()))) +
          ") goes to forward's argument '" + arg.name + "' (" + map.input_convention +
          "), which is " + arg.type + ", not " + std::string(KindText(want)) + ": " + sig.text);
    }
    if (want == TorchValueKind::kStringList) {
      MM_RETURN_IF_ERROR(CheckStringRank(input, "input", config.max_batch_size()));
    }
  }
  return OkStatus();
}

Status MapOutputs(const inference::ModelConfig& config, const ForwardSignature& sig,
                  TorchIoMap& map) {
  const auto& outputs = config.output();
  const int count = outputs.size();
  const std::string returns = "forward returns " + sig.return_type + ": " + sig.text;
  for (const auto& output : outputs) {
    if (IsStringTensor(output)) {
      MM_RETURN_IF_ERROR(CheckStringRank(output, "output", config.max_batch_size()));
    }
  }
  switch (sig.returns) {
    case TorchValueKind::kTensorDict:
      map.output_convention = "by key of the returned Dict[str, Tensor]";
      for (const auto& output : outputs) {
        if (IsStringTensor(output)) {
          return InvalidArgument("output '" + output.name() +
                                 "' is TYPE_STRING, but a Dict[str, Tensor] holds tensors "
                                 "only; " +
                                 returns);
        }
        map.output_position.push_back(-1);
      }
      return OkStatus();
    case TorchValueKind::kOther:
      return InvalidArgument(
          "the PyTorch backend takes a Tensor, a tuple or list of Tensors and List[str], or a "
          "Dict[str, Tensor] from forward, but " +
          returns);
    default:
      break;
  }
  // How many values forward returns, when its type says (-1: a list's length).
  int arity = -1;
  if (sig.returns == TorchValueKind::kTensor || sig.returns == TorchValueKind::kStringList) {
    arity = 1;
  } else if (sig.returns == TorchValueKind::kTuple) {
    arity = static_cast<int>(sig.tuple.size());
    for (size_t i = 0; i < sig.tuple.size(); ++i) {
      if (sig.tuple[i] != TorchValueKind::kTensor && sig.tuple[i] != TorchValueKind::kStringList) {
        return InvalidArgument("element " + std::to_string(i) +
                               " of the returned tuple is neither a Tensor nor a List[str]; " +
                               returns);
      }
    }
  }
  MM_ASSIGN_OR_RETURN(auto named, NamedPositions(outputs, "output", arity, "what forward returns"));
  if (named) {
    map.output_convention = "NAMED_INDEX";
    map.output_position = std::move(*named);
  } else {
    map.output_convention = "STRICT_CONFIG_ORDERING";
    for (int i = 0; i < count; ++i) map.output_position.push_back(i);
    if (arity >= 0 && count > arity) {
      return InvalidArgument("configuration expects " + std::to_string(count) +
                             " outputs, model provides " + std::to_string(arity) + ": " + sig.text);
    }
    if (AnyLooksNamed(outputs)) {
      map.warnings.push_back(
          "the outputs do not all follow the <name>__<index> naming convention; falling back to "
          "the config's order");
    }
  }
  for (int i = 0; i < count; ++i) {
    const auto& output = outputs[i];
    const int position = map.output_position[i];
    TorchValueKind kind = sig.returns;
    if (sig.returns == TorchValueKind::kTuple) kind = sig.tuple[static_cast<size_t>(position)];
    if (sig.returns == TorchValueKind::kTensorList) kind = TorchValueKind::kTensor;
    const bool is_string = IsStringTensor(output);
    if (is_string != (kind == TorchValueKind::kStringList)) {
      return InvalidArgument(
          "output '" + output.name() + "' is " +
          std::string(DataTypeConfigName(static_cast<DataType>(output.data_type()))) +
          ", but the value it names (" + map.output_convention + ", index " +
          std::to_string(position) + ") is " + std::string(KindText(kind)) + "; " + returns);
    }
  }
  return OkStatus();
}

}  // namespace

ForwardSignature ReadForwardSignature(const c10::FunctionSchema& schema) {
  ForwardSignature sig;
  const auto& arguments = schema.arguments();
  size_t start = 0;
  if (!arguments.empty() && arguments[0].type()->kind() == c10::TypeKind::ClassType) start = 1;
  sig.text = "forward(";
  for (size_t i = start; i < arguments.size(); ++i) {
    ForwardArgument arg{arguments[i].name(), TypeText(arguments[i].type()),
                        KindOf(arguments[i].type())};
    if (i > start) sig.text += ", ";
    sig.text += arg.type + " " + arg.name;
    sig.args.push_back(std::move(arg));
  }
  sig.text += ") -> ";
  if (schema.returns().size() == 1) {
    const c10::TypePtr& type = schema.returns()[0].type();
    sig.return_type = TypeText(type);
    sig.returns = KindOf(type);
    if (sig.returns == TorchValueKind::kTuple) {
      for (const auto& element : type->expectRef<c10::TupleType>().elements()) {
        sig.tuple.push_back(KindOf(element));
      }
    }
  } else {
    sig.return_type = "(";
    for (size_t i = 0; i < schema.returns().size(); ++i) {
      if (i > 0) sig.return_type += ", ";
      sig.return_type += TypeText(schema.returns()[i].type());
    }
    sig.return_type += ")";
  }
  sig.text += sig.return_type;
  return sig;
}

StatusOr<TorchIoMap> MapTorchIo(const inference::ModelConfig& config,
                                const ForwardSignature& signature) {
  if (config.input_size() == 0 || config.output_size() == 0) {
    return InvalidArgument(
        "its config lists no " + std::string(config.input_size() == 0 ? "inputs" : "outputs") +
        "; a TorchScript module carries no shapes, so config.pbtxt must list every input and "
        "output (name, data_type, dims) for " +
        signature.text);
  }
  TorchIoMap map;
  MM_RETURN_IF_ERROR(MapInputs(config, signature, map));
  MM_RETURN_IF_ERROR(MapOutputs(config, signature, map));
  return map;
}

}  // namespace mm
