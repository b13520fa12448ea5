#include "http/generate_codec.h"

#include <simdjson.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/bytes_tensor.h"
#include "core/small_float.h"
#include "http/json_fields.h"
#include "http/json_writer.h"

namespace mm {
namespace {

namespace dom = simdjson::dom;
using dom::element_type;

constexpr size_t kMaxDepth = 64;

// Collects an input's leaves (scalars) in order; false when nested too deep.
bool Leaves(dom::element e, std::vector<dom::element>& out, size_t depth) {
  if (e.type() != element_type::ARRAY) {
    out.push_back(e);
    return true;
  }
  if (depth >= kMaxDepth) return false;
  const dom::array children = e.get_array().value_unsafe();  // not a temporary: loop below
  for (dom::element child : children) {
    if (!Leaves(child, out, depth + 1)) return false;
  }
  return true;
}

template <typename T>
bool ToInt(dom::element e, T& out) {
  if (e.type() == element_type::INT64) {
    const int64_t v = e.get_int64().value_unsafe();
    if (v < static_cast<int64_t>(std::numeric_limits<T>::min())) return false;
    if (v > 0 && static_cast<uint64_t>(v) > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
      return false;
    }
    out = static_cast<T>(v);
    return true;
  }
  if (e.type() == element_type::UINT64) {
    const uint64_t v = e.get_uint64().value_unsafe();
    if (v > static_cast<uint64_t>(std::numeric_limits<T>::max())) return false;
    out = static_cast<T>(v);
    return true;
  }
  return false;
}

// A JSON number, or the strings "NaN", "Infinity" and "-Infinity" (how
// EncodeGenerateResponse writes them: JSON has no such numbers).
bool ToDouble(dom::element e, double& out) {
  switch (e.type()) {
    case element_type::STRING: {
      const std::string_view s = e.get_string().value_unsafe();
      if (s == "NaN")
        out = std::numeric_limits<double>::quiet_NaN();
      else if (s == "Infinity")
        out = std::numeric_limits<double>::infinity();
      else if (s == "-Infinity")
        out = -std::numeric_limits<double>::infinity();
      else
        return false;
      return true;
    }
    case element_type::INT64:
      out = static_cast<double>(e.get_int64().value_unsafe());
      return true;
    case element_type::UINT64:
      out = static_cast<double>(e.get_uint64().value_unsafe());
      return true;
    case element_type::DOUBLE:
      out = e.get_double().value_unsafe();
      return true;
    default:
      return false;
  }
}

template <typename T>
void Put(std::string& bytes, T v) {
  bytes.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

// One leaf of dtype `t` appended to `bytes`; false when it does not fit.
bool Convert(dom::element e, DataType t, std::string& bytes) {
  switch (t) {
    case DataType::kBool: {
      if (e.type() != element_type::BOOL) return false;
      Put<uint8_t>(bytes, e.get_bool().value_unsafe() ? 1 : 0);
      return true;
    }
#define MM_INT_CASE(KIND, TYPE)     \
  case DataType::KIND: {            \
    TYPE v;                         \
    if (!ToInt(e, v)) return false; \
    Put(bytes, v);                  \
    return true;                    \
  }
      MM_INT_CASE(kInt8, int8_t)
      MM_INT_CASE(kInt16, int16_t)
      MM_INT_CASE(kInt32, int32_t)
      MM_INT_CASE(kInt64, int64_t)
      MM_INT_CASE(kUint8, uint8_t)
      MM_INT_CASE(kUint16, uint16_t)
      MM_INT_CASE(kUint32, uint32_t)
      MM_INT_CASE(kUint64, uint64_t)
#undef MM_INT_CASE
    case DataType::kFp32:
    case DataType::kFp64:
    case DataType::kFp16:
    case DataType::kBf16: {
      // A finite value too large for the type is refused, not made infinite.
      double d;
      if (!ToDouble(e, d)) return false;
      bool overflow = false;
      if (t == DataType::kFp32) {
        // Rounded to nearest: a value just past FLT_MAX (as "3.4028235e+38",
        // FLT_MAX's shortest form, reads) still rounds to FLT_MAX.
        const float f = static_cast<float>(d);
        overflow = std::isfinite(d) && std::isinf(f);
        Put(bytes, f);
      }
      if (t == DataType::kFp64) Put(bytes, d);
      if (t == DataType::kFp16) Put(bytes, DoubleToHalf(d, overflow));
      if (t == DataType::kBf16) Put(bytes, DoubleToBf16(d, overflow));
      return !overflow;
    }
    case DataType::kBytes: {
      if (e.type() != element_type::STRING) return false;
      AppendBytesElement(e.get_string().value_unsafe(), bytes);
      return true;
    }
    default:
      return false;
  }
}

// The config's dims with the variable ones resolved for `n` elements.
StatusOr<Shape> ShapeFor(const TensorMetadata& input, int64_t n) {
  Shape shape = input.shape;
  int64_t fixed = 1;
  int last_variable = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) {
      shape[i] = 1;
      last_variable = static_cast<int>(i);
    } else {
      fixed *= shape[i];
    }
  }
  if (last_variable >= 0 && fixed > 0 && n % fixed == 0) {
    shape[static_cast<size_t>(last_variable)] = n / fixed;
    return shape;
  }
  if (last_variable < 0 && fixed == n) return shape;
  return InvalidArgument("generate request: input '" + input.name + "' has " + std::to_string(n) +
                         " elements, which do not fit its shape " + ShapeToString(input.shape) +
                         " in the model's config");
}

Status ToParameter(std::string_view key, dom::element v, Parameters& out) {
  ParameterValue value;
  switch (v.type()) {
    case element_type::BOOL:
      value = v.get_bool().value_unsafe();
      break;
    case element_type::INT64:
      value = v.get_int64().value_unsafe();
      break;
    case element_type::DOUBLE:
      value = v.get_double().value_unsafe();
      break;
    case element_type::STRING:
      value = std::string(v.get_string().value_unsafe());
      break;
    default:
      return WrongType("generate request: '" + std::string(key) +
                           "' (not an input of the model, so a parameter)",
                       "a string, a number or a boolean", v);
  }
  if (!out.emplace(std::string(key), std::move(value)).second) {
    return InvalidArgument("generate request: parameter '" + std::string(key) + "' is given twice");
  }
  return OkStatus();
}

// Appends element `i` of `t` as a JSON value.
Status AppendElement(const Tensor& t, size_t i, std::string& out) {
  const std::byte* p = t.data.data() + i * DataTypeSize(t.dtype);
  auto load = [p]<typename T>(T*) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
  };
  switch (t.dtype) {
    case DataType::kBool:
      AppendJsonBool(out, load((uint8_t*)nullptr) != 0);
      break;
    case DataType::kInt8:
      AppendJsonInt(out, load((int8_t*)nullptr));
      break;
    case DataType::kInt16:
      AppendJsonInt(out, load((int16_t*)nullptr));
      break;
    case DataType::kInt32:
      AppendJsonInt(out, load((int32_t*)nullptr));
      break;
    case DataType::kInt64:
      AppendJsonInt(out, load((int64_t*)nullptr));
      break;
    case DataType::kUint8:
      AppendJsonUint(out, load((uint8_t*)nullptr));
      break;
    case DataType::kUint16:
      AppendJsonUint(out, load((uint16_t*)nullptr));
      break;
    case DataType::kUint32:
      AppendJsonUint(out, load((uint32_t*)nullptr));
      break;
    case DataType::kUint64:
      AppendJsonUint(out, load((uint64_t*)nullptr));
      break;
    case DataType::kFp16:
      AppendJsonFloat(out, HalfToFloat(load((uint16_t*)nullptr)));
      break;
    case DataType::kBf16:
      AppendJsonFloat(out, Bf16ToFloat(load((uint16_t*)nullptr)));
      break;
    case DataType::kFp32:
      AppendJsonFloat(out, load((float*)nullptr));
      break;
    case DataType::kFp64:
      AppendJsonDouble(out, load((double*)nullptr));
      break;
    default:
      return InvalidArgument("output '" + t.name + "' has type " +
                             std::string(DataTypeName(t.dtype)) +
                             ", which the generate response cannot write");
  }
  return OkStatus();
}

}  // namespace

StatusOr<InferRequest> DecodeGenerateRequest(std::string_view body,
                                             std::span<const TensorMetadata> inputs) {
  thread_local dom::parser parser;
  dom::element root;
  if (auto error = parser.parse(body.data(), body.size(), true).get(root); error) {
    return InvalidArgument(std::string("generate request: the body is not valid JSON: ") +
                           simdjson::error_message(error));
  }
  if (root.type() != element_type::OBJECT) {
    return WrongType("generate request body", "a JSON object", root);
  }
  InferRequest request;
  std::vector<dom::element> leaves;
  const dom::object fields = root.get_object().value_unsafe();  // not a temporary: loop below
  for (auto field : fields) {
    const std::string_view key = field.key;
    if (key == "parameters") {
      if (field.value.type() != element_type::OBJECT) {
        return WrongType("generate request: 'parameters'", "an object", field.value);
      }
      const dom::object parameters = field.value.get_object().value_unsafe();
      for (auto p : parameters) {
        MM_RETURN_IF_ERROR(ToParameter(p.key, p.value, request.parameters));
      }
      continue;
    }
    const TensorMetadata* input = nullptr;
    for (const TensorMetadata& m : inputs) {
      if (m.name == key) input = &m;
    }
    if (input == nullptr) {
      MM_RETURN_IF_ERROR(ToParameter(key, field.value, request.parameters));
      continue;
    }
    for (const Tensor& t : request.inputs) {
      if (t.name == key) {
        return InvalidArgument("generate request: input '" + std::string(key) + "' is given twice");
      }
    }
    leaves.clear();
    if (!Leaves(field.value, leaves, 0)) {
      return InvalidArgument("generate request: input '" + std::string(key) +
                             "' nests arrays deeper than " + std::to_string(kMaxDepth));
    }
    std::string bytes;
    for (dom::element leaf : leaves) {
      if (!Convert(leaf, input->dtype, bytes)) {
        return WrongType("generate request: an element of input '" + std::string(key) + "'",
                         "a value of its type " + std::string(DataTypeName(input->dtype)), leaf);
      }
    }
    MM_ASSIGN_OR_RETURN(Shape shape, ShapeFor(*input, static_cast<int64_t>(leaves.size())));
    auto buffer = std::make_shared<ByteBuffer>(bytes.size());
    if (!bytes.empty()) std::memcpy(buffer->bytes.get(), bytes.data(), bytes.size());
    Tensor t;
    t.name = std::string(key);
    t.dtype = input->dtype;
    t.shape = std::move(shape);
    AttachBuffer(t, std::move(buffer));
    request.inputs.push_back(std::move(t));
  }
  return request;
}

Status EncodeGenerateResponse(const InferResponse& response, std::string& out) {
  out += '{';
  AppendJsonKey(out, "model_name");
  AppendJsonString(out, response.model_name);
  out += ',';
  AppendJsonKey(out, "model_version");
  AppendJsonString(out, response.model_version);
  for (const Tensor& t : response.outputs) {
    auto count = ElementCount(t.shape, "output '" + t.name + "'");
    if (!count.ok()) return count.status();
    const auto n = static_cast<size_t>(*count);
    out += ',';
    AppendJsonKey(out, t.name);
    if (t.dtype == DataType::kBytes) {
      MM_ASSIGN_OR_RETURN(auto elements,
                          SplitBytesTensor(t.data, *count, "output '" + t.name + "'"));
      if (n != 1) out += '[';
      for (size_t i = 0; i < n; ++i) {
        if (i > 0) out += ',';
        AppendJsonString(out, elements[i]);
      }
      if (n != 1) out += ']';
      continue;
    }
    const size_t size = DataTypeSize(t.dtype);
    if (size == 0 || t.data.size() != n * size) {
      return InvalidArgument("output '" + t.name + "' has " + std::to_string(t.data.size()) +
                             " bytes; expected " + std::to_string(n * size) + " for shape " +
                             ShapeToString(t.shape) + " of " + std::string(DataTypeName(t.dtype)));
    }
    if (n != 1) out += '[';
    for (size_t i = 0; i < n; ++i) {
      if (i > 0) out += ',';
      MM_RETURN_IF_ERROR(AppendElement(t, i, out));
    }
    if (n != 1) out += ']';
  }
  out += '}';
  return OkStatus();
}

std::string SseEvent(std::string_view json) {
  std::string event;
  event.reserve(json.size() + 8);
  event += "data: ";
  event += json;
  event += "\n\n";
  return event;
}

std::string GenerateErrorJson(const Status& status) {
  std::string out = "{";
  AppendJsonKey(out, "error");
  AppendJsonString(out, status.message());
  out += '}';
  return out;
}

}  // namespace mm
