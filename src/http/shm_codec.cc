#include "http/shm_codec.h"

#include <simdjson.h>

#include "http/json_writer.h"

namespace mm {

StatusOr<ShmRegisterRequest> DecodeShmRegisterRequest(std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (auto err = parser.parse(body.data(), body.size()).get(doc)) {
    return InvalidArgument(std::string("shared memory register request is not valid JSON: ") +
                           simdjson::error_message(err));
  }
  simdjson::dom::object obj;
  if (doc.get(obj)) {
    return InvalidArgument(
        "shared memory register request must be a JSON object with "
        "\"key\", \"offset\" and \"byte_size\"");
  }
  ShmRegisterRequest out;
  bool has_key = false, has_size = false;
  for (auto field : obj) {
    if (field.key == "key") {
      std::string_view key;
      if (field.value.get(key)) return InvalidArgument("\"key\" must be a string");
      out.key = std::string(key);
      has_key = true;
    } else if (field.key == "offset" || field.key == "byte_size") {
      uint64_t v = 0;
      if (field.value.get(v)) {
        return InvalidArgument("\"" + std::string(field.key) + "\" must be a non-negative integer");
      }
      if (field.key == "offset") {
        out.offset = v;
      } else {
        out.byte_size = v;
        has_size = true;
      }
    }
  }
  if (!has_key) return InvalidArgument("shared memory register request has no \"key\"");
  if (!has_size) return InvalidArgument("shared memory register request has no \"byte_size\"");
  return out;
}

std::string EncodeShmStatus(const std::vector<SharedMemoryManager::RegionInfo>& regions) {
  std::string out = "[";
  for (size_t i = 0; i < regions.size(); ++i) {
    if (i) out += ',';
    out += "{\"name\":";
    AppendJsonString(out, regions[i].name);
    out += ",\"key\":";
    AppendJsonString(out, regions[i].key);
    out += ",\"offset\":";
    AppendJsonUint(out, regions[i].offset);
    out += ",\"byte_size\":";
    AppendJsonUint(out, regions[i].byte_size);
    out += '}';
  }
  out += ']';
  return out;
}

}  // namespace mm
