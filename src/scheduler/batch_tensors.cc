#include "scheduler/batch_tensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>

#include "core/shape.h"

namespace mm {

namespace {

constexpr size_t kNotFound = std::numeric_limits<size_t>::max();

// Index of the input named `name`, trying position `hint` first (requests of
// one client usually list their inputs in the same order); kNotFound if none.
size_t FindInput(const InferRequest& request, std::string_view name, size_t hint) {
  if (hint < request.inputs.size() && request.inputs[hint].name == name) return hint;
  for (size_t i = 0; i < request.inputs.size(); ++i) {
    if (request.inputs[i].name == name) return i;
  }
  return kNotFound;
}

// Why two requests cannot share a batch, found without allocating; MergeBatch
// turns it into a message.
struct Mismatch {
  enum Kind { kNone, kInputCount, kMissingInput, kNoBatchDimA, kNoBatchDimB, kDtype, kDims };
  Kind kind = kNone;
  size_t a_input = 0;  // index into a.inputs
  size_t b_input = 0;  // index into b.inputs (kNoBatchDimB, kDtype, kDims)
};

Mismatch FindMismatch(const InferRequest& a, const InferRequest& b) {
  if (a.inputs.size() != b.inputs.size()) return {Mismatch::kInputCount};
  for (size_t i = 0; i < a.inputs.size(); ++i) {
    const Tensor& ta = a.inputs[i];
    if (ta.shape.empty()) return {Mismatch::kNoBatchDimA, i};
    const size_t j = FindInput(b, ta.name, i);
    if (j == kNotFound) return {Mismatch::kMissingInput, i};
    const Tensor& tb = b.inputs[j];
    if (tb.shape.empty()) return {Mismatch::kNoBatchDimB, i, j};
    if (ta.dtype != tb.dtype) return {Mismatch::kDtype, i, j};
    if (ta.shape.size() != tb.shape.size() ||
        !std::equal(ta.shape.begin() + 1, ta.shape.end(), tb.shape.begin() + 1)) {
      return {Mismatch::kDims, i, j};
    }
  }
  return {};
}

std::string RequestLabel(size_t index) { return "request " + std::to_string(index); }

// The message for a mismatch between requests[0] (`a`) and requests[index] (`b`).
Status MismatchError(const Mismatch& m, const InferRequest& a, const InferRequest& b,
                     size_t index) {
  const std::string other = RequestLabel(index);
  std::string message = "cannot batch " + other + " with request 0: ";
  switch (m.kind) {
    case Mismatch::kNone:
      return OkStatus();
    case Mismatch::kInputCount:
      message += other + " has " + std::to_string(b.inputs.size()) + " inputs, request 0 has " +
                 std::to_string(a.inputs.size());
      break;
    case Mismatch::kMissingInput:
      message += "input '" + a.inputs[m.a_input].name + "' is missing from " + other;
      break;
    case Mismatch::kNoBatchDimA:
      message += "input '" + a.inputs[m.a_input].name + "' of request 0 has no batch dimension";
      break;
    case Mismatch::kNoBatchDimB:
      message += "input '" + b.inputs[m.b_input].name + "' of " + other + " has no batch dimension";
      break;
    case Mismatch::kDtype:
      message += "input '" + a.inputs[m.a_input].name + "' is " +
                 std::string(DataTypeName(b.inputs[m.b_input].dtype)) + " in " + other + " but " +
                 std::string(DataTypeName(a.inputs[m.a_input].dtype)) + " in request 0";
      break;
    case Mismatch::kDims:
      message += "input '" + a.inputs[m.a_input].name + "' has shape " +
                 ShapeToString(b.inputs[m.b_input].shape) + " in " + other + " but " +
                 ShapeToString(a.inputs[m.a_input].shape) +
                 " in request 0; only the batch dimension (dim 0) may differ";
      break;
  }
  return InvalidArgument(std::move(message));
}

// a + b, or false when it would overflow int64 (both non-negative).
bool AddChecked(int64_t a, int64_t b, int64_t& out) {
  if (a > std::numeric_limits<int64_t>::max() - b) return false;
  out = a + b;
  return true;
}

// a * b, or false when it would overflow int64 (both non-negative).
bool MulChecked(int64_t a, int64_t b, int64_t& out) {
  if (a != 0 && b > std::numeric_limits<int64_t>::max() / a) return false;
  out = a * b;
  return true;
}

// Checks that a fixed-size input holds exactly the bytes its shape declares
// (BYTES inputs are concatenated as they are and are not parsed here).
Status CheckInputSize(const Tensor& input, size_t index) {
  if (input.dtype == DataType::kBytes) return OkStatus();
  const std::string what = "input '" + input.name + "' of " + RequestLabel(index);
  const size_t element_size = DataTypeSize(input.dtype);
  if (element_size == 0) {
    return InvalidArgument(what + " has data type " + std::string(DataTypeName(input.dtype)) +
                           ", which cannot be batched");
  }
  MM_ASSIGN_OR_RETURN(int64_t count, ElementCount(input.shape, what));
  int64_t bytes = 0;
  if (!MulChecked(count, static_cast<int64_t>(element_size), bytes) ||
      static_cast<uint64_t>(bytes) != input.data.size()) {
    return InvalidArgument(what + " holds " + std::to_string(input.data.size()) + " bytes but " +
                           std::string(DataTypeName(input.dtype)) + " " +
                           ShapeToString(input.shape) + " needs " + std::to_string(count) + " x " +
                           std::to_string(element_size));
  }
  return OkStatus();
}

// Requested outputs of the batch: the union by name, or none (all) when any
// request asks for all.
std::vector<RequestedOutput> OutputUnion(std::span<InferRequest* const> requests) {
  std::vector<RequestedOutput> out;
  for (const InferRequest* request : requests) {
    if (request->outputs.empty()) return {};
  }
  for (const InferRequest* request : requests) {
    for (const RequestedOutput& output : request->outputs) {
      bool seen = false;
      for (const RequestedOutput& o : out) seen = seen || o.name == output.name;
      if (!seen) out.push_back(RequestedOutput{output.name, {}});
    }
  }
  return out;
}

bool WantsOutput(const InferRequest& request, std::string_view name) {
  if (request.outputs.empty()) return true;
  for (const RequestedOutput& o : request.outputs) {
    if (o.name == name) return true;
  }
  return false;
}

// Byte offsets of the row boundaries of `output`: bounds[i] is where the rows
// of request i begin, bounds[n] == data.size(). `row_starts` holds the first
// row of each request, and the total row count last.
StatusOr<std::vector<size_t>> RowBounds(const Tensor& output, std::span<const int64_t> row_starts) {
  const std::string what = "output '" + output.name + "'";
  const int64_t total_rows = row_starts.back();
  if (output.shape.empty()) {
    return Internal(what + " of the batched response has no batch dimension");
  }
  if (output.shape[0] != total_rows) {
    return Internal(what + " of the batched response has batch dimension " +
                    std::to_string(output.shape[0]) + " (shape " + ShapeToString(output.shape) +
                    "), not the sum of the requests' batch sizes, " + std::to_string(total_rows));
  }
  auto per_row = ElementCount(std::span<const int64_t>(output.shape).subspan(1), what);
  if (!per_row.ok()) return Internal(per_row.status().message());
  int64_t total_elements = 0;
  if (!MulChecked(*per_row, total_rows, total_elements)) {
    return Internal(what + ": shape " + ShapeToString(output.shape) +
                    " has more elements than fit in 64 bits");
  }

  std::vector<size_t> bounds(row_starts.size());
  if (output.dtype != DataType::kBytes) {
    const int64_t element_size = static_cast<int64_t>(DataTypeSize(output.dtype));
    int64_t row_bytes = 0, total_bytes = 0;
    if (element_size == 0 || !MulChecked(*per_row, element_size, row_bytes) ||
        !MulChecked(row_bytes, total_rows, total_bytes) ||
        static_cast<uint64_t>(total_bytes) != output.data.size()) {
      return Internal(what + " of the batched response holds " +
                      std::to_string(output.data.size()) + " bytes, which does not fit " +
                      std::string(DataTypeName(output.dtype)) + " " + ShapeToString(output.shape));
    }
    for (size_t i = 0; i < row_starts.size(); ++i) {
      bounds[i] = static_cast<size_t>(row_starts[i] * row_bytes);  // <= total_bytes
    }
    return bounds;
  }

  // BYTES: walk the length prefixes, noting the offset where each request's
  // first element begins.
  const std::span<const std::byte> data = output.data;
  size_t pos = 0;
  int64_t element = 0;
  for (size_t i = 0; i < row_starts.size(); ++i) {
    const int64_t target = row_starts[i] * *per_row;  // <= total_elements
    while (element < target) {
      if (data.size() - pos < 4) {
        return Internal(what + " of the batched response holds " + std::to_string(element) +
                        " BYTES elements where its shape " + ShapeToString(output.shape) +
                        " declares " + std::to_string(total_elements));
      }
      const auto* p = reinterpret_cast<const unsigned char*>(data.data() + pos);
      const uint32_t len =
          uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
      pos += 4;
      if (len > data.size() - pos) {
        return Internal(what + " of the batched response: BYTES element " +
                        std::to_string(element) + " declares " + std::to_string(len) +
                        " bytes but only " + std::to_string(data.size() - pos) + " remain");
      }
      pos += len;
      ++element;
    }
    bounds[i] = pos;
  }
  if (pos != data.size()) {
    return Internal(what + " of the batched response holds " + std::to_string(data.size() - pos) +
                    " bytes after the " + std::to_string(total_elements) +
                    " BYTES elements its shape " + ShapeToString(output.shape) + " declares");
  }
  return bounds;
}

}  // namespace

StatusOr<int64_t> RequestBatchSize(const InferRequest& request) {
  if (request.inputs.empty()) {
    return InvalidArgument("request has no inputs to take a batch size from");
  }
  const Tensor& first = request.inputs.front();
  for (const Tensor& input : request.inputs) {
    if (input.shape.empty()) {
      return InvalidArgument("input '" + input.name +
                             "' has no dimensions, but a batching model needs a batch dimension");
    }
    if (input.shape[0] < 0) {
      return InvalidArgument("input '" + input.name + "': batch dimension " +
                             std::to_string(input.shape[0]) + " is negative");
    }
    if (input.shape[0] != first.shape[0]) {
      return InvalidArgument("input '" + input.name + "': batch dimension " +
                             std::to_string(input.shape[0]) + " differs from input '" + first.name +
                             "''s " + std::to_string(first.shape[0]));
    }
  }
  return first.shape[0];
}

bool CanBatchTogether(const InferRequest& a, const InferRequest& b) {
  return FindMismatch(a, b).kind == Mismatch::kNone;
}

StatusOr<std::unique_ptr<InferRequest>> MergeBatch(std::span<InferRequest* const> requests) {
  if (requests.empty()) return InvalidArgument("cannot merge an empty batch");
  const InferRequest& first = *requests.front();
  for (size_t i = 0; i < first.inputs.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (first.inputs[i].name == first.inputs[j].name) {
        return InvalidArgument("input '" + first.inputs[i].name + "' appears twice in request 0");
      }
    }
  }
  // Batchability is an equivalence (same names, dtypes and trailing dims), so
  // comparing every request with the first covers every pair.
  for (size_t k = 1; k < requests.size(); ++k) {
    const Mismatch m = FindMismatch(first, *requests[k]);
    if (m.kind != Mismatch::kNone) return MismatchError(m, first, *requests[k], k);
  }
  int64_t total_rows = 0;
  for (size_t k = 0; k < requests.size(); ++k) {
    auto rows = RequestBatchSize(*requests[k]);
    if (!rows.ok()) return rows.status().WithContext(RequestLabel(k));
    if (!AddChecked(total_rows, *rows, total_rows)) {
      return InvalidArgument("the batch has more rows than fit in 64 bits");
    }
    for (const Tensor& input : requests[k]->inputs) {
      MM_RETURN_IF_ERROR(CheckInputSize(input, k));
    }
  }

  auto merged = std::make_unique<InferRequest>();
  merged->model_name = first.model_name;
  merged->model_version = first.model_version;
  merged->outputs = OutputUnion(requests);
  merged->inputs.reserve(first.inputs.size());

  if (requests.size() == 1) {
    // No copy: views of the request's own data, kept alive without it.
    merged->body = first.body;
    for (const Tensor& input : first.inputs) {
      merged->inputs.push_back(
          Tensor{input.name, input.dtype, input.shape, input.data, input.owner, {}});
    }
    return merged;
  }

  std::vector<const Tensor*> parts(requests.size());
  for (size_t i = 0; i < first.inputs.size(); ++i) {
    const Tensor& head = first.inputs[i];
    size_t total_bytes = 0;
    for (size_t k = 0; k < requests.size(); ++k) {
      parts[k] = &requests[k]->inputs[FindInput(*requests[k], head.name, i)];
      if (parts[k]->data.size() > std::numeric_limits<size_t>::max() - total_bytes) {
        return InvalidArgument("input '" + head.name + "': the batch has more bytes than fit");
      }
      total_bytes += parts[k]->data.size();
    }
    std::shared_ptr<std::byte[]> buffer = std::make_shared_for_overwrite<std::byte[]>(total_bytes);
    size_t offset = 0;
    for (const Tensor* part : parts) {
      if (!part->data.empty()) {
        std::memcpy(buffer.get() + offset, part->data.data(), part->data.size());
        offset += part->data.size();
      }
    }
    Tensor& out = merged->inputs.emplace_back();
    out.name = head.name;
    out.dtype = head.dtype;
    out.shape = head.shape;
    out.shape[0] = total_rows;
    out.data = {buffer.get(), total_bytes};
    out.owner = std::move(buffer);
  }
  return merged;
}

StatusOr<std::vector<std::unique_ptr<InferResponse>>> SplitBatch(
    std::shared_ptr<InferResponse> batched, std::span<InferRequest* const> requests,
    std::span<const int64_t> batch_sizes) {
  if (batched == nullptr) return Internal("splitting a batch without a batched response");
  if (requests.size() != batch_sizes.size()) {
    return Internal("splitting a batch of " + std::to_string(requests.size()) + " requests with " +
                    std::to_string(batch_sizes.size()) + " batch sizes");
  }
  // row_starts[i]: the first row of request i; row_starts[n]: the total.
  std::vector<int64_t> row_starts(requests.size() + 1, 0);
  for (size_t i = 0; i < batch_sizes.size(); ++i) {
    if (batch_sizes[i] < 0 || !AddChecked(row_starts[i], batch_sizes[i], row_starts[i + 1])) {
      return Internal("splitting a batch: invalid batch size " + std::to_string(batch_sizes[i]) +
                      " for " + RequestLabel(i));
    }
  }
  std::vector<std::vector<size_t>> bounds;
  bounds.reserve(batched->outputs.size());
  for (const Tensor& output : batched->outputs) {
    MM_ASSIGN_OR_RETURN(std::vector<size_t> b, RowBounds(output, row_starts));
    bounds.push_back(std::move(b));
  }
  for (size_t i = 0; i < requests.size(); ++i) {
    for (const RequestedOutput& wanted : requests[i]->outputs) {
      bool found = false;
      for (const Tensor& output : batched->outputs) found = found || output.name == wanted.name;
      if (!found) {
        return Internal("output '" + wanted.name + "' requested by " + RequestLabel(i) +
                        " is missing from the batched response");
      }
    }
  }

  const std::shared_ptr<const void> keep_alive = batched;
  std::vector<std::unique_ptr<InferResponse>> responses;
  responses.reserve(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    const InferRequest& request = *requests[i];
    auto response = std::make_unique<InferResponse>();
    response->model_name = request.model_name;
    response->model_version = request.model_version;
    response->id = request.id;
    response->parameters = batched->parameters;
    for (size_t j = 0; j < batched->outputs.size(); ++j) {
      const Tensor& output = batched->outputs[j];
      if (!WantsOutput(request, output.name)) continue;
      Tensor& view = response->outputs.emplace_back();
      view.name = output.name;
      view.dtype = output.dtype;
      view.shape = output.shape;
      view.shape[0] = batch_sizes[i];
      view.data = output.data.subspan(bounds[j][i], bounds[j][i + 1] - bounds[j][i]);
      view.owner = keep_alive;
      view.parameters = output.parameters;
    }
    responses.push_back(std::move(response));
  }
  return responses;
}

}  // namespace mm
