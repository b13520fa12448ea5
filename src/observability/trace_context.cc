#include "observability/trace_context.h"

#include <bit>
#include <chrono>
#include <random>

namespace mm {

namespace {

constexpr size_t kVersion00Size = 55;  // "00-" + 32 + "-" + 16 + "-" + 2

// Value of a lowercase hex digit, or -1.
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Decodes 2 * out.size() lowercase hex digits from `s`; false on any other
// character.
template <size_t N>
bool DecodeHex(std::string_view s, std::array<uint8_t, N>& out) {
  for (size_t i = 0; i < N; ++i) {
    const int hi = HexValue(s[2 * i]);
    const int lo = HexValue(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

uint64_t SplitMix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// xoshiro256** (Blackman & Vigna). Zero-initialised so that the thread_local
// below needs no dynamic initialisation; seeded on first use.
struct Xoshiro256 {
  uint64_t s[4];
  bool seeded;

  void Seed() {
    uint64_t seed = 0;
    try {
      std::random_device rd;
      seed = (static_cast<uint64_t>(rd()) << 32) ^ rd();
      seed ^= static_cast<uint64_t>(rd()) << 16;
    } catch (...) {
      // No entropy source: the clock and this thread's address still give
      // distinct streams per thread and per process start.
    }
    seed ^= static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    seed ^= reinterpret_cast<uintptr_t>(this);
    // SplitMix64 spreads one seed over the state and never yields all zeros
    // for four consecutive outputs.
    for (uint64_t& w : s) w = SplitMix64(seed);
    seeded = true;
  }

  uint64_t Next() {
    if (!seeded) [[unlikely]]
      Seed();
    const uint64_t result = std::rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = std::rotl(s[3], 45);
    return result;
  }
};

thread_local Xoshiro256 tls_rng{};

void StoreBigEndian(uint64_t v, uint8_t* out) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

}  // namespace

std::optional<TraceContext> ParseTraceparent(std::string_view value) {
  const std::string_view s = TrimOws(value);
  if (s.size() < kVersion00Size) return std::nullopt;
  std::array<uint8_t, 1> version{};
  if (!DecodeHex(s.substr(0, 2), version) || version[0] == 0xff) return std::nullopt;
  if (version[0] == 0 && s.size() != kVersion00Size) return std::nullopt;
  // A higher version may carry more fields, each after a '-'.
  if (s.size() > kVersion00Size && s[kVersion00Size] != '-') return std::nullopt;
  if (s[2] != '-' || s[35] != '-' || s[52] != '-') return std::nullopt;
  TraceContext ctx;
  std::array<uint8_t, 1> flags{};
  if (!DecodeHex(s.substr(3, 32), ctx.trace_id) || !DecodeHex(s.substr(36, 16), ctx.span_id) ||
      !DecodeHex(s.substr(53, 2), flags)) {
    return std::nullopt;
  }
  if (IsZeroId(ctx.trace_id) || IsZeroId(ctx.span_id)) return std::nullopt;
  // Version 00 defines the whole byte (sampled, and later "random"); of a
  // higher version only the sampled bit is understood.
  ctx.flags = version[0] == 0 ? flags[0] : static_cast<uint8_t>(flags[0] & 1);
  return ctx;
}

void AppendHex(std::string& out, const uint8_t* bytes, size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  const size_t at = out.size();
  out.resize(at + 2 * size);  // one growth, then plain stores
  char* p = out.data() + at;
  for (size_t i = 0; i < size; ++i) {
    p[2 * i] = kHex[bytes[i] >> 4];
    p[2 * i + 1] = kHex[bytes[i] & 0xF];
  }
}

std::string FormatTraceparent(const TraceContext& ctx) {
  std::string out;
  out.reserve(kVersion00Size);
  out.append("00-");
  AppendHex(out, ctx.trace_id);
  out.push_back('-');
  AppendHex(out, ctx.span_id);
  out.push_back('-');
  AppendHex(out, &ctx.flags, 1);
  return out;
}

uint64_t TraceRandom64() { return tls_rng.Next(); }

std::array<uint8_t, 8> NewSpanId() {
  std::array<uint8_t, 8> id{};
  do {
    StoreBigEndian(tls_rng.Next(), id.data());
  } while (IsZeroId(id));
  return id;
}

std::array<uint8_t, 16> NewTraceId() {
  std::array<uint8_t, 16> id{};
  do {
    StoreBigEndian(tls_rng.Next(), id.data());
    StoreBigEndian(tls_rng.Next(), id.data() + 8);
  } while (IsZeroId(id));
  return id;
}

TraceContext NewRootContext(bool sampled) {
  TraceContext ctx;
  ctx.trace_id = NewTraceId();
  ctx.span_id = NewSpanId();
  ctx.flags = sampled ? 1 : 0;
  return ctx;
}

}  // namespace mm
