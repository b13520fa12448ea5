#include "http/repository_codec.h"

#include <simdjson.h>

#include "http/json_writer.h"

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

std::string EncodeRepositoryIndex(const std::vector<ModelVersionStatus>& index) {
  std::string out = "[";
  for (size_t i = 0; i < index.size(); ++i) {
    const auto& s = index[i];
    if (i) out += ',';
    out += "{\"name\":";
    AppendJsonString(out, s.name);
    if (s.version > 0) {
      out += ",\"version\":";
      AppendJsonString(out, std::to_string(s.version));
    }
    out += ",\"state\":";
    AppendJsonString(out, ModelStateName(s.state));
    out += ",\"reason\":";
    AppendJsonString(out, s.reason);
    if (s.restarts > 0) {
      out += ",\"restarts\":";
      out += std::to_string(s.restarts);
      out += ",\"last_failure\":";
      AppendJsonString(out, s.last_failure);
    }
    out += '}';
  }
  out += ']';
  return out;
}

namespace {

bool Blank(std::string_view body) {
  return body.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

// The "parameters" object of a load/unload body, or an empty object.
Status ParseParameters(std::string_view body, std::string_view what, simdjson::dom::parser& parser,
                       simdjson::dom::object& params, bool& present) {
  present = false;
  if (Blank(body)) return OkStatus();
  simdjson::dom::element doc;
  if (auto err = parser.parse(body.data(), body.size()).get(doc)) {
    return InvalidArgument(std::string(what) +
                           " request is not valid JSON: " + simdjson::error_message(err));
  }
  simdjson::dom::object obj;
  if (doc.get(obj)) return InvalidArgument(std::string(what) + " request must be a JSON object");
  for (auto field : obj) {
    if (field.key != "parameters") continue;
    if (field.value.get(params)) {
      return InvalidArgument(std::string(what) + " request: \"parameters\" must be a JSON object");
    }
    present = true;
  }
  return OkStatus();
}

}  // namespace

StatusOr<std::optional<std::string>> DecodeLoadRequest(std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::dom::object params;
  bool present = false;
  MM_RETURN_IF_ERROR(ParseParameters(body, "model load", parser, params, present));
  std::optional<std::string> config;
  if (!present) return config;
  for (auto field : params) {
    if (field.key == "config") {
      std::string_view text;
      if (field.value.get(text)) {
        return InvalidArgument(
            "model load request: parameter \"config\" must be a string holding the model "
            "configuration as JSON");
      }
      config = std::string(text);
    } else if (field.key.substr(0, 5) == "file:") {
      return InvalidArgument("model load request: parameter \"" + std::string(field.key) +
                             "\": mmserve does not take model files in a load request; put "
                             "them in the model repository");
    }
  }
  return config;
}

Status DecodeUnloadRequest(std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::dom::object params;
  bool present = false;
  MM_RETURN_IF_ERROR(ParseParameters(body, "model unload", parser, params, present));
  if (!present) return OkStatus();
  for (auto field : params) {
    if (field.key == "unload_dependents") {
      bool flag = false;
      if (field.value.get(flag)) {
        return InvalidArgument(
            "model unload request: parameter \"unload_dependents\" must be true or false");
      }
    }
  }
  return OkStatus();
}

}  // namespace mm
