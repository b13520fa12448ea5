// How a TorchScript module's `forward` meets its config: which config input
// goes to which argument, which returned value is which config output, by
// Triton's PyTorch backend's rules, checked once at load.
//
// Inputs (the first rule that fits):
//  1. one Dict[str, Tensor] argument: every input goes in it, keyed by name;
//  2. FORWARD_ARGUMENT: every config input is named as an argument of forward;
//  3. NAMED_INDEX: every name is `<name>__<index>` (INPUT__0): the argument at
//     that index (each index once, within forward's arguments);
//  4. STRICT_CONFIG_ORDERING: the config's order (a warning when some name
//     looks like `<name>__<something>` but is not, as Triton warns).
// Outputs: `<name>__<index>` into the returned tuple or list, else the
// config's order; a returned dict is matched by key (the output's name).
//
// Checked here (INVALID_ARGUMENT, the message ending in forward's signature,
// "forward(Tensor x) -> Tensor"): the config lists inputs and outputs; the
// input count equals forward's argument count; TYPE_STRING inputs go to
// List[str] arguments (1-D) and other inputs to Tensor arguments; the return
// type is a Tensor, a tuple, a list or a Dict[str, Tensor], and its arity
// covers the outputs' indices when the type says it. What only a run can
// tell (a list's length, a dict's keys, dtypes) is checked per execution.
//
// Pure over the schema: no module is run; thread-safe.
#pragma once

#include <ATen/core/function_schema.h>

#include <string>
#include <vector>

#include "core/status.h"
#include "model_config.pb.h"

namespace mm {

enum class TorchValueKind {
  kTensor,
  kStringList,  // List[str]
  kTensorList,  // List[Tensor]
  kTuple,
  kTensorDict,  // Dict[str, Tensor]
  kOther,
};

struct ForwardArgument {
  std::string name;
  std::string type;  // as Python writes it: "Tensor", "List[str]", "Dict[str, Tensor]"
  TorchValueKind kind = TorchValueKind::kOther;
};

struct ForwardSignature {
  std::string text;                   // "forward(Tensor x, Tensor y) -> Tensor" (no self)
  std::vector<ForwardArgument> args;  // self excluded
  TorchValueKind returns = TorchValueKind::kOther;
  std::string return_type;            // "Tuple[Tensor, Tensor]"
  std::vector<TorchValueKind> tuple;  // the tuple's element kinds, when returns == kTuple
};

ForwardSignature ReadForwardSignature(const c10::FunctionSchema& schema);

// Where each config tensor goes. Positions are forward's arguments (self
// excluded) and the returned tuple's or list's elements.
struct TorchIoMap {
  bool dict_input = false;
  std::vector<int> input_position;   // per config input; -1 with dict_input
  std::vector<int> output_position;  // per config output (unused for a returned dict)
  std::string input_convention;      // "FORWARD_ARGUMENT", ... (for the log)
  std::string output_convention;
  std::vector<std::string> warnings;  // for the load to log
};

// The caller adds the model's name to an error.
StatusOr<TorchIoMap> MapTorchIo(const inference::ModelConfig& config,
                                const ForwardSignature& signature);

}  // namespace mm
