#include "http/json_fields.h"

#include <string>
#include <utility>

namespace mm {

namespace dom = simdjson::dom;
using dom::element_type;

std::string_view JsonTypeName(element_type t) {
  switch (t) {
    case element_type::ARRAY:
      return "an array";
    case element_type::OBJECT:
      return "an object";
    case element_type::INT64:
    case element_type::UINT64:
    case element_type::DOUBLE:
      return "a number";
    case element_type::STRING:
      return "a string";
    case element_type::BOOL:
      return "a boolean";
    case element_type::NULL_VALUE:
      return "null";
  }
  return "?";
}

Status WrongType(std::string_view where, std::string_view expected, dom::element e) {
  return InvalidArgument(std::string(where) + " must be " + std::string(expected) + ", got " +
                         std::string(JsonTypeName(e.type())));
}

Status DecodeParameter(const dom::key_value_pair& kv, std::string_view where, Parameters& out) {
  ParameterValue v;
  switch (kv.value.type()) {
    case element_type::BOOL:
      v = kv.value.get_bool().value_unsafe();
      break;
    case element_type::INT64:
      v = kv.value.get_int64().value_unsafe();
      break;
    case element_type::DOUBLE:
      v = kv.value.get_double().value_unsafe();
      break;
    case element_type::STRING:
      v = std::string(kv.value.get_string().value_unsafe());
      break;
    case element_type::UINT64:
      return InvalidArgument(std::string(where) + " '" + std::string(kv.key) +
                             "' is out of range for a 64-bit signed integer");
    default:
      return WrongType(std::string(where) + " '" + std::string(kv.key) + "'",
                       "a boolean, number or string", kv.value);
  }
  if (!out.emplace(std::string(kv.key), std::move(v)).second) {
    return InvalidArgument(std::string(where) + " has '" + std::string(kv.key) + "' twice");
  }
  return OkStatus();
}

Status DecodeParameters(dom::element e, std::string_view where, Parameters& out) {
  dom::object obj;
  if (e.get_object().get(obj)) return WrongType(where, "an object", e);
  for (dom::key_value_pair kv : obj) MM_RETURN_IF_ERROR(DecodeParameter(kv, where, out));
  return OkStatus();
}

}  // namespace mm
