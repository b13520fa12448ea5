#include "backends/pytorch/torch_sandbox.h"

#include <torch/csrc/jit/runtime/operator.h>

#include <array>
#include <cctype>

#include "core/thread_annotations.h"

namespace mm {

namespace {

struct Reach {
  std::string_view name;  // an operator ("aten::save") or a namespace ("c10d::")
  std::string_view what;
};

constexpr std::array<Reach, 12> kReaches = {{
    {"aten::from_file", "reads a file of the server's"},
    {"aten::save", "writes a file on the server"},
    {"debugprims::", "reads files of the server's"},
    {"c10d::", "talks to other processes"},
    {"c10d_functional::", "talks to other processes"},
    {"_c10d_functional::", "talks to other processes"},
    {"_c10d_functional_autograd::", "talks to other processes"},
    {"dist_c10d::", "talks to other processes"},
    {"symm_mem::", "talks to other processes"},
    {"rpc::", "talks to other processes"},
    {"fsdp::", "talks to other processes"},
    {"_dtensor::", "talks to other processes"},
}};

Mutex removal_mu;  // one removal at a time (the registry has its own lock)

}  // namespace

std::optional<std::string_view> OutsideReach(std::string_view qualified_name) {
  for (const Reach& reach : kReaches) {
    const bool is_namespace = reach.name.ends_with("::");
    if (is_namespace ? qualified_name.starts_with(reach.name) : qualified_name == reach.name) {
      return reach.what;
    }
  }
  return std::nullopt;
}

int RemoveOutsideReachingOperators() {
  MutexLock lock(removal_mu);
  int removed = 0;
  for (const std::shared_ptr<torch::jit::Operator>& op : torch::jit::getAllOperators()) {
    const c10::FunctionSchema& schema = op->schema();
    if (OutsideReach(schema.name())) {
      torch::jit::deregisterOperator(schema);
      ++removed;
    }
  }
  return removed;
}

std::optional<std::string> RemovedOperatorIn(std::string_view error) {
  constexpr std::string_view kUnknown = "Unknown builtin op: ";
  const size_t at = error.find(kUnknown);
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view rest = error.substr(at + kUnknown.size());
  size_t end = 0;
  while (end < rest.size() && (std::isalnum(static_cast<unsigned char>(rest[end])) ||
                               rest[end] == '_' || rest[end] == ':' || rest[end] == '.')) {
    ++end;
  }
  std::string name(rest.substr(0, end));
  if (!name.empty() && name.back() == '.') name.pop_back();  // the sentence's full stop
  if (!OutsideReach(name)) return std::nullopt;
  return name;
}

}  // namespace mm
