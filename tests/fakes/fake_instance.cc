#include "fake_instance.h"

#include <memory>
#include <utility>

namespace mm::fakes {

FakeInstance::FakeInstance() : FakeInstance(Options{}) {}

FakeInstance::FakeInstance(Options options) : options_(std::move(options)) {
  if (options_.counters != nullptr && options_.bytes > 0)
    options_.counters->memory += options_.bytes;
}

FakeInstance::~FakeInstance() {
  if (options_.counters != nullptr && options_.bytes > 0)
    options_.counters->memory -= options_.bytes;
}

Status FakeInstance::Execute(const InferRequest& request, InferResponse& response) {
  FakeCounters* c = options_.counters;
  if (c != nullptr) {
    ++c->executions;
    const int now = ++c->concurrent;
    int peak = c->peak.load();
    while (now > peak && !c->peak.compare_exchange_weak(peak, now)) {
    }
  }
  Status fail;
  {
    MutexLock lock(mu_);
    fail = fail_;
    if (options_.record) {
      SeenRequest seen{request.id, request.model_name, {}, {}};
      for (const auto& out : request.outputs) seen.requested_outputs.push_back(out.name);
      for (const Tensor& t : request.inputs) {
        seen.inputs.push_back({t.name, t.dtype, t.shape, {t.data.begin(), t.data.end()}});
      }
      requests_.push_back(std::move(seen));
    }
  }
  Status result;
  if (!fail.ok()) {
    result = std::move(fail);
  } else if (!options_.fail_id.empty() && request.id == options_.fail_id) {
    result = InvalidArgument("asked to fail");
  } else if (options_.handler) {
    result = options_.handler(request, response);
  }
  if (c != nullptr) --c->concurrent;
  return result;
}

Status FakeInstance::ExecuteList(std::span<const InferRequest* const> requests,
                                 std::span<InferResponse* const> responses,
                                 std::span<Status> results) {
  {
    MutexLock lock(mu_);
    auto& ids = lists_.emplace_back();
    for (const InferRequest* r : requests) ids.push_back(r->id);
  }
  if (!options_.list_fails.ok()) return options_.list_fails;
  for (size_t i = 0; i < requests.size(); ++i) results[i] = Execute(*requests[i], *responses[i]);
  return OkStatus();
}

std::vector<std::vector<std::string>> FakeInstance::lists() const {
  MutexLock lock(mu_);
  return lists_;
}

void FakeInstance::FailWith(Status status) {
  MutexLock lock(mu_);
  fail_ = std::move(status);
}

std::vector<SeenRequest> FakeInstance::requests() const {
  MutexLock lock(mu_);
  return requests_;
}

FakeInstance::Handler EmptyOutput(std::string name) {
  return [name = std::move(name)](const InferRequest&, InferResponse& response) {
    response.outputs.push_back(Tensor{name, DataType::kFp32, {}, {}, nullptr, {}});
    return OkStatus();
  };
}

FakeInstance::Handler AddToInput(std::string name, float add) {
  return [name = std::move(name), add](const InferRequest& request, InferResponse& response) {
    auto values = std::make_shared<std::vector<float>>();
    Tensor out;
    out.name = name;
    out.dtype = DataType::kFp32;
    if (!request.inputs.empty()) {
      const Tensor& in = request.inputs[0];
      out.shape = in.shape;
      if (in.dtype == DataType::kFp32) {
        for (float v : in.as<float>()) values->push_back(v + add);
      }
    }
    out.data = std::as_bytes(std::span<const float>(*values));
    out.owner = values;
    response.outputs.push_back(std::move(out));
    return OkStatus();
  };
}

}  // namespace mm::fakes
