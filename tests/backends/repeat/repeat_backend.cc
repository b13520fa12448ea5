#include "tests/backends/repeat/repeat_backend.h"

#include <chrono>
#include <cstring>
#include <deque>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "backends/registry.h"
#include "core/thread_annotations.h"

namespace mm {
namespace {

constexpr const char* kName = "mmserve_test_repeat";

// What the instance and its answering thread share: the thread keeps it alive
// (it may outlive the instance, when the instance is destroyed on it).
struct Work {
  Mutex mu;
  CondVar cv;
  std::deque<std::shared_ptr<ResponseSender>> queue MM_GUARDED_BY(mu);
  bool stop MM_GUARDED_BY(mu) = false;
};

Tensor Scalar(const std::string& name, DataType dtype, uint32_t bits) {
  auto buffer = std::make_shared<ByteBuffer>(4);
  std::memcpy(buffer->bytes.get(), &bits, 4);
  Tensor t;
  t.name = name;
  t.dtype = dtype;
  t.shape = {1};
  AttachBuffer(t, std::move(buffer));
  return t;
}

void Answer(ResponseSender& sender) {
  const InferRequest& request = sender.request();
  std::vector<int32_t> values;
  int64_t fail_at = -1;
  bool hold = false;
  // Tensor bytes need not be aligned (a binary section after a JSON header,
  // raw contents inside a gRPC message): copied out, not cast.
  const auto first = [](const Tensor& t) {
    int32_t v = 0;
    std::memcpy(&v, t.data.data(), sizeof(v));
    return v;
  };
  for (const Tensor& t : request.inputs) {
    if (t.name == "IN") {
      values.resize(t.data.size() / sizeof(int32_t));
      if (!values.empty()) std::memcpy(values.data(), t.data.data(), values.size() * 4);
    } else if (t.name == "FAIL_AT" && t.data.size() >= 4) {
      fail_at = first(t);
    } else if (t.name == "HOLD" && t.data.size() >= 4) {
      hold = first(t) != 0;
    }
  }
  const std::string model = request.model_name;
  for (size_t i = 0; i < values.size(); ++i) {
    if (sender.cancelled()) {
      (void)sender.Send(Cancelled("model '" + model + "': the client went away after " +
                                  std::to_string(i) + " responses"),
                        true);
      return;
    }
    if (static_cast<int64_t>(i) == fail_at) {
      (void)sender.Send(InvalidArgument("model '" + model + "': response " + std::to_string(i) +
                                        " fails, as FAIL_AT asked"),
                        false);
      continue;
    }
    auto response = std::make_unique<InferResponse>();
    uint32_t bits = 0;
    std::memcpy(&bits, &values[i], 4);
    response->outputs.push_back(Scalar("OUT", DataType::kInt32, bits));
    response->outputs.push_back(Scalar("IDX", DataType::kUint32, static_cast<uint32_t>(i)));
    (void)sender.Send(std::move(response), false);
  }
  if (hold) {
    // Until the client goes away: the proof that its going reaches the model.
    while (!sender.cancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    (void)sender.Send(Cancelled("model '" + model + "': the client went away while held"), true);
    return;
  }
  (void)sender.Send(std::unique_ptr<InferResponse>(), true);
}

void Serve(std::shared_ptr<Work> work) {
  for (;;) {
    std::shared_ptr<ResponseSender> sender;
    {
      MutexLock lock(work->mu);
      while (!work->stop && work->queue.empty()) work->cv.Wait(lock);
      if (work->queue.empty()) return;  // stopping, nothing left
      sender = std::move(work->queue.front());
      work->queue.pop_front();
    }
    Answer(*sender);
  }
}

class RepeatInstance final : public ModelInstance {
 public:
  RepeatInstance() : work_(std::make_shared<Work>()), thread_(Serve, work_) {}
  ~RepeatInstance() override {
    {
      MutexLock lock(work_->mu);
      work_->stop = true;
    }
    work_->cv.NotifyAll();
    // The last reference to the model may go on this thread (backend.h,
    // ResponseSender's contract 5): it then finishes on its own.
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();
    } else {
      thread_.join();
    }
  }

  Status Execute(const InferRequest&, InferResponse&) override {
    return FailedPrecondition(std::string(kName) + " models are decoupled; Execute is not used");
  }

  Status ExecuteDecoupled(std::span<const std::shared_ptr<ResponseSender>> senders) override {
    {
      MutexLock lock(work_->mu);
      for (const auto& s : senders) work_->queue.push_back(s);
    }
    work_->cv.NotifyOne();
    return OkStatus();
  }

 private:
  std::shared_ptr<Work> work_;
  std::thread thread_;
};

class RepeatBackend final : public Backend {
 public:
  StatusOr<std::unique_ptr<LoadedModel>> Load(const LoadSpec& spec) override {
    MM_ASSIGN_OR_RETURN(inference::ModelConfig config, CompleteRepeatConfig(spec));
    auto model = std::make_unique<LoadedModel>();
    model->config = std::move(config);
    int64_t count = 0;
    for (const auto& group : model->config.instance_group()) {
      count += group.count() <= 0 ? 1 : group.count();
    }
    for (int64_t i = 0; i < std::max<int64_t>(count, 1); ++i) {
      model->instances.push_back(MakeRepeatInstance());
    }
    return model;
  }
};

void AddTensor(google::protobuf::RepeatedPtrField<inference::ModelInput>* list,
               const std::string& name, inference::DataType dtype, int64_t dim, bool optional) {
  auto* t = list->Add();
  t->set_name(name);
  t->set_data_type(dtype);
  t->add_dims(dim);
  t->set_optional(optional);
}

}  // namespace

std::unique_ptr<ModelInstance> MakeRepeatInstance() { return std::make_unique<RepeatInstance>(); }

StatusOr<inference::ModelConfig> CompleteRepeatConfig(const LoadSpec& spec) {
  const std::string label = "model '" + spec.model_name + "' (backend " + kName + ")";
  inference::ModelConfig config = spec.config;
  if (!config.model_transaction_policy().decoupled()) {
    return InvalidArgument(label +
                           ": the backend is decoupled; expected model_transaction_policy { "
                           "decoupled: true } in its config.pbtxt");
  }
  if (config.max_batch_size() != 0) {
    return InvalidArgument(label + ": max_batch_size is " +
                           std::to_string(config.max_batch_size()) + "; expected 0");
  }
  if (config.input_size() == 0) {
    AddTensor(config.mutable_input(), "IN", inference::TYPE_INT32, -1, false);
    AddTensor(config.mutable_input(), "FAIL_AT", inference::TYPE_INT32, 1, true);
    AddTensor(config.mutable_input(), "HOLD", inference::TYPE_INT32, 1, true);
  }
  if (config.output_size() == 0) {
    for (auto [name, dtype] :
         {std::pair{"OUT", inference::TYPE_INT32}, std::pair{"IDX", inference::TYPE_UINT32}}) {
      auto* out = config.add_output();
      out->set_name(name);
      out->set_data_type(dtype);
      out->add_dims(1);
    }
  }
  if (config.name().empty()) config.set_name(spec.model_name);
  if (config.backend().empty()) config.set_backend(kName);
  if (config.instance_group_size() == 0) config.add_instance_group()->set_count(1);
  return config;
}

Status RegisterRepeatBackend(BackendRegistry& registry) {
  return registry.Register(
      {.name = kName,
       .platforms = {},
       .create =
           [](const BackendSettings&) {
             return StatusOr<std::unique_ptr<Backend>>(std::make_unique<RepeatBackend>());
           },
       .auto_complete = CompleteRepeatConfig,
       .test_only = true,
       .summary = std::string("backend '") + kName +
                  "' answers IN's values one response each (a decoupled model)"});
}

}  // namespace mm
