#include "rpc/infer_request_wire.h"

#include <climits>
#include <cstdint>
#include <string>

namespace mm {

namespace {

// raw_input_contents' tag: field 7, wire type 2 (length-delimited).
constexpr uint32_t kRawInputContentsTag = (7 << 3) | 2;

// Reads the wire format's pieces with protobuf 3.21's own limits
// (parse_context.h: ReadTag, ReadSize, VarintParse), so that a field this
// reader accepts spans the very bytes protobuf's parser would give it, and
// one it refuses is one protobuf refuses too. Anything that would run past
// the end is refused: protobuf fails a message cut short.
class WireReader {
 public:
  explicit WireReader(std::string_view wire)
      : begin_(reinterpret_cast<const uint8_t*>(wire.data())),
        p_(begin_),
        end_(begin_ + wire.size()) {}

  bool done() const { return p_ == end_; }
  size_t offset() const { return static_cast<size_t>(p_ - begin_); }

  // At most 5 bytes; the value is kept to its low 32 bits, as ReadTag's is.
  bool ReadTag(uint32_t* tag) {
    uint32_t value = 0;
    for (int i = 0; i < 5; ++i) {
      if (p_ == end_) return false;
      const uint8_t byte = *p_++;
      value |= static_cast<uint32_t>(byte & 0x7f) << (7 * i);  // bits past 32 drop
      if (byte < 0x80) {
        *tag = value;
        return true;
      }
    }
    return false;
  }

  // A varint field's value: at most 10 bytes.
  bool SkipVarint() {
    for (int i = 0; i < 10; ++i) {
      if (p_ == end_) return false;
      if (*p_++ < 0x80) return true;
    }
    return false;
  }

  // A length: at most 5 bytes, the fifth under 8 (below 2 GiB), and at most
  // INT_MAX - 16 (protobuf keeps its 16 slop bytes clear of overflow).
  bool ReadSize(uint32_t* size) {
    uint32_t value = 0;
    for (int i = 0; i < 5; ++i) {
      if (p_ == end_) return false;
      const uint8_t byte = *p_++;
      if (i == 4 && byte >= 8) return false;
      value |= static_cast<uint32_t>(byte & 0x7f) << (7 * i);
      if (byte < 0x80) {
        if (value > static_cast<uint32_t>(INT_MAX - 16)) return false;
        *size = value;
        return true;
      }
    }
    return false;  // not reached: a fifth byte under 8 ends the varint
  }

  bool Skip(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) return false;
    p_ += n;
    return true;
  }

 private:
  const uint8_t* begin_;
  const uint8_t* p_;
  const uint8_t* end_;
};

// The message's fields apart from its raw contents, as SplitFields found them.
struct OtherFields {
  // Where the fields before the first raw content end (they start at 0).
  size_t prefix_end = 0;
  // Whether a field follows a raw content; `gathered` holds every field
  // then, in order (protobuf's rules — the last of a singular field wins,
  // repeated fields append — depend on that order alone).
  bool interleaved = false;
  std::string gathered;
};

enum class Split {
  kOk,
  kInvalid,  // protobuf refuses the message
  kGroup,    // a group: protobuf's to judge (its nesting limit, its end tags)
};

// Walks the top-level fields of `wire`: raw contents go to `raw`, every
// other field to `others`.
Split SplitFields(std::string_view wire, std::vector<std::string_view>& raw, OtherFields& others) {
  WireReader reader(wire);
  bool seen_raw = false;
  while (!reader.done()) {
    const size_t begin = reader.offset();
    uint32_t tag = 0;
    if (!reader.ReadTag(&tag)) return Split::kInvalid;
    // Field 0 is refused, and with it tag 0, which protobuf takes for the
    // end of a message that did not end where its bytes did.
    if ((tag >> 3) == 0) return Split::kInvalid;
    switch (tag & 7) {
      case 0:
        if (!reader.SkipVarint()) return Split::kInvalid;
        break;
      case 1:
        if (!reader.Skip(8)) return Split::kInvalid;
        break;
      case 2: {
        uint32_t size = 0;
        if (!reader.ReadSize(&size)) return Split::kInvalid;
        const size_t data = reader.offset();
        if (!reader.Skip(size)) return Split::kInvalid;
        if (tag == kRawInputContentsTag) {
          raw.push_back(wire.substr(data, size));
          seen_raw = true;
          continue;
        }
        break;
      }
      case 3:
        return Split::kGroup;
      case 5:
        if (!reader.Skip(4)) return Split::kInvalid;
        break;
      default:  // 4: an end of group that began nowhere; 6 and 7 do not exist
        return Split::kInvalid;
    }
    // A field for protobuf (a field 7 of another wire type included: protobuf
    // keeps that as an unknown field, and will here too).
    const size_t end = reader.offset();
    if (!seen_raw) {
      others.prefix_end = end;
      continue;
    }
    if (!others.interleaved) {
      others.interleaved = true;
      others.gathered.assign(wire.substr(0, others.prefix_end));
    }
    others.gathered.append(wire.substr(begin, end - begin));
  }
  return Split::kOk;
}

bool Parse(std::string_view bytes, inference::ModelInferRequest* msg) {
  return msg->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
}

}  // namespace

Status ParseModelInferRequestInPlace(std::string_view wire, inference::ModelInferRequest* msg,
                                     std::vector<std::string_view>* raw) {
  raw->clear();
  bool parsed = false;
  if (wire.size() <= static_cast<size_t>(INT_MAX)) {
    OtherFields others;
    switch (SplitFields(wire, *raw, others)) {
      case Split::kOk:
        // Fields in number order (every serializer's) leave the raw contents
        // last: the fields before them are parsed where they lie.
        parsed = Parse(others.interleaved ? std::string_view(others.gathered)
                                          : wire.substr(0, others.prefix_end),
                       msg);
        break;
      case Split::kGroup:
        raw->clear();
        parsed = Parse(wire, msg);
        if (parsed) {
          raw->assign(msg->raw_input_contents().begin(), msg->raw_input_contents().end());
        }
        break;
      case Split::kInvalid:
        break;
    }
  }
  if (!parsed) {
    msg->Clear();
    raw->clear();
    return InvalidArgument("the request message is not a valid " + msg->GetTypeName() +
                           " (protobuf); expected the message of the method the path names");
  }
  return OkStatus();
}

}  // namespace mm
