#include "http/repository_codec.h"

#include <simdjson.h>

namespace mm {

StatusOr<bool> DecodeIndexRequest(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return false;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (auto err = parser.parse(body.data(), body.size()).get(doc)) {
    return InvalidArgument(std::string("repository index request is not valid JSON: ") +
                           simdjson::error_message(err));
  }
  simdjson::dom::object obj;
  if (doc.get(obj)) return InvalidArgument("repository index request must be a JSON object");
  bool ready = false;
  for (auto field : obj) {
    if (field.key == "ready") {
      if (field.value.get(ready)) {
        return InvalidArgument("repository index request: \"ready\" must be true or false");
      }
    }
  }
  return ready;
}

}  // namespace mm
