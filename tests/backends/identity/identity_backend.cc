#include "tests/backends/identity/identity_backend.h"

#include <string>
#include <utility>
#include <vector>

#include "backends/registry.h"

namespace mm {
namespace {

constexpr const char* kName = "mmserve_test_identity";
constexpr const char* kPlatform = "mmserve_test_copy";

// One input and the output that answers it.
struct Pair {
  std::string input;
  std::string output;
};

class IdentityInstance final : public ModelInstance {
 public:
  explicit IdentityInstance(std::vector<Pair> pairs) : pairs_(std::move(pairs)) {}

  Status Execute(const InferRequest& request, InferResponse& response) override {
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
    auto model = std::make_unique<LoadedModel>();
    model->config = std::move(config);
    model->inline_safe = true;  // a copy of views: bounded by the request's size
    int64_t count = 0;
    for (const auto& group : model->config.instance_group()) {
      count += group.count() <= 0 ? 1 : group.count();
    }
    for (int64_t i = 0; i < std::max<int64_t>(count, 1); ++i) {
      model->instances.push_back(std::make_unique<IdentityInstance>(pairs));
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
