#include "tests/backends/identity/identity_backend.h"

#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "backends/registry.h"

namespace mm {
namespace {

constexpr const char* kName = "mmserve_test_identity";
constexpr const char* kPlatform = "mmserve_test_copy";
constexpr const char* kListInfo = "LIST_INFO";

// Whether the config asks for list mode (parameters { key: "batch_as_list" ... }).
bool ListMode(const inference::ModelConfig& config) {
  auto it = config.parameters().find("batch_as_list");
  return it != config.parameters().end() && it->second.string_value() == "true";
}

// `s` as a JSON string literal.
std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}

// What a request saw, as JSON: the size of the list it came in, its place,
// its id and its parameters.
std::string ListInfo(const InferRequest& request, size_t size, size_t index) {
  std::string out = "{\"list\":" + std::to_string(size) + ",\"index\":" + std::to_string(index) +
                    ",\"id\":" + JsonString(request.id) + ",\"parameters\":{";
  bool first = true;
  for (const auto& [key, value] : request.parameters) {
    if (!first) out += ",";
    first = false;
    out += JsonString(key) + ":";
    if (const bool* b = std::get_if<bool>(&value)) {
      out += *b ? "true" : "false";
    } else if (const int64_t* i = std::get_if<int64_t>(&value)) {
      out += std::to_string(*i);
    } else if (const double* d = std::get_if<double>(&value)) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.17g", *d);
      out += buf;
    } else {
      out += JsonString(std::get<std::string>(value));
    }
  }
  return out + "}}";
}

// One input and the output that answers it.
struct Pair {
  std::string input;
  std::string output;
};

class IdentityInstance final : public ModelInstance {
 public:
  // `batched`: the model has a batch dim (max_batch_size > 0).
  IdentityInstance(std::vector<Pair> pairs, bool list_mode, bool batched)
      : pairs_(std::move(pairs)), list_mode_(list_mode), batched_(batched) {}

  Status Execute(const InferRequest& request, InferResponse& response) override {
    if (list_mode_) return Answer(request, response, 1, 0);
    return Copy(request, response);
  }

  // List mode: each request answered alone, its LIST_INFO saying the list's
  // size; a request with the parameter "fail" true fails alone.
  Status ExecuteList(std::span<const InferRequest* const> requests,
                     std::span<InferResponse* const> responses,
                     std::span<Status> results) override {
    for (size_t i = 0; i < requests.size(); ++i) {
      results[i] = list_mode_ ? Answer(*requests[i], *responses[i], requests.size(), i)
                              : Copy(*requests[i], *responses[i]);
    }
    return OkStatus();
  }

 private:
  Status Answer(const InferRequest& request, InferResponse& response, size_t size, size_t index) {
    auto fail = request.parameters.find("fail");
    if (fail != request.parameters.end() && std::holds_alternative<bool>(fail->second) &&
        std::get<bool>(fail->second)) {
      return InvalidArgument("identity: request '" + request.id + "' asked to fail");
    }
    MM_RETURN_IF_ERROR(Copy(request, response));
    if (!Requested(request, kListInfo)) return OkStatus();
    // One BYTES element per row of the first input (one without a batch dim).
    int64_t rows = 1;
    if (!request.inputs.empty() && !request.inputs[0].shape.empty()) {
      rows = request.inputs[0].shape[0];
    }
    const std::string info = ListInfo(request, size, index);
    auto bytes = std::make_shared<std::string>();
    for (int64_t r = 0; r < rows; ++r) {
      const auto n = static_cast<uint32_t>(info.size());
      char len[4];
      std::memcpy(len, &n, 4);  // little-endian hosts only (as the server)
      bytes->append(len, 4);
      bytes->append(info);
    }
    Tensor out;
    out.name = kListInfo;
    out.dtype = DataType::kBytes;
    out.shape = batched_ ? Shape{rows, 1} : Shape{1};
    out.data = std::as_bytes(std::span<const char>(*bytes));
    out.owner = bytes;
    response.outputs.push_back(std::move(out));
    return OkStatus();
  }

  Status Copy(const InferRequest& request, InferResponse& response) {
    for (const Pair& pair : pairs_) {
      if (!Requested(request, pair.output)) continue;
      const Tensor* input = nullptr;
      for (const Tensor& t : request.inputs) {
        if (t.name == pair.input) input = &t;
      }
      if (input == nullptr) {
        return InvalidArgument("identity: input '" + pair.input + "' is missing");
      }
      Tensor out;
      out.name = pair.output;
      out.dtype = input->dtype;
      out.shape = input->shape;
      out.data = input->data;
      // The input's bytes outlive the request: they are the transport's
      // buffer (body), or a buffer of their own (owner).
      out.owner = input->owner != nullptr ? input->owner : request.body;
      response.outputs.push_back(std::move(out));
    }
    return OkStatus();
  }

 private:
  static bool Requested(const InferRequest& request, const std::string& output) {
    if (request.outputs.empty()) return true;
    for (const RequestedOutput& r : request.outputs) {
      if (r.name == output) return true;
    }
    return false;
  }

  const std::vector<Pair> pairs_;
  const bool list_mode_;
  const bool batched_;
};

bool SameDims(const inference::ModelInput& in, const inference::ModelOutput& out) {
  if (in.dims_size() != out.dims_size()) return false;
  for (int i = 0; i < in.dims_size(); ++i) {
    if (in.dims(i) != out.dims(i)) return false;
  }
  return true;
}

class IdentityBackend final : public Backend {
 public:
  StatusOr<std::unique_ptr<LoadedModel>> Load(const LoadSpec& spec) override {
    MM_ASSIGN_OR_RETURN(inference::ModelConfig config, CompleteIdentityConfig(spec));
    std::vector<Pair> pairs;
    for (int i = 0; i < config.input_size(); ++i) {
      pairs.push_back({config.input(i).name(), config.output(i).name()});
    }
    const bool list_mode = ListMode(config);
    auto model = std::make_unique<LoadedModel>();
    model->config = std::move(config);
    model->inline_safe = true;  // a copy of views: bounded by the request's size
    model->batch_as_list = list_mode;
    int64_t count = 0;
    for (const auto& group : model->config.instance_group()) {
      count += group.count() <= 0 ? 1 : group.count();
    }
    for (int64_t i = 0; i < std::max<int64_t>(count, 1); ++i) {
      model->instances.push_back(
          std::make_unique<IdentityInstance>(pairs, list_mode, model->config.max_batch_size() > 0));
    }
    return model;
  }
};

}  // namespace

StatusOr<inference::ModelConfig> CompleteIdentityConfig(const LoadSpec& spec) {
  const std::string label = "model '" + spec.model_name + "' (backend " + kName + ")";
  if (!spec.has_config) {
    return InvalidArgument(label + ": needs a config.pbtxt listing its inputs");
  }
  inference::ModelConfig config = spec.config;
  const bool list_mode = ListMode(config);
  // LIST_INFO (list mode) is not one of the paired outputs: set aside while
  // they are checked, then listed last.
  if (list_mode) {
    for (int i = 0; i < config.output_size(); ++i) {
      if (config.output(i).name() == kListInfo) {
        config.mutable_output()->DeleteSubrange(i, 1);
        break;
      }
    }
  }
  if (config.input_size() == 0) {
    return InvalidArgument(label + ": the config lists no input; expected at least one");
  }
  if (config.output_size() == 0) {
    for (const auto& input : config.input()) {
      auto* output = config.add_output();
      output->set_name(input.name() + "_OUT");
      output->set_data_type(input.data_type());
      *output->mutable_dims() = input.dims();
    }
  } else if (config.output_size() != config.input_size()) {
    return InvalidArgument(label + ": the config lists " + std::to_string(config.output_size()) +
                           " outputs for " + std::to_string(config.input_size()) +
                           " inputs; expected one output per input, or none");
  }
  for (int i = 0; i < config.input_size(); ++i) {
    const auto& in = config.input(i);
    const auto& out = config.output(i);
    if (in.data_type() != out.data_type() || !SameDims(in, out)) {
      return InvalidArgument(label + ": output '" + out.name() + "' differs from input '" +
                             in.name() + "' in type or dims; expected the input's");
    }
  }
  if (list_mode) {
    auto* info = config.add_output();
    info->set_name(kListInfo);
    info->set_data_type(inference::TYPE_STRING);
    info->add_dims(1);
  }
  if (config.name().empty()) config.set_name(spec.model_name);
  if (config.backend().empty()) config.set_backend(kName);
  if (config.instance_group_size() == 0) config.add_instance_group()->set_count(1);
  return config;
}

Status RegisterIdentityBackend(BackendRegistry& registry) {
  return registry.Register(
      {.name = kName,
       .platforms = {kPlatform},
       .create =
           [](const BackendSettings&) {
             return StatusOr<std::unique_ptr<Backend>>(std::make_unique<IdentityBackend>());
           },
       .auto_complete = CompleteIdentityConfig,
       .test_only = true,
       .summary = std::string("backend '") + kName + "' copies its inputs to its outputs"});
}

}  // namespace mm
