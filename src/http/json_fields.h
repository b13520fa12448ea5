// Reading fields of a JSON request body (simdjson's DOM) with the errors the
// HTTP codecs give: what a field must be, and what it was. Internal to the
// HTTP room; the inference decoder reads every tensor's shape and parameters
// through it.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <string_view>

#include "core/infer_request.h"
#include "core/status.h"

namespace mm {

// "an array", "a number", "null"...: how an error names a JSON value's type.
std::string_view JsonTypeName(simdjson::dom::element_type t);

// INVALID_ARGUMENT "WHERE must be EXPECTED, got <e's type>".
Status WrongType(std::string_view where, std::string_view expected, simdjson::dom::element e);

inline bool IsNumber(simdjson::dom::element_type t) {
  using simdjson::dom::element_type;
  return t == element_type::INT64 || t == element_type::UINT64 || t == element_type::DOUBLE;
}

// Reads a non-negative JSON integer (shape dims, sizes) that fits int64.
inline bool GetNonNegative(simdjson::dom::element e, int64_t& out) {
  if (e.type() == simdjson::dom::element_type::INT64) {
    out = e.get_int64().value_unsafe();
    return out >= 0;
  }
  return false;
}

// KServe parameters: an object of bool / int64 / double / string, added to
// `out`. INVALID_ARGUMENT naming `where` and the key for another type, an
// integer beyond int64, or a key given twice.
Status DecodeParameters(simdjson::dom::element e, std::string_view where, Parameters& out);
// One key of such an object (for a caller already iterating it).
Status DecodeParameter(const simdjson::dom::key_value_pair& kv, std::string_view where,
                       Parameters& out);

}  // namespace mm
