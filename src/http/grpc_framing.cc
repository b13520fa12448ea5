#include "http/grpc_framing.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include <zlib.h>

#include "core/percent_encoding.h"

namespace mm {

void AppendGrpcMessagePrefix(std::string& out, uint32_t length) {
  const char prefix[kGrpcPrefixBytes] = {0, static_cast<char>(length >> 24),
                                         static_cast<char>(length >> 16),
                                         static_cast<char>(length >> 8), static_cast<char>(length)};
  out.append(prefix, kGrpcPrefixBytes);
}

std::optional<GrpcEncoding> ParseGrpcEncoding(std::string_view value) {
  if (value == "identity") return GrpcEncoding::kIdentity;
  if (value == "gzip") return GrpcEncoding::kGzip;
  if (value == "deflate") return GrpcEncoding::kDeflate;
  return std::nullopt;
}

namespace {

// Inflates `in` (a gzip or zlib stream, told apart by its header) into
// `out`, at most `limit` bytes.
Status Inflate(std::string_view in, size_t limit, std::string& out) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 32) != Z_OK) return Internal("cannot start zlib's inflate");
  out.clear();
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  int rv = Z_OK;
  while (rv == Z_OK) {
    if (out.size() == limit + 1) break;
    const size_t have = out.size();
    out.resize(std::min(limit + 1, std::max<size_t>(have * 2, in.size() * 4 + 256)));
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + have);
    zs.avail_out = static_cast<uInt>(out.size() - have);
    rv = inflate(&zs, Z_NO_FLUSH);
    out.resize(out.size() - zs.avail_out);
    if (rv == Z_BUF_ERROR && zs.avail_in == 0) break;  // truncated input
    if (rv == Z_BUF_ERROR) rv = Z_OK;                  // more room needed
  }
  const bool complete = rv == Z_STREAM_END && zs.avail_in == 0;
  inflateEnd(&zs);
  if (out.size() > limit) {
    return ResourceExhausted("a compressed gRPC message inflates to over the server's limit of " +
                             std::to_string(limit) + " bytes (--max-request-bytes)");
  }
  if (!complete) {
    return Internal(
        "a compressed gRPC message does not inflate: expected one whole stream of "
        "the call's grpc-encoding (gzip or deflate)");
  }
  return OkStatus();
}

}  // namespace

Status GrpcMessageReader::Deliver(std::string_view message, const OnMessage& on_message) {
  ++messages_;
  Status s;
  if (compressed_) {
    s = Inflate(message, max_message_bytes_, inflated_);
    if (s.ok()) s = on_message(inflated_);
  } else {
    s = on_message(message);
  }
  if (!s.ok()) failed_ = s;
  return s;
}

Status GrpcMessageReader::TakePrefix() {
  const auto flag = static_cast<unsigned char>(prefix_[0]);
  compressed_ = flag == 1;
  if (flag == 1 && encoding_ == GrpcEncoding::kIdentity) {
    return Unimplemented(
        "a compressed gRPC message came without a grpc-encoding: send it uncompressed, or name "
        "its encoding (gzip or deflate)");
  }
  if (flag > 1) {
    return Internal("malformed gRPC message: its compressed-flag byte is " + std::to_string(flag) +
                    "; expected 0 or 1");
  }
  const auto byte = [this](int i) {
    return static_cast<uint32_t>(static_cast<uint8_t>(prefix_[i]));
  };
  const uint32_t length = byte(1) << 24 | byte(2) << 16 | byte(3) << 8 | byte(4);
  if (length > max_message_bytes_) {
    return ResourceExhausted("gRPC message of " + std::to_string(length) +
                             " bytes is over the server's limit of " +
                             std::to_string(max_message_bytes_) + " bytes (--max-request-bytes)");
  }
  expected_ = length;
  return OkStatus();
}

Status GrpcMessageReader::Feed(std::string_view piece, const OnMessage& on_message) {
  if (!failed_.ok()) return failed_;
  auto deliver = [&](std::string_view message) { return Deliver(message, on_message); };
  size_t pos = 0;
  while (pos < piece.size()) {
    if (!in_message_) {
      const size_t take = std::min(kGrpcPrefixBytes - prefix_have_, piece.size() - pos);
      std::memcpy(prefix_ + prefix_have_, piece.data() + pos, take);
      prefix_have_ += take;
      pos += take;
      if (prefix_have_ < kGrpcPrefixBytes) break;
      prefix_have_ = 0;
      if (Status s = TakePrefix(); !s.ok()) {
        failed_ = s;
        return s;
      }
      if (expected_ == 0) {
        MM_RETURN_IF_ERROR(deliver({}));
        continue;
      }
      in_message_ = true;
      continue;
    }
    const size_t available = piece.size() - pos;
    if (buffer_.empty() && available >= expected_) {
      // The whole message is in this piece: handed over where it lies.
      const std::string_view message = piece.substr(pos, expected_);
      pos += expected_;
      in_message_ = false;
      MM_RETURN_IF_ERROR(deliver(message));
      continue;
    }
    if (buffer_.empty()) buffer_.reserve(expected_);
    const size_t take = std::min(expected_ - buffer_.size(), available);
    buffer_.append(piece.data() + pos, take);
    pos += take;
    if (buffer_.size() == expected_) {
      in_message_ = false;
      Status s = deliver(buffer_);
      buffer_.clear();
      MM_RETURN_IF_ERROR(s);
    }
  }
  return OkStatus();
}

std::string GrpcMessageReader::Take(std::string_view message) {
  const auto is = [message](const std::string& buffer) {
    return !message.empty() && message.data() == buffer.data() && message.size() == buffer.size();
  };
  std::string out;
  if (is(buffer_)) {
    out.swap(buffer_);
  } else if (is(inflated_)) {
    out.swap(inflated_);
  } else {
    out.assign(message);
  }
  return out;
}

Status GrpcMessageReader::Finish() const {
  if (!failed_.ok()) return failed_;
  if (prefix_have_ > 0) {
    return Internal("the stream ended inside a gRPC message prefix (" +
                    std::to_string(prefix_have_) + " of 5 bytes)");
  }
  if (in_message_) {
    return Internal("the stream ended inside a gRPC message (" + std::to_string(buffer_.size()) +
                    " of " + std::to_string(expected_) + " bytes)");
  }
  return OkStatus();
}

StatusOr<std::chrono::nanoseconds> ParseGrpcTimeout(std::string_view value) {
  auto bad = [&] {
    return InvalidArgument("grpc-timeout '" + std::string(value.substr(0, 32)) +
                           "' is malformed; expected 1 to 8 digits and a unit (H, M, S, m, u "
                           "or n), such as 250m");
  };
  if (value.size() < 2 || value.size() > 9) return bad();
  int64_t amount = 0;
  for (const char c : value.substr(0, value.size() - 1)) {
    if (c < '0' || c > '9') return bad();
    amount = amount * 10 + (c - '0');  // at most 99,999,999: no overflow
  }
  int64_t ns_per_unit = 0;
  switch (value.back()) {
    case 'H':
      ns_per_unit = int64_t{3600} * 1'000'000'000;
      break;
    case 'M':
      ns_per_unit = int64_t{60} * 1'000'000'000;
      break;
    case 'S':
      ns_per_unit = 1'000'000'000;
      break;
    case 'm':
      ns_per_unit = 1'000'000;
      break;
    case 'u':
      ns_per_unit = 1'000;
      break;
    case 'n':
      ns_per_unit = 1;
      break;
    default:
      return bad();
  }
  if (amount > std::numeric_limits<int64_t>::max() / ns_per_unit) {
    return std::chrono::nanoseconds::max();
  }
  return std::chrono::nanoseconds(amount * ns_per_unit);
}

std::string PercentEncodeGrpcMessage(std::string_view message) {
  return PercentEncode(message, [](unsigned char b) { return b >= 0x20 && b <= 0x7E && b != '%'; });
}

std::string PercentDecodeGrpcMessage(std::string_view encoded) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  out.reserve(encoded.size());
  for (size_t i = 0; i < encoded.size(); ++i) {
    if (encoded[i] == '%' && i + 2 < encoded.size() && hex(encoded[i + 1]) >= 0 &&
        hex(encoded[i + 2]) >= 0) {
      out += static_cast<char>(hex(encoded[i + 1]) << 4 | hex(encoded[i + 2]));
      i += 2;
    } else {
      out += encoded[i];
    }
  }
  return out;
}

}  // namespace mm
