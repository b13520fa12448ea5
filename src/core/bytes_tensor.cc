#include "core/bytes_tensor.h"

#include <cstring>

namespace mm {

namespace {

// Walks the elements of `data`, calling `element(view)` for each; the
// messages of SplitBytesTensor and CheckBytesTensor.
template <typename OnElement>
Status WalkBytesTensor(std::span<const std::byte> data, int64_t expected, std::string_view what,
                       OnElement element) {
  int64_t seen = 0;
  size_t pos = 0;
  while (pos < data.size()) {
    if (data.size() - pos < 4) {
      return InvalidArgument(std::string(what) +
                             ": BYTES data is truncated: " + std::to_string(data.size() - pos) +
                             " bytes left where a 4-byte length prefix was expected");
    }
    const auto* p = reinterpret_cast<const unsigned char*>(data.data() + pos);
    uint32_t len =
        uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
    pos += 4;
    if (len > data.size() - pos) {
      return InvalidArgument(std::string(what) + ": BYTES element " + std::to_string(seen) +
                             " declares " + std::to_string(len) + " bytes but only " +
                             std::to_string(data.size() - pos) + " remain");
    }
    if (seen >= expected) {
      return InvalidArgument(std::string(what) + ": BYTES data holds more than the " +
                             std::to_string(expected) + " elements its shape declares");
    }
    element(std::string_view(reinterpret_cast<const char*>(data.data() + pos), len));
    ++seen;
    pos += len;
  }
  if (seen != expected) {
    return InvalidArgument(std::string(what) + ": BYTES data holds " + std::to_string(seen) +
                           " elements but its shape declares " + std::to_string(expected));
  }
  return OkStatus();
}

}  // namespace

StatusOr<std::vector<std::string_view>> SplitBytesTensor(std::span<const std::byte> data,
                                                         int64_t expected, std::string_view what) {
  std::vector<std::string_view> out;
  if (expected > 0 && static_cast<uint64_t>(expected) <= data.size() / 4) {
    out.reserve(static_cast<size_t>(expected));
  }
  MM_RETURN_IF_ERROR(
      WalkBytesTensor(data, expected, what, [&](std::string_view e) { out.push_back(e); }));
  return out;
}

Status CheckBytesTensor(std::span<const std::byte> data, int64_t expected, std::string_view what) {
  return WalkBytesTensor(data, expected, what, [](std::string_view) {});
}

void AppendBytesElement(std::string_view element, std::string& out) {
  auto len = static_cast<uint32_t>(element.size());
  char prefix[4] = {static_cast<char>(len & 0xff), static_cast<char>((len >> 8) & 0xff),
                    static_cast<char>((len >> 16) & 0xff), static_cast<char>((len >> 24) & 0xff)};
  out.append(prefix, 4);
  out.append(element);
}

}  // namespace mm
