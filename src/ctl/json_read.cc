#include "ctl/json_read.h"

#include <limits>

namespace mm {

namespace dom = simdjson::dom;

std::string_view JsonString(dom::element obj, std::string_view key, std::string_view fallback) {
  std::string_view s;
  if (obj[key].get(s)) return fallback;
  return s;
}

int64_t JsonInt(dom::element obj, std::string_view key, int64_t fallback) {
  dom::element e;
  if (obj[key].get(e)) return fallback;
  switch (e.type()) {
    case dom::element_type::INT64:
      return e.get_int64().value_unsafe();
    case dom::element_type::UINT64: {
      const uint64_t v = e.get_uint64().value_unsafe();
      return v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
                 ? std::numeric_limits<int64_t>::max()
                 : static_cast<int64_t>(v);
    }
    case dom::element_type::DOUBLE: {
      const double d = e.get_double().value_unsafe();
      if (!(d > -9.2e18 && d < 9.2e18)) return fallback;
      return static_cast<int64_t>(d);
    }
    default:
      return fallback;
  }
}

double JsonNumber(dom::element obj, std::string_view key, double fallback) {
  dom::element e;
  if (obj[key].get(e) || !e.is_number()) return fallback;
  double d;
  if (e.get_double().get(d)) return fallback;
  return d;
}

bool JsonBool(dom::element obj, std::string_view key, bool fallback) {
  bool b;
  if (obj[key].get(b)) return fallback;
  return b;
}

Status ParseJson(dom::parser& parser, std::string_view text, std::string_view what,
                 dom::element& doc) {
  if (auto err = parser.parse(text.data(), text.size()).get(doc)) {
    return InvalidArgument(std::string(what) +
                           " is not valid JSON: " + simdjson::error_message(err));
  }
  return OkStatus();
}

}  // namespace mm
