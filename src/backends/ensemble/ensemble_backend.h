// The ensemble backend (platform "ensemble"): Triton's ensembles, pipelines
// of other models described by config.ensemble_scheduling (docs/ensembles.md).
//
// Load checks the steps against the models they run (LoadSpec::composing,
// which the lifecycle loads first) and compiles them (ensemble_plan.h). The
// model is asynchronous (LoadedModel::asynchronous): an execution only starts
// its request's steps, each sent through the server (ModelHost::InferStep) to
// its own model's scheduler, with that model's batching, priorities and fair
// share, as a request of the ensemble's tenant that was admitted already. A
// step starts as soon as every tensor it reads exists, so independent
// branches run in parallel; tensors pass from step to step as the views the
// models answered with (no copy). The request's "priority" and other
// parameters go to every step; its "timeout" (µs) bounds the whole
// pipeline: a step that would start after it fails the request
// (DEADLINE_EXCEEDED), and each step gets what is left as its own timeout.
// A client that goes away cancels the steps not yet started (and those
// queued: they share its cancellation). The first step to fail fails the
// request, with the step and its model named.
//
// Timing: the response's queue time and stages are the sums of its steps'
// (as Triton reports an ensemble's), its compute time 0 (the steps are
// charged theirs), and InferResponse::steps holds one entry per step.
//
// A decoupled step (ensemble_plan.h): each of its responses starts a flow
// through the steps after it, and each finished flow is one response of the
// (decoupled) ensemble; the final flag follows the step's own final and the
// last flow.
#pragma once

#include <memory>
#include <string_view>

#include "backends/backend.h"

namespace mm {

inline constexpr std::string_view kEnsemblePlatform = "ensemble";

// Ensemble requests in flight at once when max_inflight_requests is 0.
inline constexpr size_t kDefaultEnsembleInflight = 1024;

class EnsembleBackend final : public Backend {
 public:
  StatusOr<std::unique_ptr<LoadedModel>> Load(const LoadSpec& spec) override;
};

}  // namespace mm
