// EnsemblePlan: an ensemble's steps (config.ensemble_scheduling, Triton's
// format) checked against the configs of the models they run, and compiled
// into the dataflow an execution follows.
//
// Ensemble tensors are named: the ensemble's inputs, and whatever a step's
// output_map writes. A step reads tensors through its input_map (its model's
// input -> an ensemble tensor) and writes them through its output_map (its
// model's output -> an ensemble tensor). A step starts once every tensor it
// reads exists; the ensemble answers once every step has finished.
//
// PlanEnsemble refuses, naming the step and the tensor (INVALID_ARGUMENT):
//  - a step model that is not among `models` (the lifecycle passes every
//    model the ensemble's tenant sees and could load), or the ensemble itself;
//  - a map naming an input or output its model does not have, a required
//    input left unmapped, a tensor written twice or written over an ensemble
//    input;
//  - a tensor read that no step writes and that is no ensemble input, an
//    ensemble output no step writes, an ensemble input no step reads;
//  - a cycle (steps that wait on each other's tensors);
//  - a data type or shape that differs between the writer and a reader of a
//    tensor (shapes compare with the batch dimension included; -1 matches
//    any size), or a step model that batches fewer rows than the ensemble.
//  - a decoupled step in an ensemble that is not decoupled itself, or a
//    second decoupled step (see below).
//
// Decoupled steps. One step may be decoupled; the ensemble must then be
// decoupled too. Each response of that step starts a flow through the steps
// after it (those that read its outputs, directly or not), which may read
// only its outputs, their own, and tensors that exist before it starts (the
// ensemble's inputs, what the steps before it write). Each flow that
// finishes is one response of the ensemble; every ensemble output must come
// from the decoupled step or a step after it.
// Pure: no I/O; safe to call concurrently.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "core/data_type.h"
#include "core/shape.h"
#include "core/status.h"
#include "model_config.pb.h"

namespace mm {

struct EnsemblePlan {
  struct Binding {
    std::string name;  // the step model's input or output
    int tensor = 0;    // the ensemble tensor, an index into `tensors`
  };
  struct Step {
    std::string model_name;
    std::string model_version;  // "" for the newest (-1)
    std::vector<Binding> inputs;
    std::vector<Binding> outputs;  // the outputs the step asks its model for
    int waits_for = 0;             // distinct tensors it reads (it starts at 0 left)
  };
  std::string ensemble;                     // its name, for messages
  std::vector<std::string> tensors;         // by index
  std::vector<std::vector<int>> consumers;  // per tensor: the steps reading it
  std::vector<Step> steps;                  // in config order
  std::vector<int> inputs;                  // the ensemble's inputs (config order): tensors
  std::vector<int> outputs;                 // the ensemble's outputs (config order): tensors
  int decoupled_step = -1;                  // its decoupled step; -1: none
  std::vector<bool> after_decoupled;        // per step: in the decoupled step's flows
};

// The step's label in messages: "step 2 (model 'mlp')", counting from 1.
std::string StepLabel(int index, std::string_view model);

// See the header comment. `ensemble` is a validated config with
// ensemble_scheduling; `models` the configs the steps' models resolve to.
StatusOr<EnsemblePlan> PlanEnsemble(const inference::ModelConfig& ensemble,
                                    std::span<const ComposingModel> models);

}  // namespace mm
