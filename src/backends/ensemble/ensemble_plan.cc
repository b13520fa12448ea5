#include "backends/ensemble/ensemble_plan.h"

#include <algorithm>
#include <map>
#include <optional>

namespace mm {

std::string StepLabel(int index, std::string_view model) {
  return "step " + std::to_string(index + 1) + " (model '" + std::string(model) + "')";
}

namespace {

// A tensor's type as one side of an edge sees it: the data type and the full
// shape (the batch dimension first, as -1, for a model that batches).
struct TensorType {
  inference::DataType dtype = inference::TYPE_INVALID;
  std::vector<int64_t> shape;
  std::string Describe() const {
    return std::string(DataTypeConfigName(static_cast<DataType>(dtype))) + " " +
           ShapeToString(shape);
  }
};

template <typename T>
TensorType TypeOf(const inference::ModelConfig& config, const T& tensor) {
  TensorType t;
  t.dtype = tensor.data_type();
  if (config.max_batch_size() > 0) t.shape.push_back(-1);
  t.shape.insert(t.shape.end(), tensor.dims().begin(), tensor.dims().end());
  return t;
}

bool Compatible(const TensorType& a, const TensorType& b) {
  if (a.dtype != b.dtype || a.shape.size() != b.shape.size()) return false;
  for (size_t i = 0; i < a.shape.size(); ++i) {
    if (a.shape[i] != -1 && b.shape[i] != -1 && a.shape[i] != b.shape[i]) return false;
  }
  return true;
}

template <typename T>
std::string Names(const google::protobuf::RepeatedPtrField<T>& tensors) {
  std::string out;
  for (const T& t : tensors) out += (out.empty() ? "'" : ", '") + t.name() + "'";
  return out.empty() ? "none" : out;
}

template <typename T>
const T* Find(const google::protobuf::RepeatedPtrField<T>& tensors, const std::string& name) {
  for (const T& t : tensors) {
    if (t.name() == name) return &t;
  }
  return nullptr;
}

// Who writes a tensor: the ensemble's input (step -1), or a step's output.
struct Writer {
  int step = -1;
  std::string output;  // the step model's output name
  TensorType type;
};

class Planner {
 public:
  Planner(const inference::ModelConfig& ensemble, std::span<const ComposingModel> models)
      : ensemble_(ensemble), models_(models) {}

  StatusOr<EnsemblePlan> Plan() {
    const auto& steps = ensemble_.ensemble_scheduling().step();
    plan_.ensemble = ensemble_.name();
    if (steps.empty()) {
      return Invalid("ensemble_scheduling has no step; expected at least one step");
    }
    for (const auto& in : ensemble_.input()) {
      const int t = TensorId(in.name());
      writers_[t] = Writer{-1, "", TypeOf(ensemble_, in)};
      plan_.inputs.push_back(t);
    }
    // Every step's model, maps and writes.
    configs_.resize(steps.size());
    for (int i = 0; i < steps.size(); ++i) MM_RETURN_IF_ERROR(ResolveStep(i, steps[i]));
    // Every read has a writer of the same type.
    for (int i = 0; i < steps.size(); ++i) MM_RETURN_IF_ERROR(CheckReads(i));
    for (const auto& out : ensemble_.output()) {
      auto id = ids_.find(out.name());
      auto w = id == ids_.end() ? writers_.end() : writers_.find(id->second);
      if (w == writers_.end() || w->second.step < 0) {
        return Invalid("ensemble output '" + out.name() + "' is written by no step; expected a " +
                       "step whose output_map names it");
      }
      const TensorType want = TypeOf(ensemble_, out);
      if (!Compatible(w->second.type, want)) {
        return Invalid("ensemble output '" + out.name() + "' is " + want.Describe() + ", but " +
                       StepLabel(w->second.step, steps[w->second.step].model_name()) +
                       " writes it (output '" + w->second.output + "') as " +
                       w->second.type.Describe());
      }
      plan_.outputs.push_back(id->second);
    }
    for (const auto& in : ensemble_.input()) {
      if (plan_.consumers[ids_.at(in.name())].empty()) {
        return Invalid("ensemble input '" + in.name() +
                       "' is read by no step; expected a step whose input_map names it");
      }
    }
    MM_RETURN_IF_ERROR(CheckAcyclic());
    MM_RETURN_IF_ERROR(CheckDecoupledFlows());
    return std::move(plan_);
  }

 private:
  Status Invalid(const std::string& message) const {
    return InvalidArgument("ensemble '" + ensemble_.name() + "': " + message);
  }

  int TensorId(const std::string& name) {
    auto [it, added] = ids_.emplace(name, static_cast<int>(plan_.tensors.size()));
    if (added) {
      plan_.tensors.push_back(name);
      plan_.consumers.emplace_back();
    }
    return it->second;
  }

  const ComposingModel* FindModel(const inference::ModelEnsembling::Step& step) const {
    // -1 and 0 (unset) both ask for the newest.
    const int64_t wanted = std::max<int64_t>(step.model_version(), -1);
    for (const ComposingModel& m : models_) {
      if (m.name != step.model_name()) continue;
      if (m.version == wanted || (wanted <= 0 && m.version <= 0)) return &m;
    }
    return nullptr;
  }

  Status ResolveStep(int i, const inference::ModelEnsembling::Step& step) {
    const std::string label = StepLabel(i, step.model_name());
    if (step.model_name().empty()) {
      return Invalid("step " + std::to_string(i + 1) + " names no model; expected model_name");
    }
    if (!step.model_namespace().empty()) {
      return Invalid(label + " sets model_namespace '" + step.model_namespace() +
                     "'; leave it empty: a step runs a model of the ensemble's own tenant");
    }
    if (step.model_name() == ensemble_.name()) {
      return Invalid(label + " runs the ensemble itself, a cycle; expected another model");
    }
    if (step.model_version() < -1) {  // (0, unset, is the newest too)
      return Invalid(label + " asks for model_version " + std::to_string(step.model_version()) +
                     "; expected -1 (the newest) or a version number");
    }
    const ComposingModel* model = FindModel(step);
    if (model == nullptr) {
      return Invalid(label + ": model '" + step.model_name() + "'" +
                     (step.model_version() > 0
                          ? " version " + std::to_string(step.model_version()) + " is not available"
                          : " does not exist") +
                     "; expected a model of the ensemble's repositories");
    }
    const inference::ModelConfig& config = model->config;
    configs_[i] = &config;
    if (config.model_transaction_policy().decoupled()) {
      if (!ensemble_.model_transaction_policy().decoupled()) {
        return Invalid(label + " is decoupled (model_transaction_policy): the ensemble must be " +
                       "decoupled too (model_transaction_policy { decoupled: true }), and its " +
                       "clients must stream");
      }
      if (plan_.decoupled_step >= 0) {
        return Invalid(
            label + " is decoupled, and so is " +
            StepLabel(plan_.decoupled_step, plan_.steps[plan_.decoupled_step].model_name) +
            "; expected at most one decoupled step");
      }
      plan_.decoupled_step = i;
    }
    if (ensemble_.max_batch_size() > 0 && config.max_batch_size() > 0 &&
        config.max_batch_size() < ensemble_.max_batch_size()) {
      return Invalid(label + " batches at most " + std::to_string(config.max_batch_size()) +
                     " rows (max_batch_size), fewer than the ensemble's " +
                     std::to_string(ensemble_.max_batch_size()));
    }
    EnsemblePlan::Step planned;
    planned.model_name = step.model_name();
    if (step.model_version() > 0) planned.model_version = std::to_string(step.model_version());
    // Sorted by the model's input name: maps have no order of their own.
    std::map<std::string, std::string> inputs(step.input_map().begin(), step.input_map().end());
    for (const auto& [input, tensor] : inputs) {
      if (Find(config.input(), input) == nullptr) {
        return Invalid(label + ": input_map names input '" + input + "', which model '" +
                       step.model_name() + "' does not have; its inputs are " +
                       Names(config.input()));
      }
      if (tensor.empty()) return Invalid(label + ": input '" + input + "' maps to no tensor");
      planned.inputs.push_back({input, TensorId(tensor)});
    }
    for (const auto& in : config.input()) {
      if (!in.optional() && !inputs.count(in.name())) {
        return Invalid(label + ": the model's input '" + in.name() +
                       "' is not in the step's input_map; expected every required input mapped "
                       "to an ensemble tensor");
      }
    }
    std::map<std::string, std::string> outputs(step.output_map().begin(), step.output_map().end());
    for (const auto& [output, tensor] : outputs) {
      const auto* out = Find(config.output(), output);
      if (out == nullptr) {
        return Invalid(label + ": output_map names output '" + output + "', which model '" +
                       step.model_name() + "' does not have; its outputs are " +
                       Names(config.output()));
      }
      if (tensor.empty()) return Invalid(label + ": output '" + output + "' maps to no tensor");
      const int t = TensorId(tensor);
      auto [w, added] = writers_.emplace(t, Writer{i, output, TypeOf(config, *out)});
      if (!added) {
        const std::string other =
            w->second.step < 0
                ? "it is an ensemble input"
                : StepLabel(w->second.step,
                            ensemble_.ensemble_scheduling().step(w->second.step).model_name()) +
                      " writes it too";
        return Invalid(label + " writes tensor '" + tensor + "' (output '" + output + "'), but " +
                       other + "; expected each tensor written once");
      }
      planned.outputs.push_back({output, t});
    }
    plan_.steps.push_back(std::move(planned));
    return OkStatus();
  }

  Status CheckReads(int i) {
    EnsemblePlan::Step& step = plan_.steps[i];
    const std::string label = StepLabel(i, step.model_name);
    std::vector<int> distinct;
    for (const EnsemblePlan::Binding& b : step.inputs) {
      auto w = writers_.find(b.tensor);
      const std::string& tensor = plan_.tensors[b.tensor];
      if (w == writers_.end()) {
        return Invalid(label + " reads tensor '" + tensor + "' (input '" + b.name +
                       "'), which is no ensemble input and which no step writes");
      }
      const TensorType want = TypeOf(*configs_[i], *Find(configs_[i]->input(), b.name));
      if (!Compatible(w->second.type, want)) {
        const std::string writer =
            w->second.step < 0 ? "the ensemble's input is"
                               : StepLabel(w->second.step, plan_.steps[w->second.step].model_name) +
                                     " writes it (output '" + w->second.output + "') as";
        return Invalid(label + " reads tensor '" + tensor + "' as input '" + b.name + "', " +
                       want.Describe() + ", but " + writer + " " + w->second.type.Describe());
      }
      if (std::find(distinct.begin(), distinct.end(), b.tensor) == distinct.end()) {
        distinct.push_back(b.tensor);
        plan_.consumers[b.tensor].push_back(i);
      }
    }
    step.waits_for = static_cast<int>(distinct.size());
    return OkStatus();
  }

  // With a decoupled step D: marks the steps after it (reading its outputs,
  // directly or not) and checks that they read only what a flow holds: D's
  // outputs, their own, and what exists before D starts (the ensemble's
  // inputs, the outputs of the steps D waits for); and that every ensemble
  // output comes from D or a step after it.
  Status CheckDecoupledFlows() {
    const size_t n = plan_.steps.size();
    plan_.after_decoupled.assign(n, false);
    const int d = plan_.decoupled_step;
    if (d < 0) return OkStatus();
    const auto& steps = ensemble_.ensemble_scheduling().step();
    std::vector<int> stack{d};
    while (!stack.empty()) {
      const int s = stack.back();
      stack.pop_back();
      for (const auto& out : plan_.steps[s].outputs) {
        for (int c : plan_.consumers[out.tensor]) {
          if (!plan_.after_decoupled[c]) {
            plan_.after_decoupled[c] = true;
            stack.push_back(c);
          }
        }
      }
    }
    // The steps D waits for, directly or not.
    std::vector<bool> before(n, false);
    stack = {d};
    while (!stack.empty()) {
      const int s = stack.back();
      stack.pop_back();
      for (const auto& in : plan_.steps[s].inputs) {
        const int w = writers_.at(in.tensor).step;
        if (w >= 0 && !before[w]) {
          before[w] = true;
          stack.push_back(w);
        }
      }
    }
    const std::string decoupled = StepLabel(d, steps[d].model_name());
    for (size_t s = 0; s < n; ++s) {
      if (!plan_.after_decoupled[s]) continue;
      for (const auto& in : plan_.steps[s].inputs) {
        const int w = writers_.at(in.tensor).step;
        if (w < 0 || w == d || plan_.after_decoupled[w] || before[w]) continue;
        return Invalid(StepLabel(static_cast<int>(s), plan_.steps[s].model_name) +
                       " reads tensor '" + plan_.tensors[in.tensor] + "', which " +
                       StepLabel(w, plan_.steps[w].model_name) + " writes beside the decoupled " +
                       decoupled + "; a step after a decoupled step may read only its outputs, " +
                       "what the steps after it write, and what exists before it starts");
      }
    }
    for (int t : plan_.outputs) {
      const int w = writers_.at(t).step;
      if (w == d || plan_.after_decoupled[w]) continue;
      return Invalid("ensemble output '" + plan_.tensors[t] + "' is written by " +
                     StepLabel(w, plan_.steps[w].model_name) + ", not by the decoupled " +
                     decoupled + " or a step after it: each response of a decoupled ensemble " +
                     "comes from one of the decoupled step's responses");
    }
    return OkStatus();
  }

  // Kahn's algorithm over the steps; what is left waits on itself.
  Status CheckAcyclic() const {
    const size_t n = plan_.steps.size();
    std::vector<int> left(n);  // tensors each step still waits for
    std::vector<int> ready;
    for (size_t i = 0; i < n; ++i) {
      std::vector<int> seen;
      int from_inputs = 0;
      for (const auto& b : plan_.steps[i].inputs) {
        if (std::find(seen.begin(), seen.end(), b.tensor) != seen.end()) continue;
        seen.push_back(b.tensor);
        if (writers_.at(b.tensor).step < 0) ++from_inputs;
      }
      left[i] = plan_.steps[i].waits_for - from_inputs;
      if (left[i] == 0) ready.push_back(static_cast<int>(i));
    }
    size_t done = 0;
    while (!ready.empty()) {
      const int s = ready.back();
      ready.pop_back();
      ++done;
      for (const auto& out : plan_.steps[s].outputs) {
        for (int c : plan_.consumers[out.tensor]) {
          if (--left[c] == 0) ready.push_back(c);
        }
      }
    }
    if (done == n) return OkStatus();
    // Name one cycle: walk back from a stuck step through stuck writers.
    int s = 0;
    while (left[s] == 0) ++s;
    std::vector<int> path;
    std::vector<std::string> via;
    while (std::find(path.begin(), path.end(), s) == path.end()) {
      path.push_back(s);
      for (const auto& b : plan_.steps[s].inputs) {
        const int w = writers_.at(b.tensor).step;
        if (w >= 0 && left[w] > 0) {
          via.push_back(plan_.tensors[b.tensor]);
          s = w;
          break;
        }
      }
    }
    // `path` ends in the loop that starts at s; report it in data-flow order.
    const auto start = std::find(path.begin(), path.end(), s) - path.begin();
    std::string cycle = StepLabel(s, plan_.steps[s].model_name);
    for (auto k = static_cast<ptrdiff_t>(path.size()) - 1; k >= start; --k) {
      cycle += " writes '" + via[k] + "', read by " +
               StepLabel(path[k], plan_.steps[path[k]].model_name);
    }
    return Invalid("its steps form a cycle: " + cycle +
                   "; expected every tensor to be written before the steps that read it");
  }

  const inference::ModelConfig& ensemble_;
  const std::span<const ComposingModel> models_;
  std::vector<const inference::ModelConfig*> configs_;  // per step
  std::map<std::string, int> ids_;                      // tensor name -> index
  std::map<int, Writer> writers_;                       // tensor index -> its writer
  EnsemblePlan plan_;
};

}  // namespace

StatusOr<EnsemblePlan> PlanEnsemble(const inference::ModelConfig& ensemble,
                                    std::span<const ComposingModel> models) {
  return Planner(ensemble, models).Plan();
}

}  // namespace mm
