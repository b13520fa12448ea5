#include "tests/backends/chaos/chaos_backend.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "backends/registry.h"

namespace mm {

namespace {

// A crash as the kernel delivers it, even under a sanitizer that would
// otherwise catch the signal, report and exit with a status instead.
[[noreturn]] void Crash() {
  ::signal(SIGSEGV, SIG_DFL);
  ::raise(SIGSEGV);
  std::abort();
}

std::string Parameter(const inference::ModelConfig& config, const std::string& key) {
  auto it = config.parameters().find(key);
  return it == config.parameters().end() ? std::string() : it->second.string_value();
}

class ChaosInstance final : public ModelInstance {
 public:
  Status Execute(const InferRequest& request, InferResponse& response) override {
    const Tensor* command = nullptr;
    const Tensor* input = nullptr;
    for (const Tensor& t : request.inputs) {
      if (t.name == "COMMAND") command = &t;
      if (t.name == "INPUT") input = &t;
    }
    if (command == nullptr || input == nullptr || command->data.size() != 16) {
      return InvalidArgument("chaos: expected inputs COMMAND INT64 [2] and INPUT FP32 [-1]");
    }
    int64_t op = 0, arg = 0;
    std::memcpy(&op, command->data.data(), 8);
    std::memcpy(&arg, command->data.data() + 8, 8);
    switch (op) {
      case 0:
        break;
      case 1:
        Crash();
      case 2: {
        const size_t bytes = static_cast<size_t>(std::max<int64_t>(arg, 0)) << 20;
        auto block = std::make_unique<char[]>(bytes);
        for (size_t i = 0; i < bytes; i += 4096) block[i] = 1;
        leaked_.push_back(std::move(block));
        break;
      }
      case 3:
        if (arg > 0) {
          std::this_thread::sleep_for(std::chrono::milliseconds(arg));
        } else {
          for (;;) ::pause();
        }
        break;
      case 4:
        std::abort();
      case 5:
        return Internal("chaos: asked to fail");
      default:
        return InvalidArgument("chaos: unknown op " + std::to_string(op) + ", expected 0 to 5");
    }
    Tensor out;
    out.name = "OUTPUT";
    out.dtype = DataType::kFp32;
    out.shape = input->shape;
    out.data = input->data;
    // The input's bytes outlive the request: they are the transport's buffer
    // (body), or a buffer of their own when the transport decoded them (JSON).
    out.owner = input->owner != nullptr ? input->owner : request.body;
    response.outputs.push_back(std::move(out));
    return OkStatus();
  }

 private:
  std::vector<std::unique_ptr<char[]>> leaked_;
};

}  // namespace

StatusOr<std::unique_ptr<LoadedModel>> ChaosBackend::Load(const LoadSpec& spec) {
  inference::ModelConfig config = spec.config;
  if (Parameter(config, "crash_on_load") == "1") Crash();
  if (const std::string delay = Parameter(config, "load_delay_ms"); !delay.empty()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::atoll(delay.c_str())));
  }
  if (const std::string path = Parameter(config, "load_hang_while_file"); !path.empty()) {
    while (::access(path.c_str(), F_OK) == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  config.set_name(spec.model_name);
  config.set_platform(kPlatform);
  config.set_max_batch_size(0);
  config.clear_input();
  config.clear_output();
  auto* command = config.add_input();
  command->set_name("COMMAND");
  command->set_data_type(inference::TYPE_INT64);
  command->add_dims(2);
  auto* input = config.add_input();
  input->set_name("INPUT");
  input->set_data_type(inference::TYPE_FP32);
  input->add_dims(-1);
  auto* output = config.add_output();
  output->set_name("OUTPUT");
  output->set_data_type(inference::TYPE_FP32);
  output->add_dims(-1);
  auto model = std::make_unique<LoadedModel>();
  model->config = std::move(config);
  size_t count = 0;
  for (const auto& group : model->config.instance_group()) {
    count += group.count() <= 0 ? 1 : static_cast<size_t>(group.count());
  }
  for (size_t i = 0; i < std::max<size_t>(count, 1); ++i) {
    model->instances.push_back(std::make_unique<ChaosInstance>());
  }
  return model;
}

Status RegisterChaosBackend(BackendRegistry& registry) {
  return registry.Register({.name = ChaosBackend::kPlatform,
                            .platforms = {ChaosBackend::kPlatform},
                            .create =
                                [](const BackendSettings&) {
                                  return StatusOr<std::unique_ptr<Backend>>(
                                      std::make_unique<ChaosBackend>());
                                },
                            .test_only = true,
                            .summary = std::string("platform '") + ChaosBackend::kPlatform +
                                       "' crashes, leaks and hangs on command"});
}

}  // namespace mm
