// The pure parts of `ctl infer`: reading --input arguments, writing the
// request body (JSON, plus Triton's binary tensor extension for .npy data),
// and printing the outputs of a reply.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "ctl/json_tensor.h"

namespace mm {

// One --input argument: NAME=FILE.npy, NAME=@FILE.json (@FILE.npy also
// works), or NAME=<JSON array> inline.
struct InputSpec {
  enum class Kind { kNpyFile, kJsonFile, kInlineJson };
  std::string name;
  Kind kind = Kind::kInlineJson;
  std::string path;          // the files' path
  JsonTensor inline_tensor;  // kInlineJson: parsed when the argument is read
};

// Reads one --input argument. INVALID_ARGUMENT (a usage error) for a missing
// '=' or name, an empty value, or inline JSON that is not a rectangular array.
StatusOr<InputSpec> ParseInputSpec(std::string_view argument);

// An input ready to send: its bytes in `binary` (binary extension) or its
// JSON text in `json_data`.
struct PreparedInput {
  std::string name;
  std::string datatype;
  std::vector<int64_t> shape;
  bool binary = false;
  std::string binary_data;  // raw little-endian elements
  std::string json_data;    // a JSON array
};

struct InferBody {
  std::string body;
  std::optional<size_t> header_length;  // set when a binary section follows the JSON
};

// The request: every input, `outputs` asked by name (all of them when empty),
// every output asked as JSON (binary_data false).
InferBody BuildInferBody(const std::vector<PreparedInput>& inputs,
                         const std::vector<std::string>& outputs);

// One line per output of the reply `body` (its first `header_length` bytes
// are the JSON when set):
//   NAME: DATATYPE [d0,d1] = [v0, v1, ...]
// with at most `max_values` values (then "…" and the total count; 0: all).
// An output that came back in a binary section shows its size instead.
// INVALID_ARGUMENT when the reply is not an inference response.
StatusOr<std::string> FormatInferOutputs(std::string_view body, std::optional<size_t> header_length,
                                         size_t max_values);

}  // namespace mm
