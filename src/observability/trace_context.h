// W3C Trace Context: the `traceparent` header that carries a trace across
// services, and the random ids that start new traces and spans.
//
// A traceparent is "version-traceid-parentid-flags" in lowercase hex, e.g.
// "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01". Parsing follows
// the spec's rules for a receiver: an invalid header is ignored (the caller
// starts a new trace), and a header of a higher version than 00 is read as far
// as version 00 defines it.
//
// Ids come from a per-thread xoshiro256** generator seeded once per thread
// from std::random_device: no lock and no system call per id. They are random
// enough for trace ids (W3C asks for uniqueness, not secrecy) and never all
// zero. A process forked without exec shares its parent's generator state per
// thread; the server's workers exec, so this does not arise.
//
// Thread-safety: every function may be called from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mm {

struct TraceContext {
  std::array<uint8_t, 16> trace_id{};
  std::array<uint8_t, 8> span_id{};  // the parent-id of a traceparent: the caller's span
  uint8_t flags = 0;                 // trace-flags; bit 0 is "sampled"
  bool sampled() const { return flags & 1; }
  bool operator==(const TraceContext&) const = default;
};

// Parses a traceparent header value; nullopt when it is invalid. Surrounding
// spaces and tabs (HTTP's OWS) are ignored. Invalid: uppercase or non-hex
// digits, version "ff", an all-zero trace id or parent id, a version-00 value
// that is not exactly 55 characters, a higher version shorter than 55
// characters or not followed by '-' after the flags. For a higher version
// only the sampled bit of the flags is kept, as the spec asks.
std::optional<TraceContext> ParseTraceparent(std::string_view value);

// The version-00 traceparent for `ctx` (55 characters).
std::string FormatTraceparent(const TraceContext& ctx);

// Appends the lowercase hex of `bytes` (two characters per byte) to `out`.
void AppendHex(std::string& out, const uint8_t* bytes, size_t size);
template <size_t N>
void AppendHex(std::string& out, const std::array<uint8_t, N>& bytes) {
  AppendHex(out, bytes.data(), N);
}
template <size_t N>
std::string ToHex(const std::array<uint8_t, N>& bytes) {
  std::string out;
  AppendHex(out, bytes.data(), N);
  return out;
}

// True when every byte is zero: an invalid trace or span id.
template <size_t N>
bool IsZeroId(const std::array<uint8_t, N>& id) {
  for (uint8_t b : id) {
    if (b != 0) return false;
  }
  return true;
}

// A new trace: random trace id and span id, flags 01 when `sampled`.
TraceContext NewRootContext(bool sampled);
// A new span id (never all zero).
std::array<uint8_t, 8> NewSpanId();
// A new trace id (never all zero).
std::array<uint8_t, 16> NewTraceId();

// 64 bits from this thread's generator (also used for sampling decisions).
uint64_t TraceRandom64();

}  // namespace mm
