// Encoding half of the HTTP inference codec (infer_codec.h): an InferResponse
// as the KServe v2 JSON body, with binary outputs left as views for the
// connection to write after it.
#include "http/infer_codec.h"

#include <cstring>

#include "core/bytes_tensor.h"
#include "core/small_float.h"
#include "core/tensor_data.h"
#include "http/json_writer.h"

namespace mm {

bool HttpResponseFormat::IsBinary(std::string_view name) const {
  for (const auto& [output, binary] : per_output_binary) {
    if (output == name) return binary;
  }
  return binary_data_output;
}

namespace {

// Rough JSON bytes per element, to reserve the output once.
size_t JsonBytesPerElement(DataType dt) {
  switch (dt) {
    case DataType::kBool:
      return 6;
    case DataType::kUint8:
    case DataType::kInt8:
      return 5;
    case DataType::kUint16:
    case DataType::kInt16:
      return 7;
    case DataType::kUint32:
    case DataType::kInt32:
      return 12;
    case DataType::kFp16:
    case DataType::kBf16:
      return 14;
    case DataType::kFp32:
      return 16;
    default:
      return 24;
  }
}

template <typename T>
T Load(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // output data may be unaligned (a view into a request body)
  return v;
}

template <typename T, typename Append>
void AppendElements(std::string& out, std::span<const std::byte> data, Append append) {
  const size_t n = data.size() / sizeof(T);
  for (size_t i = 0; i < n; ++i) {
    if (i) out.push_back(',');
    append(out, Load<T>(data.data() + i * sizeof(T)));
  }
}

void AppendData(std::string& out, const Tensor& t,
                const std::vector<std::string_view>& bytes_elements) {
  auto d = t.data;
  switch (t.dtype) {
    case DataType::kBool:
      AppendElements<uint8_t>(out, d, [](std::string& o, uint8_t v) { AppendJsonBool(o, v != 0); });
      break;
    case DataType::kUint8:
      AppendElements<uint8_t>(out, d, [](std::string& o, uint8_t v) { AppendJsonUint(o, v); });
      break;
    case DataType::kUint16:
      AppendElements<uint16_t>(out, d, [](std::string& o, uint16_t v) { AppendJsonUint(o, v); });
      break;
    case DataType::kUint32:
      AppendElements<uint32_t>(out, d, [](std::string& o, uint32_t v) { AppendJsonUint(o, v); });
      break;
    case DataType::kUint64:
      AppendElements<uint64_t>(out, d, [](std::string& o, uint64_t v) { AppendJsonUint(o, v); });
      break;
    case DataType::kInt8:
      AppendElements<int8_t>(out, d, [](std::string& o, int8_t v) { AppendJsonInt(o, v); });
      break;
    case DataType::kInt16:
      AppendElements<int16_t>(out, d, [](std::string& o, int16_t v) { AppendJsonInt(o, v); });
      break;
    case DataType::kInt32:
      AppendElements<int32_t>(out, d, [](std::string& o, int32_t v) { AppendJsonInt(o, v); });
      break;
    case DataType::kInt64:
      AppendElements<int64_t>(out, d, [](std::string& o, int64_t v) { AppendJsonInt(o, v); });
      break;
    case DataType::kFp16:
      AppendElements<uint16_t>(
          out, d, [](std::string& o, uint16_t v) { AppendJsonFloat(o, HalfToFloat(v)); });
      break;
    case DataType::kBf16:
      AppendElements<uint16_t>(
          out, d, [](std::string& o, uint16_t v) { AppendJsonFloat(o, Bf16ToFloat(v)); });
      break;
    case DataType::kFp32:
      AppendElements<float>(out, d, [](std::string& o, float v) { AppendJsonFloat(o, v); });
      break;
    case DataType::kFp64:
      AppendElements<double>(out, d, [](std::string& o, double v) { AppendJsonDouble(o, v); });
      break;
    case DataType::kBytes:
      for (size_t i = 0; i < bytes_elements.size(); ++i) {
        if (i) out.push_back(',');
        AppendJsonString(out, bytes_elements[i]);
      }
      break;
    case DataType::kInvalid:
      break;
  }
}

bool InSharedMemory(const Tensor& t) { return t.parameters.count("shared_memory_region") > 0; }

// {"name":..,"datatype":..,"shape":[..]  (left open for data or parameters)
void AppendTensorHead(std::string& out, const Tensor& t) {
  out.append("{\"name\":");
  AppendJsonString(out, t.name);
  out.append(",\"datatype\":\"");
  out.append(DataTypeName(t.dtype));
  out.append("\",\"shape\":[");
  for (size_t d = 0; d < t.shape.size(); ++d) {
    if (d) out.push_back(',');
    AppendJsonInt(out, t.shape[d]);
  }
  out.push_back(']');
}

Status EncodeOutputs(const InferResponse& r, const HttpResponseFormat& fmt, std::string& out,
                     std::vector<std::span<const std::byte>>& chunks) {
  // Validate first and size the output once.
  size_t estimate = 128 + r.id.size() + r.model_name.size() + r.model_version.size();
  size_t binary_outputs = 0;
  for (const Tensor& t : r.outputs) {
    // Only an error names the output: no string built per output otherwise.
    auto what = [&] { return "output '" + t.name + "'"; };
    if (t.dtype == DataType::kInvalid || DataTypeName(t.dtype) == "INVALID") {
      return Internal(what() + " has no valid datatype");
    }
    if (InSharedMemory(t)) continue;  // written to its region; no data here
    auto count = ElementCount(t.shape, "");
    if (!count.ok()) return Internal(ElementCount(t.shape, what()).status().message());
    if (t.dtype != DataType::kBytes) {
      const size_t elem = DataTypeSize(t.dtype);
      if (t.data.size() % elem != 0 || t.data.size() / elem != static_cast<uint64_t>(*count)) {
        return Internal(what() + " holds " + std::to_string(t.data.size()) + " bytes, not " +
                        std::to_string(*count) + " " + std::string(DataTypeName(t.dtype)) +
                        " elements for shape " + ShapeToString(t.shape));
      }
    }
    estimate += 96 + t.name.size() + 21 * t.shape.size();
    if (fmt.IsBinary(t.name)) {
      ++binary_outputs;
    } else {
      estimate += t.dtype == DataType::kBytes
                      ? t.data.size() + static_cast<size_t>(*count) * 3
                      : static_cast<size_t>(*count) * JsonBytesPerElement(t.dtype);
    }
  }
  out.reserve(estimate);
  chunks.reserve(binary_outputs);

  out.append("{\"model_name\":");
  AppendJsonString(out, r.model_name);
  out.append(",\"model_version\":");
  AppendJsonString(out, r.model_version);
  if (!r.id.empty()) {
    out.append(",\"id\":");
    AppendJsonString(out, r.id);
  }
  if (!r.parameters.empty()) {
    out.append(",\"parameters\":");
    AppendJsonParameters(out, r.parameters);
  }
  out.append(",\"outputs\":[");
  std::vector<std::string_view> elements;
  for (size_t i = 0; i < r.outputs.size(); ++i) {
    const Tensor& t = r.outputs[i];
    if (i) out.push_back(',');
    if (InSharedMemory(t)) {
      // Written to its region: name, datatype and shape only, as Triton does.
      // Triton's C++ client (perf_analyzer) reads any output "parameters" as
      // binary data and fails without a binary_data_size.
      AppendTensorHead(out, t);
      out.push_back('}');
      continue;
    }
    const bool binary = fmt.IsBinary(t.name);
    elements.clear();
    if (t.dtype == DataType::kBytes) {
      const int64_t count = *ElementCount(t.shape, "");
      auto split = SplitBytesTensor(t.data, count, "output '" + t.name + "'");
      if (!split.ok()) return Internal(split.status().message());
      elements = std::move(split).value();
      if (!binary) {
        for (size_t e = 0; e < elements.size(); ++e) {
          if (!IsValidUtf8(elements[e])) {
            return InvalidArgument("output '" + t.name + "': BYTES element " + std::to_string(e) +
                                   " is not valid UTF-8 and cannot be written as JSON; request "
                                   "the output with \"binary_data\": true");
          }
        }
      }
    }
    AppendTensorHead(out, t);
    if (binary) {
      out.append(",\"parameters\":{\"binary_data_size\":");
      AppendJsonUint(out, t.data.size());
      out.append("}}");
      chunks.push_back(t.data);
    } else {
      out.append(",\"data\":[");
      AppendData(out, t, elements);
      out.append("]}");
    }
  }
  out.append("]}");
  return OkStatus();
}

}  // namespace

Status EncodeInferResponse(const InferResponse& r, const HttpResponseFormat& fmt,
                           std::string& json_out,
                           std::vector<std::span<const std::byte>>& binary_chunks_out) {
  json_out.clear();
  binary_chunks_out.clear();
  Status status = EncodeOutputs(r, fmt, json_out, binary_chunks_out);
  if (!status.ok()) {
    json_out.clear();
    binary_chunks_out.clear();
  }
  return status;
}

void EncodeError(std::string_view message, std::string& json_out) {
  json_out.clear();
  json_out.append("{\"error\":");
  AppendJsonString(json_out, message);
  json_out.push_back('}');
}

}  // namespace mm
