// JSON writing for the HTTP transport: small appenders that write into a
// caller-owned std::string (reuse it across responses to keep its capacity).
// No allocation per value beyond the string's own growth; numbers go through
// std::to_chars. Used by the inference codec and the metadata/index handlers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/json_string.h"  // AppendJsonString
#include "core/tensor.h"

namespace mm {

// Appends `"key":`.
void AppendJsonKey(std::string& out, std::string_view key);

void AppendJsonInt(std::string& out, int64_t v);
void AppendJsonUint(std::string& out, uint64_t v);
void AppendJsonBool(std::string& out, bool v);

// Shortest decimal text that reads back to the same value ("0.1", "1e+30", "3").
// JSON has no NaN or infinities: they are written as the strings "NaN",
// "Infinity" and "-Infinity", which Python's float(), numpy and DecodeInferRequest
// all accept.
void AppendJsonDouble(std::string& out, double v);
void AppendJsonFloat(std::string& out, float v);

// Appends a KServe parameters object: {"name":value,...}.
void AppendJsonParameters(std::string& out, const Parameters& params);

// True when `s` is well-formed UTF-8 (no overlongs, surrogates or values past U+10FFFF).
bool IsValidUtf8(std::string_view s);

}  // namespace mm
