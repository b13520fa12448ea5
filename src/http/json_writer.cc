#include "http/json_writer.h"

#include <simdjson.h>

#include <charconv>
#include <cmath>
#include <string_view>
#include <type_traits>

namespace mm {

namespace {

template <typename T>
void AppendNumber(std::string& out, T v) {
  char buf[32];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, res.ptr);
}

template <typename F>
void AppendFloating(std::string& out, F v) {
  if (std::isnan(v)) {
    out.append("\"NaN\"");
  } else if (std::isinf(v)) {
    out.append(v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
  } else if (v == 0 && std::signbit(v)) {
    out.append("-0.0");  // "-0" would read back as the integer 0 and lose the sign
  } else {
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof(buf), v);
    // A large integral value comes out as bare digits ("18446744073709552000"):
    // a JSON integer past 64 bits, which strict readers (simdjson, our own
    // decoders) refuse. Such a value is written in scientific form.
    const std::string_view shortest(buf, static_cast<size_t>(res.ptr - buf));
    if (shortest.size() > 15 && shortest.find_first_of(".e") == std::string_view::npos) {
      res = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
    }
    out.append(buf, res.ptr);
  }
}

}  // namespace

void AppendJsonKey(std::string& out, std::string_view key) {
  AppendJsonString(out, key);
  out.push_back(':');
}

void AppendJsonInt(std::string& out, int64_t v) { AppendNumber(out, v); }
void AppendJsonUint(std::string& out, uint64_t v) { AppendNumber(out, v); }
void AppendJsonBool(std::string& out, bool v) { out.append(v ? "true" : "false"); }
void AppendJsonDouble(std::string& out, double v) { AppendFloating(out, v); }
void AppendJsonFloat(std::string& out, float v) { AppendFloating(out, v); }

void AppendJsonParameters(std::string& out, const Parameters& params) {
  out.push_back('{');
  bool first = true;
  for (const auto& [key, value] : params) {
    if (!first) out.push_back(',');
    first = false;
    AppendJsonKey(out, key);
    std::visit(
        [&out](const auto& v) {
          using V = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<V, bool>) {
            AppendJsonBool(out, v);
          } else if constexpr (std::is_same_v<V, int64_t>) {
            AppendJsonInt(out, v);
          } else if constexpr (std::is_same_v<V, double>) {
            AppendJsonDouble(out, v);
          } else {
            AppendJsonString(out, v);
          }
        },
        value);
  }
  out.push_back('}');
}

bool IsValidUtf8(std::string_view s) { return simdjson::validate_utf8(s.data(), s.size()); }

}  // namespace mm
