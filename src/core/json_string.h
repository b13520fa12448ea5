// JSON string literals, for every room that writes JSON by hand (the HTTP
// codecs, the tracer's OTLP export, JSON log lines).
#pragma once

#include <string>
#include <string_view>

namespace mm {

// Appends `s` quoted, escaping '"', '\\' and control characters (U+0000..U+001F).
// The result is always valid JSON: a byte that does not start a valid UTF-8
// sequence is written as U+FFFD. Callers that must not alter data (BYTES
// tensors) check validity first.
void AppendJsonString(std::string& out, std::string_view s);

}  // namespace mm
