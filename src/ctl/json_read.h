// Lenient field readers over simdjson's DOM, for the server's replies: the
// ctl shows what it finds, and a field that is absent or of another type
// reads as the fallback rather than failing the whole listing.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace mm {

// obj[key] as a string; `fallback` when absent or not a string.
std::string_view JsonString(simdjson::dom::element obj, std::string_view key,
                            std::string_view fallback = "");
// obj[key] as an integer (an integral double or a uint64 saturating);
// `fallback` when absent or not a number.
int64_t JsonInt(simdjson::dom::element obj, std::string_view key, int64_t fallback = 0);
// obj[key] as a double; `fallback` when absent or not a number.
double JsonNumber(simdjson::dom::element obj, std::string_view key, double fallback = 0);
bool JsonBool(simdjson::dom::element obj, std::string_view key, bool fallback = false);

// Parses `text` into `doc` (valid while `parser` lives and parses nothing
// else). INVALID_ARGUMENT "<what> is not valid JSON: ..." when it is not.
Status ParseJson(simdjson::dom::parser& parser, std::string_view text, std::string_view what,
                 simdjson::dom::element& doc);

}  // namespace mm
