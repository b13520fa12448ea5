#include "backends/pytorch/torch_archive.h"

#include <caffe2/serialize/inline_container.h>

#include <array>
#include <string>
#include <string_view>

namespace mm {

namespace {

struct Reach {
  std::string_view name;  // as it appears in code, spaces removed
  std::string_view what;
};

constexpr std::array<Reach, 7> kReaches = {{
    {".from_file(", "reads a file of the server's"},
    {"torch.save", "writes a file on the server"},
    {"aten.save", "writes a file on the server"},
    {"debugprims", "reads files of the server's"},
    {"c10d", "talks to other processes"},
    {"symm_mem", "talks to other processes"},
    {"ops.rpc", "talks to other processes"},
}};

bool IsCode(std::string_view record) {
  return (record.starts_with("code/") || record.find("/code/") != std::string_view::npos) &&
         record.ends_with(".py");
}

}  // namespace

Status CheckArchiveCode(const std::filesystem::path& path) {
  std::string error;
  try {
    caffe2::serialize::PyTorchStreamReader reader(path.string());
    for (const std::string& record : reader.getAllRecords()) {
      if (!IsCode(record)) continue;
      const size_t size = reader.getRecordSize(record);
      if (size > kMaxArchiveCodeBytes) {
        return InvalidArgument("its code file " + record + " holds " + std::to_string(size) +
                               " bytes; at most " + std::to_string(kMaxArchiveCodeBytes) +
                               " are read");
      }
      std::string code(size, '\0');
      if (size > 0) reader.getRecord(record, code.data(), size);
      std::string compact;
      compact.reserve(code.size());
      for (char c : code) {
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\\' && c != '\f' &&
            c != '\v') {
          compact.push_back(c);
        }
      }
      for (const Reach& reach : kReaches) {
        if (compact.find(reach.name) != std::string::npos) {
          return InvalidArgument(
              "its code file " + record + " names '" + std::string(reach.name) +
              "', an operator that " + std::string(reach.what) +
              "; the PyTorch backend refuses modules that reach outside the model (the check "
              "is by name: rename anything else so called)");
        }
      }
    }
    return OkStatus();
  } catch (const c10::Error& e) {
    error = e.what_without_backtrace();
  } catch (const std::exception& e) {
    error = e.what();
  }
  return InvalidArgument(error);
}

}  // namespace mm
