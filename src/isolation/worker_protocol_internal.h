// Shared by the worker protocol's codecs (worker_protocol_encode.cc,
// worker_protocol_decode.cc and worker_calls_protocol.cc); not part of the
// protocol's door.
#pragma once

#include <cassert>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace mm::worker_protocol_internal {

// Bytes as they may appear inside an error message: printable ASCII kept,
// anything else (newlines a peer could inject into a log, say) as '?'.
std::string Printable(std::string_view s);

// ------------------------------------------------------------------ writing

template <typename T>
void PutLe(std::string& out, T v) {
  using U = std::make_unsigned_t<T>;
  const U u = static_cast<U>(v);
  // One append of the bytes (not a push_back each: an Execute is mostly
  // fixed-width fields, and it is encoded per batch).
  char bytes[sizeof(U)];
  for (size_t i = 0; i < sizeof(U); ++i) bytes[i] = static_cast<char>((u >> (8 * i)) & 0xFF);
  out.append(bytes, sizeof(U));
}

inline void PutString(std::string& out, std::string_view s) {
  assert(s.size() <= std::numeric_limits<uint32_t>::max());
  PutLe<uint32_t>(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}

inline void PutParameter(std::string& out, const std::string& key, const ParameterValue& value) {
  PutString(out, key);
  PutLe<uint8_t>(out, static_cast<uint8_t>(value.index()));
  if (const bool* b = std::get_if<bool>(&value)) {
    PutLe<uint8_t>(out, *b ? 1 : 0);
  } else if (const int64_t* i = std::get_if<int64_t>(&value)) {
    PutLe<int64_t>(out, *i);
  } else if (const double* d = std::get_if<double>(&value)) {
    PutLe<uint64_t>(out, std::bit_cast<uint64_t>(*d));
  } else {
    PutString(out, std::get<std::string>(value));
  }
}

inline void PutStatus(std::string& out, const Status& status) {
  PutLe<uint32_t>(out, static_cast<uint32_t>(status.code()));
  const std::string& m = status.message();
  PutString(out, std::string_view(m).substr(0, kMaxStringBytes));
}

// ------------------------------------------------------------------ reading

// Reads a payload front to back. Every error names the message ("worker
// message Execute"), the current context ("input 2 'x': ") and the field.
class Reader {
 public:
  Reader(std::span<const std::byte> in, std::string_view message) : in_(in), message_(message) {}

  size_t remaining() const { return in_.size() - pos_; }
  size_t position() const { return pos_; }
  // What the fields read next belong to ("input 2 'x': "), kept as parts and
  // only put into words when there is an error to report.
  void SetContext(std::string_view label, size_t index, std::string_view name = {}) {
    label_ = label;
    index_ = index;
    name_ = name;
  }
  void ClearContext() { label_ = {}; }

  Status Error(std::string_view what) const {
    std::string m = "worker message ";
    m.append(message_).append(": ");
    if (!label_.empty()) {
      m.append(label_).append(" ").append(std::to_string(index_));
      if (!name_.empty()) m.append(" '").append(Printable(name_)).append("'");
      m.append(": ");
    }
    m.append(what);
    return InvalidArgument(std::move(m));
  }

  Status Need(size_t n, std::string_view field) const {
    if (n <= remaining()) return OkStatus();
    return Error(std::string(field) + ": truncated, needs " + std::to_string(n) + " bytes but " +
                 std::to_string(remaining()) + " remain");
  }

  template <typename T>
  Status Int(T& v, std::string_view field) {
    MM_RETURN_IF_ERROR(Need(sizeof(T), field));
    v = Take<T>();
    return OkStatus();
  }

  // Reads a T that the caller made sure remains (with Need or Count).
  template <typename T>
  T Take() {
    assert(sizeof(T) <= remaining());
    std::make_unsigned_t<T> u = 0;
    for (size_t i = 0; i < sizeof(T); ++i) {
      u |= static_cast<decltype(u)>(std::to_integer<uint8_t>(in_[pos_ + i])) << (8 * i);
    }
    pos_ += sizeof(T);
    return static_cast<T>(u);
  }

  // The next `n` bytes as a view (the caller made sure they remain).
  std::span<const std::byte> Bytes(size_t n) {
    assert(n <= remaining());
    auto out = in_.subspan(pos_, n);
    pos_ += n;
    return out;
  }

  // A length-prefixed string of min_bytes..max_bytes bytes.
  Status String(std::string& s, std::string_view field, size_t min_bytes, size_t max_bytes) {
    if (remaining() < sizeof(uint32_t)) {
      return Need(sizeof(uint32_t), std::string(field) + " length");
    }
    const auto n = Take<uint32_t>();
    if (n > max_bytes) {
      return Error(std::string(field) + ": length " + std::to_string(n) +
                   " exceeds the maximum of " + std::to_string(max_bytes));
    }
    if (n < min_bytes) {
      return Error(std::string(field) + ": length " + std::to_string(n) + ", expected " +
                   std::to_string(min_bytes) + " to " + std::to_string(max_bytes) + " bytes");
    }
    MM_RETURN_IF_ERROR(Need(n, field));
    s.assign(reinterpret_cast<const char*>(in_.data() + pos_), n);
    pos_ += n;
    return OkStatus();
  }

  // A list's count: at most max_count, and room left for that many items of
  // at least min_item_bytes each (so a lying count never drives an allocation).
  Status Count(uint32_t& n, std::string_view field, size_t max_count, size_t min_item_bytes) {
    MM_RETURN_IF_ERROR(Int(n, field));
    if (n > max_count) {
      return Error(std::string(field) + " " + std::to_string(n) + " exceeds the maximum of " +
                   std::to_string(max_count));
    }
    if (n > remaining() / min_item_bytes) {
      return Error(std::string(field) + " " + std::to_string(n) + ": truncated, needs at least " +
                   std::to_string(n * min_item_bytes) + " more bytes but " +
                   std::to_string(remaining()) + " remain");
    }
    return OkStatus();
  }

  Status Finish() {
    ClearContext();
    if (remaining() == 0) return OkStatus();
    return Error(std::to_string(remaining()) + " trailing bytes after the payload's " +
                 std::to_string(pos_) + " bytes");
  }

 private:
  std::span<const std::byte> in_;
  size_t pos_ = 0;
  std::string_view message_;
  std::string_view label_;  // empty: no context
  size_t index_ = 0;
  std::string_view name_;
};

// Rejects a name that appears twice; `name_of(i)` is item i's name, for i
// below n. A short list (the usual case) is checked pair by pair, without
// allocating; a long one is sorted.
template <typename NameOf>
Status CheckDistinct(Reader& r, std::string_view label, size_t n, NameOf name_of) {
  const auto duplicate = [&](size_t first, size_t second) {
    r.ClearContext();
    return r.Error(std::string(label) + " " + std::to_string(second) + " '" +
                   Printable(name_of(second)) + "': duplicate name (also " + std::string(label) +
                   " " + std::to_string(first) + ")");
  };
  if (n <= 32) {
    for (size_t i = 1; i < n; ++i) {
      for (size_t j = 0; j < i; ++j) {
        if (name_of(i) == name_of(j)) return duplicate(j, i);
      }
    }
    return OkStatus();
  }
  std::vector<std::pair<std::string_view, size_t>> sorted;
  sorted.reserve(n);
  for (size_t i = 0; i < n; ++i) sorted.emplace_back(name_of(i), i);
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i].first == sorted[i - 1].first) {
      return duplicate(sorted[i - 1].second, sorted[i].second);
    }
  }
  return OkStatus();
}

bool IsKnownDataType(uint32_t v);
bool IsKnownStatusCode(uint32_t v);
// A status code and message; the message must be empty when the code is OK.
Status ReadStatus(Reader& r, Status& out);
// One parameter (key, kind, value) as item `index` of a list; `p` keeps its buffers.
Status ReadParameter(Reader& r, size_t index, std::pair<std::string, ParameterValue>& p);

}  // namespace mm::worker_protocol_internal
