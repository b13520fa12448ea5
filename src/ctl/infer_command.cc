// `ctl infer`: inputs from .npy files (sent as binary tensor data) or JSON
// (sent as JSON data, typed from the model's metadata), outputs printed.
#include <simdjson.h>

#include <cstdio>
#include <map>

#include "ctl/commands.h"
#include "ctl/files.h"
#include "ctl/json_read.h"
#include "ctl/npy.h"
#include "ctl/url_path.h"

namespace mm {

namespace {

namespace dom = simdjson::dom;

constexpr size_t kMaxValuesShown = 20;

// The model's inputs by name -> datatype, from its metadata.
StatusOr<std::map<std::string, std::string>> InputTypes(HttpClient& client, const InferArgs& args) {
  MM_ASSIGN_OR_RETURN(HttpResponse r, client.GetChecked(ModelPath(args.model, args.version, "")));
  dom::parser parser;
  dom::element doc;
  MM_RETURN_IF_ERROR(ParseJson(parser, r.body, "the model metadata", doc));
  std::map<std::string, std::string> types;
  dom::array inputs;
  if (!doc["inputs"].get(inputs)) {
    for (dom::element in : inputs) {
      types[std::string(JsonString(in, "name"))] = std::string(JsonString(in, "datatype"));
    }
  }
  return types;
}

}  // namespace

Status RunInfer(const HttpClientOptions& options, const InferArgs& args) {
  MM_ASSIGN_OR_RETURN(std::unique_ptr<HttpClient> client, HttpClient::Create(options));
  std::map<std::string, std::string> types;
  bool typed = false;
  std::vector<PreparedInput> inputs;
  for (const InputSpec& spec : args.inputs) {
    PreparedInput& in = inputs.emplace_back();
    in.name = spec.name;
    if (spec.kind == InputSpec::Kind::kNpyFile) {
      MM_ASSIGN_OR_RETURN(NpyArray array, ReadNpyFile(spec.path));
      in.datatype = std::move(array.datatype);
      in.shape = std::move(array.shape);
      in.binary = true;
      in.binary_data = std::move(array.data);
      continue;
    }
    JsonTensor tensor;
    if (spec.kind == InputSpec::Kind::kJsonFile) {
      MM_ASSIGN_OR_RETURN(std::string text, ReadFile(spec.path));
      MM_ASSIGN_OR_RETURN(tensor,
                          ParseJsonTensor(text, "input '" + spec.name + "' ('" + spec.path + "')"));
    } else {
      tensor = spec.inline_tensor;
    }
    if (!typed) {
      MM_ASSIGN_OR_RETURN(types, InputTypes(*client, args));
      typed = true;
    }
    auto it = types.find(spec.name);
    if (it == types.end()) {
      std::string known;
      for (const auto& [name, type] : types) known += (known.empty() ? "" : ", ") + name;
      return NotFound("model '" + args.model + "' has no input '" + spec.name + "'" +
                      (known.empty() ? "" : "; its inputs: " + known));
    }
    in.datatype = it->second;
    in.shape = std::move(tensor.shape);
    in.json_data = std::move(tensor.data);
  }
  const InferBody body = BuildInferBody(inputs, args.outputs);
  MM_ASSIGN_OR_RETURN(HttpResponse r,
                      client->PostChecked(ModelPath(args.model, args.version, "infer"), body.body,
                                          body.header_length));
  if (args.json) {
    const std::string_view json = r.header_length && *r.header_length <= r.body.size()
                                      ? std::string_view(r.body).substr(0, *r.header_length)
                                      : std::string_view(r.body);
    std::fwrite(json.data(), 1, json.size(), stdout);
    std::fputc('\n', stdout);
    return OkStatus();
  }
  MM_ASSIGN_OR_RETURN(std::string text,
                      FormatInferOutputs(r.body, r.header_length, kMaxValuesShown));
  std::fputs(text.c_str(), stdout);
  return OkStatus();
}

}  // namespace mm
