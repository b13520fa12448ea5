// Decoding half of the HTTP inference codec (infer_codec.h): the JSON header
// of a request body (simdjson, parsed in place when the body is padded) and
// its binary section, into an InferRequest whose tensors view the body.
#include "http/infer_codec.h"

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "core/bytes_tensor.h"
#include "core/small_float.h"
#include "core/tensor_data.h"
#include "http/json_fields.h"

namespace mm {

static_assert(kRequestBodyPadding >= simdjson::SIMDJSON_PADDING);

namespace {

namespace dom = simdjson::dom;
using dom::element_type;

// ------------------------------------------------------------ tensor data

// Checks that `data` is a rectangular nest of arrays (or one scalar) and
// counts its leaves, so that no buffer is sized before the data backs it.
class NestChecker {
 public:
  Status Check(dom::element data, std::string_view what, int64_t& leaves) {
    leaves_ = 0;
    if (data.type() != element_type::ARRAY) {
      leaves = 1;
      return OkStatus();
    }
    if (!Walk(data.get_array().value_unsafe(), 0)) {
      return InvalidArgument(std::string(what) +
                             ": nested 'data' is ragged (sibling arrays differ in length or "
                             "depth)");
    }
    leaves = leaves_;
    return OkStatus();
  }

 private:
  bool Walk(dom::array a, size_t depth) {
    if (leaf_depth_ >= 0 && static_cast<ptrdiff_t>(depth) > leaf_depth_) return false;
    int64_t len = 0;
    for (dom::element e : a) {
      ++len;
      if (e.type() == element_type::ARRAY) {
        if (!Walk(e.get_array().value_unsafe(), depth + 1)) return false;
      } else {
        if (leaf_depth_ < 0) leaf_depth_ = static_cast<ptrdiff_t>(depth);
        if (leaf_depth_ != static_cast<ptrdiff_t>(depth) || max_array_depth_ > leaf_depth_) {
          return false;
        }
        ++leaves_;
      }
    }
    if (depth >= lengths_.size()) lengths_.resize(depth + 1, -1);
    if (lengths_[depth] < 0) {
      lengths_[depth] = len;
    } else if (lengths_[depth] != len) {
      return false;
    }
    max_array_depth_ = std::max(max_array_depth_, static_cast<ptrdiff_t>(depth));
    return true;
  }

  std::vector<int64_t> lengths_;  // array length seen at each depth (-1: none yet)
  ptrdiff_t leaf_depth_ = -1;     // depth of the arrays that hold scalars
  ptrdiff_t max_array_depth_ = -1;
  int64_t leaves_ = 0;
};

// Calls `f(element)` for each leaf of `data` in row-major order; stops at the
// first false and reports its flat index. With `nested` (a flat walk), an
// array inside `data` stops the walk too and sets *nested.
template <typename F>
bool ForEachLeaf(dom::element data, F& f, int64_t& index, bool* nested = nullptr) {
  if (data.type() != element_type::ARRAY) {
    if (!f(data)) return false;
    ++index;
    return true;
  }
  const dom::array arr = data.get_array().value_unsafe();  // not a temporary: loop below
  for (dom::element e : arr) {
    if (e.type() == element_type::ARRAY) {
      if (nested != nullptr) {
        *nested = true;
        return false;
      }
      if (!ForEachLeaf(e, f, index)) return false;
    } else {
      if (!f(e)) return false;
      ++index;
    }
  }
  return true;
}

// Exclusive upper bound of integer type T as a double: 2^digits.
template <typename T>
constexpr double kIntLimit = static_cast<double>(uint64_t{1}
                                                 << (std::numeric_limits<T>::digits - 1)) *
                             2;

template <typename T>
bool ToInteger(dom::element e, T& out) {
  switch (e.type()) {
    case element_type::INT64: {
      const int64_t v = e.get_int64().value_unsafe();
      if constexpr (std::is_signed_v<T>) {
        if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max()) return false;
      } else {
        if (v < 0 || static_cast<uint64_t>(v) > std::numeric_limits<T>::max()) return false;
      }
      out = static_cast<T>(v);
      return true;
    }
    case element_type::UINT64: {
      const uint64_t v = e.get_uint64().value_unsafe();
      if (v > static_cast<uint64_t>(std::numeric_limits<T>::max())) return false;
      out = static_cast<T>(v);
      return true;
    }
    case element_type::DOUBLE: {  // accepted when integral: 3.0, 1e2
      const double d = e.get_double().value_unsafe();
      const double lo = static_cast<double>(std::numeric_limits<T>::min());
      if (!(d >= lo && d < kIntLimit<T>) || std::trunc(d) != d) return false;
      out = static_cast<T>(d);
      return true;
    }
    default:
      return false;
  }
}

// A JSON number, or one of the strings that stand for NaN and infinities.
bool ToDouble(dom::element e, double& out) {
  const element_type t = e.type();
  if (IsNumber(t)) {
    out = e.get_double().value_unsafe();
    return true;
  }
  if (t == element_type::STRING) {
    const std::string_view s = e.get_string().value_unsafe();
    if (s == "NaN") {
      out = std::numeric_limits<double>::quiet_NaN();
    } else if (s == "Infinity") {
      out = std::numeric_limits<double>::infinity();
    } else if (s == "-Infinity") {
      out = -std::numeric_limits<double>::infinity();
    } else {
      return false;
    }
    return true;
  }
  return false;
}

// Largest magnitude that still rounds to a finite float (FLT_MAX + half an ulp, exclusive).
constexpr double kFloatOverflow = 0x1.ffffffp+127;

bool ToFloat(dom::element e, float& out) {
  double d;
  if (!ToDouble(e, d)) return false;
  if (std::isfinite(d) && std::fabs(d) >= kFloatOverflow) return false;
  out = static_cast<float>(d);
  return true;
}

// `kNarrow`: DoubleToHalf or DoubleToBf16 (core/small_float.h).
template <uint16_t (*kNarrow)(double, bool&)>
bool ToSmallFloat(dom::element e, uint16_t& out) {
  double d;
  if (!ToDouble(e, d)) return false;
  bool overflow;
  out = kNarrow(d, overflow);
  return !overflow;
}

// Why element `e` could not be converted to `dtype` (called only on failure).
std::string DescribeBadElement(dom::element e, DataType dtype) {
  const element_type t = e.type();
  const std::string type_name(DataTypeName(dtype));
  std::string value;
  if (IsNumber(t)) {
    value = simdjson::minify(e);
  }
  switch (dtype) {
    case DataType::kBool:
      return "expected true or false, got " +
             (value.empty() ? std::string(JsonTypeName(t)) : value);
    case DataType::kBytes:
      return "expected a string, got " + (value.empty() ? std::string(JsonTypeName(t)) : value);
    case DataType::kFp16:
    case DataType::kBf16:
    case DataType::kFp32:
    case DataType::kFp64:
      if (IsNumber(t)) return value + " is out of range for " + type_name;
      if (t == element_type::STRING) {
        return "expected a number (or \"NaN\", \"Infinity\", \"-Infinity\"), got a string";
      }
      return "expected a number, got " + std::string(JsonTypeName(t));
    default:
      if (t == element_type::DOUBLE) {
        const double d = e.get_double().value_unsafe();
        if (std::trunc(d) != d) return value + " is not an integer";
      }
      if (IsNumber(t)) return value + " is out of range for " + type_name;
      return "expected an integer, got " + std::string(JsonTypeName(t));
  }
}

// Converts every leaf of `data` with `convert(element, T&)` into a new buffer.
// `nested`: see ForEachLeaf (a flat walk; on *nested the result is an error
// to be dropped).
template <typename T, typename Convert>
Status ConvertFixed(dom::element data, int64_t count, DataType dtype, std::string_view what,
                    Convert convert, Tensor& t, bool* nested) {
  auto buffer = std::make_shared<ByteBuffer>(static_cast<size_t>(count) * sizeof(T));
  T* out = reinterpret_cast<T*>(buffer->bytes.get());
  dom::element bad;
  auto f = [&](dom::element e) {
    if (!convert(e, *out)) {
      bad = e;
      return false;
    }
    ++out;
    return true;
  };
  int64_t index = 0;
  if (!ForEachLeaf(data, f, index, nested)) {
    if (nested != nullptr && *nested) return InvalidArgument("nested");
    return InvalidArgument(std::string(what) + ": element " + std::to_string(index) + ": " +
                           DescribeBadElement(bad, dtype));
  }
  AttachBuffer(t, std::move(buffer));
  return OkStatus();
}

Status ConvertBytes(dom::element data, std::string_view what, Tensor& t) {
  // First pass sizes the serialized form exactly; the second fills it.
  size_t total = 0;
  dom::element bad;
  auto measure = [&](dom::element e) {
    if (e.type() != element_type::STRING) {
      bad = e;
      return false;
    }
    total += 4 + e.get_string_length().value_unsafe();
    return true;
  };
  int64_t index = 0;
  if (!ForEachLeaf(data, measure, index)) {
    return InvalidArgument(std::string(what) + ": element " + std::to_string(index) + ": " +
                           DescribeBadElement(bad, DataType::kBytes));
  }
  auto serialized = std::make_shared<std::string>();
  serialized->reserve(total);
  auto fill = [&](dom::element e) {
    AppendBytesElement(e.get_string().value_unsafe(), *serialized);
    return true;
  };
  index = 0;
  ForEachLeaf(data, fill, index);
  t.data = std::as_bytes(std::span<const char>(serialized->data(), serialized->size()));
  t.owner = std::move(serialized);
  return OkStatus();
}

// Converts `data`'s leaves, `count` of them (checked), into `t`; `nested`:
// see ConvertFixed.
Status ConvertLeaves(dom::element data, int64_t count, std::string_view what, Tensor& t,
                     bool* nested);

// simdjson's tape holds an array's length up to this; longer arrays say this.
constexpr size_t kTapeLengthSaturated = 0xFFFFFF;

Status DecodeJsonData(dom::element data, int64_t count, std::string_view what, Tensor& t) {
  // The usual form, a flat array of numbers: its length is on the parsed
  // tape, and its elements are checked and converted in one pass. Anything
  // else (nested arrays, a scalar, strings) takes the general path, which
  // checks the nest first; so does a flat walk that meets an array.
  if (data.type() == element_type::ARRAY && t.dtype != DataType::kBytes) {
    const size_t length = data.get_array().value_unsafe().size();
    if (length < kTapeLengthSaturated && static_cast<int64_t>(length) == count) {
      bool nested = false;
      Status flat = ConvertLeaves(data, count, what, t, &nested);
      if (!nested) return flat;
    }
  }
  int64_t leaves;
  MM_RETURN_IF_ERROR(NestChecker().Check(data, what, leaves));
  if (leaves != count) {
    return InvalidArgument(std::string(what) + ": expected " + std::to_string(count) +
                           " elements for shape " + ShapeToString(t.shape) + ", got " +
                           std::to_string(leaves));
  }
  return ConvertLeaves(data, count, what, t, nullptr);
}

Status ConvertLeaves(dom::element data, int64_t count, std::string_view what, Tensor& t,
                     bool* nested) {
  const DataType dt = t.dtype;
  switch (dt) {
    case DataType::kBool:
      return ConvertFixed<uint8_t>(
          data, count, dt, what,
          [](dom::element e, uint8_t& o) {
            if (e.type() != element_type::BOOL) return false;
            o = e.get_bool().value_unsafe() ? 1 : 0;
            return true;
          },
          t, nested);
    case DataType::kUint8:
      return ConvertFixed<uint8_t>(data, count, dt, what, ToInteger<uint8_t>, t, nested);
    case DataType::kUint16:
      return ConvertFixed<uint16_t>(data, count, dt, what, ToInteger<uint16_t>, t, nested);
    case DataType::kUint32:
      return ConvertFixed<uint32_t>(data, count, dt, what, ToInteger<uint32_t>, t, nested);
    case DataType::kUint64:
      return ConvertFixed<uint64_t>(data, count, dt, what, ToInteger<uint64_t>, t, nested);
    case DataType::kInt8:
      return ConvertFixed<int8_t>(data, count, dt, what, ToInteger<int8_t>, t, nested);
    case DataType::kInt16:
      return ConvertFixed<int16_t>(data, count, dt, what, ToInteger<int16_t>, t, nested);
    case DataType::kInt32:
      return ConvertFixed<int32_t>(data, count, dt, what, ToInteger<int32_t>, t, nested);
    case DataType::kInt64:
      return ConvertFixed<int64_t>(data, count, dt, what, ToInteger<int64_t>, t, nested);
    case DataType::kFp16:
      return ConvertFixed<uint16_t>(data, count, dt, what, ToSmallFloat<DoubleToHalf>, t, nested);
    case DataType::kBf16:
      return ConvertFixed<uint16_t>(data, count, dt, what, ToSmallFloat<DoubleToBf16>, t, nested);
    case DataType::kFp32:
      return ConvertFixed<float>(data, count, dt, what, ToFloat, t, nested);
    case DataType::kFp64:
      return ConvertFixed<double>(data, count, dt, what, ToDouble, t, nested);
    case DataType::kBytes:
      return ConvertBytes(data, what, t);
    case DataType::kInvalid:
      break;
  }
  return Internal(std::string(what) + ": unhandled datatype");
}

// "input 'x'" and the like, for error messages, built without an allocation
// when it fits the buffer: every request passes its tensors' labels down,
// and they are read only when something is wrong.
class Label {
 public:
  Label(std::string_view prefix, std::string_view name, std::string_view suffix = {}) {
    const size_t n = prefix.size() + name.size() + suffix.size();
    char* out = buffer_;
    if (n > sizeof buffer_) {
      heap_.resize(n);
      out = heap_.data();
    }
    std::memcpy(out, prefix.data(), prefix.size());
    std::memcpy(out + prefix.size(), name.data(), name.size());
    std::memcpy(out + prefix.size() + name.size(), suffix.data(), suffix.size());
    view_ = {out, n};
  }
  Label(const Label&) = delete;
  Label& operator=(const Label&) = delete;

  operator std::string_view() const { return view_; }
  std::string str() const { return std::string(view_); }

 private:
  char buffer_[128];
  std::string heap_;  // a label over the buffer's size
  std::string_view view_;
};

// ------------------------------------------------------------ request

struct PendingBinary {
  size_t input;  // index into request.inputs
  int64_t count;
  uint64_t size;
};

class RequestDecoder {
 public:
  // `header_given`: whether Inference-Header-Content-Length was sent (for messages).
  RequestDecoder(const std::shared_ptr<const std::string>& body, size_t header_length,
                 bool header_given)
      : body_(body), header_length_(header_length), header_given_(header_given) {}

  Status Decode(dom::element root, DecodedInferRequest& out) {
    dom::object obj;
    if (root.get_object().get(obj)) return WrongType("the request", "a JSON object", root);
    bool seen_id = false, seen_params = false, seen_inputs = false, seen_outputs = false;
    auto once = [](bool& seen, std::string_view key) {
      if (seen) return InvalidArgument("the request has '" + std::string(key) + "' twice");
      seen = true;
      return OkStatus();
    };
    for (dom::key_value_pair kv : obj) {
      if (kv.key == "id") {
        MM_RETURN_IF_ERROR(once(seen_id, kv.key));
        std::string_view id;
        if (kv.value.get_string().get(id)) return WrongType("'id'", "a string", kv.value);
        out.request.id = std::string(id);
      } else if (kv.key == "parameters") {
        MM_RETURN_IF_ERROR(once(seen_params, kv.key));
        MM_RETURN_IF_ERROR(DecodeRequestParameters(kv.value, out));
      } else if (kv.key == "inputs") {
        MM_RETURN_IF_ERROR(once(seen_inputs, kv.key));
        MM_RETURN_IF_ERROR(DecodeInputs(kv.value, out.request));
      } else if (kv.key == "outputs") {
        MM_RETURN_IF_ERROR(once(seen_outputs, kv.key));
        MM_RETURN_IF_ERROR(DecodeOutputs(kv.value, out));
      }  // other keys are ignored, as KServe allows extensions
    }
    if (!seen_inputs) return InvalidArgument("the request has no 'inputs'");
    return AttachBinary(out.request);
  }

 private:
  Status DecodeRequestParameters(dom::element e, DecodedInferRequest& out) {
    Parameters& params = out.request.parameters;
    MM_RETURN_IF_ERROR(DecodeParameters(e, "request 'parameters'", params));
    if (auto it = params.find("binary_data_output"); it != params.end()) {
      const bool* b = std::get_if<bool>(&it->second);
      if (b == nullptr) {
        return InvalidArgument("request parameter 'binary_data_output' must be a boolean");
      }
      out.format.binary_data_output = *b;
      params.erase(it);
    }
    return OkStatus();
  }

  Status DecodeInputs(dom::element e, InferRequest& request) {
    dom::array arr;
    if (e.get_array().get(arr)) return WrongType("'inputs'", "an array", e);
    request.inputs.reserve(std::min<size_t>(arr.size(), 64));  // a hint; size() saturates
    size_t index = 0;
    for (dom::element input : arr) {
      MM_RETURN_IF_ERROR(DecodeInput(input, index++, request));
    }
    return OkStatus();
  }

  // Requests carry a handful of tensors: duplicate names are found by a linear
  // scan of those already decoded, which allocates nothing.
  template <typename T>
  static bool HasName(const std::vector<T>& seen, std::string_view name) {
    return std::any_of(seen.begin(), seen.end(), [&](const T& t) { return t.name == name; });
  }

  Status DecodeInput(dom::element e, size_t index, InferRequest& request) {
    const std::string where = "inputs[" + std::to_string(index) + "]";
    dom::object obj;
    if (e.get_object().get(obj)) return WrongType(where, "an object", e);
    std::optional<std::string_view> name, datatype;
    std::optional<dom::element> shape, params, data;
    for (dom::key_value_pair kv : obj) {
      std::optional<dom::element>* slot = nullptr;
      if (kv.key == "name" || kv.key == "datatype") {
        auto& field = kv.key == "name" ? name : datatype;
        if (field) return InvalidArgument(where + " has '" + std::string(kv.key) + "' twice");
        std::string_view s;
        if (kv.value.get_string().get(s)) {
          return WrongType(where + " '" + std::string(kv.key) + "'", "a string", kv.value);
        }
        field = s;
        continue;
      }
      if (kv.key == "shape") slot = &shape;
      if (kv.key == "parameters") slot = &params;
      if (kv.key == "data") slot = &data;
      if (slot == nullptr) continue;
      if (*slot) return InvalidArgument(where + " has '" + std::string(kv.key) + "' twice");
      *slot = kv.value;
    }
    if (!name) return InvalidArgument(where + " has no 'name'");
    if (name->empty()) return InvalidArgument(where + " has an empty 'name'");
    const Label what("input '", *name, "'");
    if (HasName(request.inputs, *name)) return InvalidArgument(what.str() + " appears twice");
    if (!datatype) return InvalidArgument(what.str() + " has no 'datatype'");
    if (!shape) return InvalidArgument(what.str() + " has no 'shape'");

    Tensor& t = request.inputs.emplace_back();
    t.name = std::string(*name);
    std::optional<DataType> dt = DataTypeFromName(*datatype);
    if (!dt) {
      return InvalidArgument(what.str() + ": unknown datatype '" + std::string(*datatype) + "'");
    }
    t.dtype = *dt;
    MM_RETURN_IF_ERROR(DecodeShape(*shape, what, t.shape));
    MM_ASSIGN_OR_RETURN(int64_t count, ElementCount(t.shape, what));

    std::optional<uint64_t> binary_size;
    if (params) {
      dom::object pobj;
      if (params->get_object().get(pobj))
        return WrongType(what.str() + " 'parameters'", "an object", *params);
      const Label where_params("input '", *name, "' 'parameters'");
      for (dom::key_value_pair kv : pobj) {
        if (kv.key != "binary_data_size") {
          // Kept for the service, e.g. shared_memory_region.
          MM_RETURN_IF_ERROR(DecodeParameter(kv, where_params, t.parameters));
          continue;
        }
        int64_t size;
        if (binary_size || !GetNonNegative(kv.value, size)) {
          return InvalidArgument(what.str() + ": 'binary_data_size' must be given once, as a " +
                                 "non-negative integer");
        }
        binary_size = static_cast<uint64_t>(size);
      }
    }
    if (data && binary_size) {
      return InvalidArgument(what.str() + " has both 'data' and 'binary_data_size'");
    }
    if (data) return DecodeJsonData(*data, count, what, t);
    if (binary_size) {
      // One allocation for all the binary inputs, as for the inputs.
      if (pending_.capacity() == 0) pending_.reserve(request.inputs.capacity());
      pending_.push_back({request.inputs.size() - 1, count, *binary_size});
      return OkStatus();
    }
    if (t.parameters.count("shared_memory_region")) return OkStatus();  // the service maps it
    return InvalidArgument(what.str() + " has neither 'data', 'binary_data_size' nor a " +
                           "'shared_memory_region' parameter");
  }

  static Status DecodeShape(dom::element e, std::string_view what, Shape& shape) {
    dom::array arr;
    if (e.get_array().get(arr)) return WrongType(std::string(what) + " 'shape'", "an array", e);
    shape.reserve(std::min<size_t>(arr.size(), 16));  // a hint; size() saturates
    for (dom::element d : arr) {
      if (d.type() == element_type::INT64) {
        shape.push_back(d.get_int64().value_unsafe());  // negatives: ElementCount rejects them
      } else {
        return InvalidArgument(
            std::string(what) + ": 'shape' must hold integers that fit " + "int64, got " +
            (IsNumber(d.type()) ? simdjson::minify(d) : std::string(JsonTypeName(d.type()))));
      }
    }
    return OkStatus();
  }

  Status DecodeOutputs(dom::element e, DecodedInferRequest& out) {
    dom::array arr;
    if (e.get_array().get(arr)) return WrongType("'outputs'", "an array", e);
    out.request.outputs.reserve(std::min<size_t>(arr.size(), 64));  // hints, as for inputs
    out.format.per_output_binary.reserve(std::min<size_t>(arr.size(), 64));
    size_t index = 0;
    for (dom::element o : arr) {
      const std::string where = "outputs[" + std::to_string(index++) + "]";
      dom::object obj;
      if (o.get_object().get(obj)) return WrongType(where, "an object", o);
      std::optional<std::string_view> name;
      std::optional<dom::element> params;
      for (dom::key_value_pair kv : obj) {
        if (kv.key == "name") {
          if (name) return InvalidArgument(where + " has 'name' twice");
          std::string_view s;
          if (kv.value.get_string().get(s))
            return WrongType(where + " 'name'", "a string", kv.value);
          name = s;
        } else if (kv.key == "parameters") {
          if (params) return InvalidArgument(where + " has 'parameters' twice");
          params = kv.value;
        }
      }
      if (!name) return InvalidArgument(where + " has no 'name'");
      if (name->empty()) return InvalidArgument(where + " has an empty 'name'");
      const Label what("output '", *name, "'");
      if (HasName(out.request.outputs, *name)) {
        return InvalidArgument(what.str() + " is requested twice");
      }
      RequestedOutput& r = out.request.outputs.emplace_back();
      r.name = std::string(*name);
      if (!params) continue;
      // The usual {"binary_data": bool} alone needs no parameter map.
      dom::object pobj;
      if (!params->get_object().get(pobj) && pobj.size() == 1) {
        const dom::key_value_pair kv = *pobj.begin();
        bool binary = false;
        if (kv.key == "binary_data" && !kv.value.get_bool().get(binary)) {
          out.format.per_output_binary.emplace_back(r.name, binary);
          continue;
        }
      }
      MM_RETURN_IF_ERROR(
          DecodeParameters(*params, Label("output '", *name, "' 'parameters'"), r.parameters));
      if (auto it = r.parameters.find("binary_data"); it != r.parameters.end()) {
        const bool* b = std::get_if<bool>(&it->second);
        if (b == nullptr) return InvalidArgument(what.str() + ": 'binary_data' must be a boolean");
        out.format.per_output_binary.emplace_back(r.name, *b);
        r.parameters.erase(it);
      }
      if (auto it = r.parameters.find("class_count"); it != r.parameters.end()) {
        const int64_t* n = std::get_if<int64_t>(&it->second);
        if (n == nullptr || *n < 0) {
          return InvalidArgument(what.str() + ": 'class_count' must be a non-negative integer");
        }
        if (*n != 0) {
          return Unimplemented(
              what.str() + ": 'class_count' (the classification extension) is not " + "supported");
        }
        r.parameters.erase(it);
      }
    }
    return OkStatus();
  }

  // Points binary inputs at their slices of the body after the JSON header.
  Status AttachBinary(InferRequest& request) {
    const size_t available = body_->size() - header_length_;
    uint64_t declared = 0;
    for (const PendingBinary& p : pending_) {
      if (p.size > std::numeric_limits<uint64_t>::max() - declared) {
        declared = std::numeric_limits<uint64_t>::max();
        break;
      }
      declared += p.size;
    }
    if (declared != available) {
      return InvalidArgument("binary section has " + std::to_string(available) +
                             " bytes but inputs declare " + std::to_string(declared) +
                             (header_given_ || pending_.empty()
                                  ? ""
                                  : " (no Inference-Header-Content-Length header was given)"));
    }
    size_t offset = header_length_;
    for (const PendingBinary& p : pending_) {
      Tensor& t = request.inputs[p.input];
      const auto size = static_cast<size_t>(p.size);
      std::span<const std::byte> slice(reinterpret_cast<const std::byte*>(body_->data()) + offset,
                                       size);
      MM_RETURN_IF_ERROR(
          CheckTensorData(t.dtype, t.shape, p.count, slice, "input '" + t.name + "'"));
      t.data = slice;
      t.owner = body_;
      offset += size;
    }
    return OkStatus();
  }

  const std::shared_ptr<const std::string>& body_;
  const size_t header_length_;
  const bool header_given_;
  std::vector<PendingBinary> pending_;
};

// One parser per thread: its buffers are reused across requests, and released
// after a request that grew them past kMaxRetainedCapacity.
constexpr size_t kMaxRetainedCapacity = size_t{16} << 20;

}  // namespace

StatusOr<DecodedInferRequest> DecodeInferRequest(std::shared_ptr<const std::string> body,
                                                 std::optional<size_t> header_length) {
  if (body == nullptr) return InvalidArgument("the request has no body");
  const size_t json_size = header_length.value_or(body->size());
  if (json_size > body->size()) {
    return InvalidArgument("Inference-Header-Content-Length is " + std::to_string(json_size) +
                           " but the body has only " + std::to_string(body->size()) + " bytes");
  }
  if (json_size == 0) return InvalidArgument("the request JSON is empty");

  thread_local dom::parser parser;
  DecodedInferRequest out;
  Status status;
  {
    // Parse in place when the body's own allocation covers simdjson's padding.
    const bool copy = body->capacity() < json_size + simdjson::SIMDJSON_PADDING;
    dom::element root;
    simdjson::error_code err = parser.parse(body->data(), json_size, copy).get(root);
    if (err == simdjson::UTF8_ERROR) {
      status = InvalidArgument("the request JSON is not valid UTF-8");
    } else if (err) {
      status = InvalidArgument(std::string("the request JSON is invalid: ") +
                               simdjson::error_message(err));
    } else {
      RequestDecoder decoder(body, json_size, header_length.has_value());
      status = decoder.Decode(root, out);
    }
  }
  if (parser.capacity() > kMaxRetainedCapacity) parser = dom::parser();
  if (!status.ok()) return status;
  out.request.body = std::move(body);
  return out;
}

}  // namespace mm
