// A ModelHost for tests (backends/model_host.h): records what it is asked,
// answers BLS calls as `on_infer` says (default: one final response echoing
// the inputs, copied, under the outputs' names "OUT_<input>"), knows the
// models listed in `ready`, and keeps metrics in memory with the contract's
// checks. Thread-safe.
#pragma once

#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "backends/model_host.h"

namespace mm {

class FakeModelHost final : public ModelHost {
 public:
  struct SeenRequest {
    std::string model_name, model_version, id;
    Parameters parameters;
    std::vector<std::pair<std::string, std::string>> inputs;  // name, bytes
    std::vector<std::string> outputs;
  };

  std::function<void(std::unique_ptr<InferRequest>, HostInferCallback)> on_infer;
  std::set<std::string> ready;

  void Infer(std::unique_ptr<InferRequest> request, HostInferCallback on_response) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      SeenRequest seen{
          request->model_name, request->model_version, request->id, request->parameters, {}, {}};
      for (const Tensor& t : request->inputs) {
        seen.inputs.emplace_back(
            t.name, std::string(reinterpret_cast<const char*>(t.data.data()), t.data.size()));
      }
      for (const auto& out : request->outputs) seen.outputs.push_back(out.name);
      requests_.push_back(std::move(seen));
    }
    if (on_infer) {
      on_infer(std::move(request), std::move(on_response));
      return;
    }
    on_response(Echo(*request), true);
  }

  // A response whose outputs are copies of `request`'s inputs, named OUT_<name>.
  static std::unique_ptr<InferResponse> Echo(const InferRequest& request) {
    auto response = std::make_unique<InferResponse>();
    response->model_name = request.model_name;
    response->id = request.id;
    for (const Tensor& in : request.inputs) {
      Tensor t;
      t.name = "OUT_" + in.name;
      t.dtype = in.dtype;
      t.shape = in.shape;
      auto buffer = std::make_shared<ByteBuffer>(in.data.size());
      std::copy(in.data.begin(), in.data.end(), buffer->bytes.get());
      AttachBuffer(t, std::move(buffer));
      response->outputs.push_back(std::move(t));
    }
    return response;
  }

  bool ModelReady(std::string_view name, std::string_view version) override {
    std::lock_guard<std::mutex> lock(mu_);
    return ready.count(std::string(name)) > 0;
  }

  StatusOr<uint64_t> CreateMetric(const MetricSpec& spec) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (spec.family.empty() || spec.family[0] == '0') {
      return InvalidArgument("metric family name '" + spec.family + "' is not a Prometheus name");
    }
    const uint64_t id = ++next_metric_;
    metrics_[id] = {spec, 0};
    return id;
  }

  Status UpdateMetric(uint64_t id, MetricOp op, double value) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = metrics_.find(id);
    if (it == metrics_.end()) return NotFound("metric " + std::to_string(id));
    if (op == MetricOp::kSet) {
      it->second.second = value;
    } else {
      it->second.second += value;
    }
    ++updates_;
    return OkStatus();
  }

  StatusOr<double> MetricValue(uint64_t id) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = metrics_.find(id);
    if (it == metrics_.end()) return NotFound("metric " + std::to_string(id));
    return it->second.second;
  }

  void ReleaseMetric(uint64_t id) override {
    std::lock_guard<std::mutex> lock(mu_);
    metrics_.erase(id);
    released_.push_back(id);
  }

  std::vector<SeenRequest> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  size_t metric_count() {
    std::lock_guard<std::mutex> lock(mu_);
    return metrics_.size();
  }
  std::vector<uint64_t> released() {
    std::lock_guard<std::mutex> lock(mu_);
    return released_;
  }
  int updates() {
    std::lock_guard<std::mutex> lock(mu_);
    return updates_;
  }
  std::string family_of(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = metrics_.find(id);
    return it == metrics_.end() ? "" : it->second.first.family;
  }

 private:
  std::mutex mu_;
  std::vector<SeenRequest> requests_;
  uint64_t next_metric_ = 0;
  std::map<uint64_t, std::pair<MetricSpec, double>> metrics_;
  std::vector<uint64_t> released_;
  int updates_ = 0;
};

}  // namespace mm
