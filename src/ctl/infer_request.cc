#include "ctl/infer_request.h"

#include <simdjson.h>

#include "core/json_string.h"
#include "ctl/format.h"
#include "ctl/json_read.h"

namespace mm {

namespace {

namespace dom = simdjson::dom;

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

void AppendShape(std::string& out, const std::vector<int64_t>& shape) {
  out += '[';
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(shape[i]);
  }
  out += ']';
}

// Appends one value of an output's "data" as people read it.
void AppendValue(std::string& out, dom::element e, bool bytes) {
  switch (e.type()) {
    case dom::element_type::INT64:
      out += std::to_string(e.get_int64().value_unsafe());
      break;
    case dom::element_type::UINT64:
      out += std::to_string(e.get_uint64().value_unsafe());
      break;
    case dom::element_type::DOUBLE:
      out += FormatShortest(e.get_double().value_unsafe());
      break;
    case dom::element_type::BOOL:
      out += e.get_bool().value_unsafe() ? "true" : "false";
      break;
    case dom::element_type::STRING: {
      const std::string_view s = e.get_string().value_unsafe();
      if (!bytes && (s == "NaN" || s == "Infinity" || s == "-Infinity")) {
        out += s;  // a float output's non-finite value
      } else {
        AppendJsonString(out, s);
      }
      break;
    }
    default:
      out += simdjson::minify(e);
  }
}

// Flattens `data` (nested arrays allowed) into `values`.
void Flatten(dom::element data, std::vector<dom::element>& values) {
  dom::array a;
  if (data.get(a)) {
    values.push_back(data);
    return;
  }
  for (dom::element e : a) Flatten(e, values);
}

}  // namespace

StatusOr<InputSpec> ParseInputSpec(std::string_view argument) {
  const size_t eq = argument.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    return InvalidArgument("--input '" + std::string(argument) +
                           "': expected NAME=FILE.npy, NAME=@FILE.json or NAME=<JSON array>");
  }
  InputSpec spec;
  spec.name = std::string(argument.substr(0, eq));
  std::string_view value = argument.substr(eq + 1);
  if (value.empty()) {
    return InvalidArgument("--input '" + std::string(argument) + "': the value after '=' is empty");
  }
  if (value.front() == '@') {
    value.remove_prefix(1);
    if (value.empty()) {
      return InvalidArgument("--input '" + std::string(argument) + "': no file after '@'");
    }
    spec.kind = EndsWith(value, ".npy") ? InputSpec::Kind::kNpyFile : InputSpec::Kind::kJsonFile;
    spec.path = std::string(value);
    return spec;
  }
  if (EndsWith(value, ".npy")) {
    spec.kind = InputSpec::Kind::kNpyFile;
    spec.path = std::string(value);
    return spec;
  }
  spec.kind = InputSpec::Kind::kInlineJson;
  auto tensor = ParseJsonTensor(value, "--input " + spec.name);
  if (!tensor.ok() && value.front() != '[') {
    return InvalidArgument("--input '" + std::string(argument) +
                           "': expected NAME=FILE.npy, NAME=@FILE.json or NAME=<JSON array> (" +
                           tensor.status().message() + ")");
  }
  if (!tensor.ok()) return tensor.status();
  spec.inline_tensor = std::move(*tensor);
  return spec;
}

InferBody BuildInferBody(const std::vector<PreparedInput>& inputs,
                         const std::vector<std::string>& outputs) {
  InferBody r;
  std::string& out = r.body;
  size_t binary_size = 0;
  out += "{\"inputs\":[";
  for (size_t i = 0; i < inputs.size(); ++i) {
    const PreparedInput& in = inputs[i];
    if (i) out += ',';
    out += "{\"name\":";
    AppendJsonString(out, in.name);
    out += ",\"datatype\":";
    AppendJsonString(out, in.datatype);
    out += ",\"shape\":";
    AppendShape(out, in.shape);
    if (in.binary) {
      out +=
          ",\"parameters\":{\"binary_data_size\":" + std::to_string(in.binary_data.size()) + "}}";
      binary_size += in.binary_data.size();
    } else {
      out += ",\"data\":";
      out += in.json_data;
      out += '}';
    }
  }
  out += ']';
  if (!outputs.empty()) {
    out += ",\"outputs\":[";
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (i) out += ',';
      out += "{\"name\":";
      AppendJsonString(out, outputs[i]);
      out += ",\"parameters\":{\"binary_data\":false}}";
    }
    out += ']';
  }
  out += ",\"parameters\":{\"binary_data_output\":false}}";
  bool any_binary = false;
  for (const PreparedInput& in : inputs) any_binary = any_binary || in.binary;
  if (any_binary) {
    r.header_length = out.size();
    out.reserve(out.size() + binary_size);
    for (const PreparedInput& in : inputs) {
      if (in.binary) out += in.binary_data;
    }
  }
  return r;
}

StatusOr<std::string> FormatInferOutputs(std::string_view body, std::optional<size_t> header_length,
                                         size_t max_values) {
  std::string_view json = body;
  if (header_length && *header_length <= body.size()) json = body.substr(0, *header_length);
  dom::parser parser;
  dom::element doc;
  MM_RETURN_IF_ERROR(ParseJson(parser, json, "the inference response", doc));
  dom::array outputs;
  if (doc["outputs"].get(outputs)) {
    return InvalidArgument("the inference response has no \"outputs\" array");
  }
  std::string text;
  for (dom::element o : outputs) {
    const std::string_view datatype = JsonString(o, "datatype");
    text += JsonString(o, "name");
    text += ": ";
    text += datatype;
    text += ' ';
    std::vector<int64_t> shape;
    dom::array dims;
    if (!o["shape"].get(dims)) {
      for (dom::element d : dims) {
        int64_t v = 0;
        if (!d.get(v)) shape.push_back(v);
      }
    }
    AppendShape(text, shape);
    text += " = ";
    dom::element data;
    if (o["data"].get(data)) {
      dom::element params;
      const int64_t size =
          o["parameters"].get(params) ? -1 : JsonInt(params, "binary_data_size", -1);
      text += size >= 0 ? "(" + std::to_string(size) + " bytes of binary data)" : "(no data)";
      text += '\n';
      continue;
    }
    std::vector<dom::element> values;
    Flatten(data, values);
    const bool bytes = datatype == "BYTES";
    text += '[';
    const size_t shown = max_values == 0 ? values.size() : std::min(values.size(), max_values);
    for (size_t i = 0; i < shown; ++i) {
      if (i) text += ", ";
      AppendValue(text, values[i], bytes);
    }
    if (shown < values.size()) {
      text += ", …] (" + std::to_string(values.size()) + " values)";
    } else {
      text += ']';
    }
    text += '\n';
  }
  return text;
}

}  // namespace mm
