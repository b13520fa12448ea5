// Fuzzes the worker protocol decoders. Checks, beyond "no crash, leak or UB":
//  - every rejection is INVALID_ARGUMENT with a message;
//  - encoding is canonical: whatever decodes re-encodes to exactly the bytes
//    it was decoded from;
//  - the re-encoded bytes decode again to an equal message.
//
// Input layout: byte 0 picks the decoder (modulo 9); bytes 1-2 give the
// shared-memory region size r = b1 << 8 | b2 (0xFFFF stands for 2^64 - 1, so
// that offset + bytes overflows are reachable); the rest is the payload (for
// the frame-header decoder, the 16 header bytes).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <span>
#include <string>

#include "isolation/worker_protocol.h"

namespace {

void Check(bool cond, const char* what) {
  if (!cond) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

std::span<const std::byte> AsBytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

bool SameBytes(std::span<const std::byte> a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), AsBytes(b).begin());
}

bool SameStatus(const mm::Status& a, const mm::Status& b) {
  return a.code() == b.code() && a.message() == b.message();
}

template <typename T>
bool Rejected(const mm::StatusOr<T>& r) {
  if (r.ok()) return false;
  Check(r.status().code() == mm::StatusCode::kInvalidArgument, "rejections are INVALID_ARGUMENT");
  Check(!r.status().message().empty(), "rejections have messages");
  return true;
}

// Decodes `in`; when it decodes, checks that encode(decoded) == in and that
// decoding that gives an equal message (compared with `same`).
template <typename Decode, typename Encode, typename Same>
void RoundTrip(std::span<const std::byte> in, Decode decode, Encode encode, Same same) {
  auto a = decode(in);
  if (Rejected(a)) return;
  const std::string bytes = encode(*a);
  Check(SameBytes(in, bytes), "re-encoding gives back the decoded bytes");
  auto b = decode(AsBytes(bytes));
  Check(b.ok(), "a re-encoded message decodes");
  Check(same(*a, *b), "a re-encoded message decodes to the same message");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const int which = data[0] % 9;
  const uint16_t r = static_cast<uint16_t>(data[1] << 8 | data[2]);
  const uint64_t region = r == 0xFFFF ? std::numeric_limits<uint64_t>::max() : r;
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data + 3), size - 3);

  switch (which) {
    case 0:
      RoundTrip(
          in, [](auto p) { return mm::DecodeFrameHeader(p); },
          [](const mm::FrameHeader& h) {
            std::string out;
            mm::AppendFrameHeader(out, h);
            return out;
          },
          [](const mm::FrameHeader& x, const mm::FrameHeader& y) {
            return x.type == y.type && x.payload_bytes == y.payload_bytes &&
                   x.request_id == y.request_id;
          });
      break;
    case 1:
      RoundTrip(
          in, [](auto p) { return mm::DecodeLoad(p); }, mm::EncodeLoad,
          [](const auto& x, const auto& y) { return x == y; });
      break;
    case 2:
      RoundTrip(
          in,
          [region](auto p) {
            // Region 1 of size r mapped, the others not.
            const uint64_t sizes[3] = {0, region, 0};
            return mm::DecodeExecute(p, sizes);
          },
          mm::EncodeExecute,
          // (A double parameter may be a NaN, unequal to itself: compared
          // by its encoding, which is canonical.)
          [](const mm::ExecuteRequest& x, const mm::ExecuteRequest& y) {
            return mm::EncodeExecute(x) == mm::EncodeExecute(y) &&
                   x.requests.size() == y.requests.size();
          });
      break;
    case 3:
      RoundTrip(
          in, [region](auto p) { return mm::DecodeExecuteReply(p, region); },
          mm::EncodeExecuteReply,
          [](const mm::ExecuteReply& x, const mm::ExecuteReply& y) {
            if (x.results.size() != y.results.size()) return false;
            for (size_t i = 0; i < x.results.size(); ++i) {
              if (!SameStatus(x.results[i].status, y.results[i].status) ||
                  x.results[i].outputs != y.results[i].outputs) {
                return false;
              }
            }
            return SameStatus(x.status, y.status) && x.region_bytes_needed == y.region_bytes_needed;
          });
      break;
    case 4:
      RoundTrip(
          in, [](auto p) { return mm::DecodeStatusReply(p); }, mm::EncodeStatusReply,
          [](const mm::StatusReply& x, const mm::StatusReply& y) {
            return SameStatus(x.status, y.status);
          });
      break;
    case 5:
      RoundTrip(
          in, [](auto p) { return mm::DecodeStatsReply(p); }, mm::EncodeStatsReply,
          [](const mm::StatsReply& x, const mm::StatsReply& y) {
            return SameStatus(x.status, y.status) && x.stats == y.stats;
          });
      break;
    case 6:
      RoundTrip(
          in, [](auto p) { return mm::DecodeRegion(p); }, mm::EncodeRegion,
          [](const auto& x, const auto& y) { return x == y; });
      break;
    case 7:
      RoundTrip(
          in, [](auto p) { return mm::DecodeLoadReply(p); }, mm::EncodeLoadReply,
          [](const mm::LoadReply& x, const mm::LoadReply& y) {
            return SameStatus(x.status, y.status) && x.config == y.config &&
                   x.batch_as_list == y.batch_as_list;
          });
      break;
    case 8:
      RoundTrip(
          in, [](auto p) { return mm::DecodeMailbox(p); }, mm::EncodeMailbox,
          [](uint64_t x, uint64_t y) { return x == y; });
      break;
  }
  return 0;
}
