#include "backends/fil/fil_io.h"

#include <string>
#include <utility>

namespace mm::fil {

namespace {

constexpr char kBackendName[] = "fil";
constexpr char kInputName[] = "input__0";
constexpr char kOutputName[] = "output__0";
constexpr char kShapOutput[] = "treeshap_output";

std::string Dims(const google::protobuf::RepeatedField<int64_t>& dims) {
  std::string s = "[";
  for (int i = 0; i < dims.size(); ++i) s += (i ? "," : "") + std::to_string(dims[i]);
  return s + "]";
}

std::string TypeName(inference::DataType type) {
  return std::string(DataTypeConfigName(static_cast<DataType>(type)));
}

// What the model answers per row under `rule`, for messages.
std::string Answer(const OutputRule& rule, int64_t columns) {
  std::string what = std::to_string(columns) + (columns == 1 ? " value" : " values") +
                     " per row (is_classifier " + (rule.output_class ? "true" : "false") +
                     ", predict_proba " + (rule.predict_proba ? "true" : "false") + ")";
  return what;
}

// The engine's values per row, which must be a count a buffer can hold.
StatusOr<int64_t> Columns(const OutputColumnsFn& columns, const OutputRule& rule) {
  MM_ASSIGN_OR_RETURN(int64_t n, columns(rule));
  if (n < 1 || n > (int64_t{1} << 24)) {
    return Internal("the engine answers " + std::to_string(n) + " values per row");
  }
  return n;
}

Status CheckInput(inference::ModelInput& input, const TreeModelInfo& info, FilIo& io) {
  const std::string what = "input '" + input.name() + "'";
  if (input.has_reshape()) {
    return InvalidArgument(what + " has a reshape; the fil backend takes none (expected dims [" +
                           std::to_string(info.num_features) + "], the model's features)");
  }
  if (input.data_type() != inference::TYPE_FP32 && input.data_type() != inference::TYPE_FP64) {
    return InvalidArgument(what + " is " + TypeName(input.data_type()) +
                           "; expected TYPE_FP32 (as Triton's FIL backend) or TYPE_FP64");
  }
  const bool fits =
      input.dims_size() == 1 && (input.dims(0) == info.num_features || input.dims(0) == -1);
  if (!fits) {
    return InvalidArgument(what + " has dims " + Dims(input.dims()) + ", but the model takes " +
                           std::to_string(info.num_features) + " features; expected dims [" +
                           std::to_string(info.num_features) + "]");
  }
  input.set_dims(0, info.num_features);  // a -1 is tightened to the model's
  io.input_dtype = static_cast<DataType>(input.data_type());
  return OkStatus();
}

Status CheckOutput(inference::ModelOutput& output, const OutputColumnsFn& columns, FilIo& io) {
  const OutputRule& rule = io.rule;
  const std::string what = "output '" + output.name() + "'";
  if (output.has_reshape()) {
    return InvalidArgument(what + " has a reshape; the fil backend takes none (expected dims [" +
                           std::to_string(io.engine_columns) + "])");
  }
  if (output.data_type() != inference::TYPE_FP32) {
    return InvalidArgument(what + " is " + TypeName(output.data_type()) +
                           "; expected TYPE_FP32 (FIL answers FP32)");
  }
  // A -1 (unknown) single dim is the model's; otherwise the dims' product is
  // the values per row, as FIL sizes its output buffer.
  if (output.dims_size() == 1 && output.dims(0) == -1) output.set_dims(0, io.engine_columns);
  int64_t product = output.dims_size() == 0 ? 0 : 1;
  for (int64_t d : output.dims()) {
    if (d <= 0 || product > (int64_t{1} << 40) / d) {
      product = 0;  // a dim that is not a size, or a product no model answers
      break;
    }
    product *= d;
  }
  // A binary classifier's probabilities in dims [1]: p alone, as FIL.
  const bool positive_only = rule.predict_proba && io.engine_columns == 2 && product == 1;
  if (product != io.engine_columns && !positive_only) {
    std::string expected = "[" + std::to_string(io.engine_columns) + "]";
    if (rule.predict_proba && io.engine_columns == 2) expected += " (or [1] for p alone)";
    return InvalidArgument(what + " has dims " + Dims(output.dims()) + ", but the model answers " +
                           Answer(rule, io.engine_columns) + "; expected dims " + expected);
  }
  io.columns = io.engine_columns;
  if (positive_only) {
    // The engine writes p alone where its model has one score per row; a
    // model of two score columns still answers both, of which Execute keeps p.
    io.rule.binary_proba_single_column = true;
    MM_ASSIGN_OR_RETURN(io.engine_columns, Columns(columns, io.rule));
    io.columns = 1;
  }
  for (int64_t d : output.dims()) {
    if (d != 1) io.squeezed_dims.push_back(d);
  }
  return OkStatus();
}

}  // namespace

StatusOr<FilIo> CompleteFilConfig(std::string_view model_name, inference::ModelConfig user,
                                  const TreeModelInfo& info, const FilParameters& params,
                                  const OutputColumnsFn& columns) {
  FilIo io;
  io.rule = params.rule;
  io.num_features = info.num_features;
  MM_ASSIGN_OR_RETURN(io.engine_columns, Columns(columns, io.rule));
  const int64_t engine_columns = io.engine_columns;
  if (user.name().empty()) user.set_name(std::string(model_name));
  if (user.backend().empty()) user.set_backend(kBackendName);
  if (user.max_batch_size() <= 0) {
    return InvalidArgument("max_batch_size is " + std::to_string(user.max_batch_size()) +
                           "; expected more than 0: Triton's FIL backend takes a request's first "
                           "dimension as its rows, up to max_batch_size (e.g. 32768)");
  }

  if (user.input_size() == 0) {
    auto* input = user.add_input();
    input->set_name(kInputName);
    input->set_data_type(inference::TYPE_FP32);
    input->add_dims(info.num_features);
  }
  if (user.input_size() != 1) {
    return InvalidArgument("the config has " + std::to_string(user.input_size()) +
                           " inputs; expected one (" + kInputName + ", TYPE_FP32 [" +
                           std::to_string(info.num_features) + "])");
  }
  MM_RETURN_IF_ERROR(CheckInput(*user.mutable_input(0), info, io));

  for (const auto& output : user.output()) {
    if (output.name() == kShapOutput) {
      return InvalidArgument(std::string("output '") + kShapOutput +
                             "' asks for SHAP values, which the fil backend does not compute; "
                             "expected only " +
                             kOutputName + " (remove " + kShapOutput + ")");
    }
  }
  if (user.output_size() == 0) {
    auto* output = user.add_output();
    output->set_name(kOutputName);
    output->set_data_type(inference::TYPE_FP32);
    output->add_dims(engine_columns);
  }
  if (user.output_size() != 1) {
    return InvalidArgument("the config has " + std::to_string(user.output_size()) +
                           " outputs; expected one (" + kOutputName + ", TYPE_FP32 [" +
                           std::to_string(engine_columns) + "])");
  }
  MM_RETURN_IF_ERROR(CheckOutput(*user.mutable_output(0), columns, io));

  if (user.instance_group_size() == 0) {
    auto* group = user.add_instance_group();
    group->set_count(1);
    group->set_kind(inference::ModelInstanceGroup::KIND_CPU);
  }
  io.config = std::move(user);
  return io;
}

}  // namespace mm::fil
