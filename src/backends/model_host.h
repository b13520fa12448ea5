// ModelHost: what a running model may ask of the server that hosts it.
// Triton's Python backend lets model.py call other models (business logic
// scripting, BLS: pb_utils.InferenceRequest(...).exec()) and keep custom
// metrics (pb_utils.MetricFamily); a backend reaches both through this door,
// whether it runs in the server's process or in a worker process (then the
// isolation room carries each call over the worker's call channel to the
// server's ModelHost of that model).
//
// One ModelHost serves one model version: it knows the calling model (name,
// version, the repository and so the tenant it belongs to), so a call can
// never speak for another model or tenant.
//
// Contract:
//  1. Infer runs `request` as a client of the calling model's tenant would:
//     names resolve in that tenant's namespace (a model it does not see
//     answers NOT_FOUND exactly as an unknown one), and the callee's
//     scheduler, batching, priorities, quotas and on-demand loading apply.
//     `request->parameters` may carry Triton's "timeout" (µs) and
//     "priority". `on_response` is called once per response on any thread
//     (maybe on the caller's, before Infer returns, when the call is refused
//     at once): for a non-decoupled callee once, final; for a decoupled one
//     zero or more times with final = false, then exactly once with
//     final = true (with its last response, or with a null response when
//     the model sent the final flag alone, or with the error that ended it).
//     Response tensors may view memory kept alive by Tensor::owner.
//  2. A model may call itself, or a model that calls it back; nothing
//     detects the cycle (Triton does not either): the callee's queue policy
//     and the caller's timeout bound it.
//  3. Metrics: CreateMetric registers (or finds) the metric family `name`
//     server-wide and the metric of `labels` in it, exported on /metrics with
//     the calling model's labels added (model, version). Two models may
//     share a family only with the same kind (else ALREADY_EXISTS naming
//     the difference); with another description, the family keeps its
//     first (as Triton). Names and labels follow Prometheus' rules
//     (INVALID_ARGUMENT naming the bad one); the label names "model" and
//     "version" are the host's (given with other values: INVALID_ARGUMENT). The id is the caller's
//     handle until ReleaseMetric; an unknown id is NOT_FOUND.
//  4. Every method may be called from any thread, concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/infer_request.h"
#include "core/status.h"

namespace mm {

// One response of a host call; `final` marks the last.
using HostInferCallback =
    std::function<void(StatusOr<std::unique_ptr<InferResponse>> response, bool final)>;

enum class MetricKind : uint8_t { kCounter = 0, kGauge = 1, kHistogram = 2 };

struct MetricSpec {
  std::string family;       // the family's name ("requests_by_kind_total")
  std::string description;  // its help text
  MetricKind kind = MetricKind::kCounter;
  std::map<std::string, std::string> labels;  // the metric's own labels
  std::vector<double> buckets;                // histograms: upper bounds, ascending
};

enum class MetricOp : uint8_t { kIncrement = 0, kSet = 1, kObserve = 2 };

class ModelHost {
 public:
  virtual ~ModelHost() = default;

  virtual void Infer(std::unique_ptr<InferRequest> request, HostInferCallback on_response) = 0;
  // Runs one step of a request the calling model is answering (an
  // ensemble's): as Infer, except that the request was admitted when it
  // reached the calling model, so its tenant's quotas (rate, concurrency)
  // are not asked again. The step is counted under its own model (its
  // statistics, the tenant's usage). Default: Infer.
  virtual void InferStep(std::unique_ptr<InferRequest> request, HostInferCallback on_response) {
    Infer(std::move(request), std::move(on_response));
  }
  // Whether `name` (`version`; empty: any) is READY for the calling model's tenant.
  virtual bool ModelReady(std::string_view name, std::string_view version) = 0;

  virtual StatusOr<uint64_t> CreateMetric(const MetricSpec& spec) = 0;
  // kIncrement (counters, gauges; a counter refuses a negative value),
  // kSet (gauges), kObserve (histograms): INVALID_ARGUMENT otherwise.
  virtual Status UpdateMetric(uint64_t id, MetricOp op, double value) = 0;
  // A counter's or gauge's value; a histogram's sum.
  virtual StatusOr<double> MetricValue(uint64_t id) = 0;
  virtual void ReleaseMetric(uint64_t id) = 0;
};

}  // namespace mm
