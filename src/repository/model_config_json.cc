// Model configurations as JSON, both ways: written as Triton's HTTP
// model-config endpoint writes them, and read from a load's "config"
// parameter (a config override). The door is repository/model_config.h.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>
#include <system_error>
#include <vector>

#include "repository/model_config.h"

namespace mm {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// ------------------------------------------------------------ JSON writing

void AppendNumber(std::string& out, auto value) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  out.append(buf, ec == std::errc() ? end : buf);
}

void AppendFloating(std::string& out, double value, bool is_float) {
  if (std::isnan(value)) {
    out += "\"NaN\"";
  } else if (std::isinf(value)) {
    out += value > 0 ? "\"Infinity\"" : "\"-Infinity\"";
  } else if (is_float) {
    AppendNumber(out, static_cast<float>(value));
  } else {
    AppendNumber(out, value);
  }
}

// Length of the valid UTF-8 sequence at s[i], or 0 when it is not one.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  size_t len;
  uint32_t cp;
  if (c < 0x80) return 1;
  if ((c & 0xe0) == 0xc0) {
    len = 2;
    cp = c & 0x1f;
  } else if ((c & 0xf0) == 0xe0) {
    len = 3;
    cp = c & 0x0f;
  } else if ((c & 0xf8) == 0xf0) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3f);
  }
  static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinForLength[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

// A JSON string; invalid UTF-8 becomes U+FFFD so the output stays valid JSON.
void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xf];
        } else if (c < 0x80) {
          out += static_cast<char>(c);
        } else if (size_t len = Utf8SequenceLength(s, i); len > 0) {
          out.append(s.substr(i, len));
          i += len;
          continue;
        } else {
          out += "\\ufffd";
        }
    }
    ++i;
  }
  out += '"';
}

void AppendBase64(std::string& out, std::string_view s) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  out += '"';
  size_t i = 0;
  for (; i + 3 <= s.size(); i += 3) {
    uint32_t v = (static_cast<unsigned char>(s[i]) << 16) |
                 (static_cast<unsigned char>(s[i + 1]) << 8) | static_cast<unsigned char>(s[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (size_t rest = s.size() - i; rest > 0) {
    uint32_t v = static_cast<unsigned char>(s[i]) << 16;
    if (rest == 2) v |= static_cast<unsigned char>(s[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  out += '"';
}

class JsonWriter {
 public:
  explicit JsonWriter(std::string& out) : out_(out) {}

  void WriteMessage(const Message& message) {
    const Descriptor* descriptor = message.GetDescriptor();
    const Reflection* reflection = message.GetReflection();
    out_ += '{';
    bool first = true;
    for (int i = 0; i < descriptor->field_count(); ++i) {
      const FieldDescriptor* field = descriptor->field(i);
      if (!field->is_repeated()) {
        // Messages and oneof members only when set; other scalars always.
        bool presence_only = field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE ||
                             field->containing_oneof() != nullptr;
        if (presence_only && !reflection->HasField(message, field)) continue;
      }
      if (!first) out_ += ',';
      first = false;
      AppendJsonString(out_, field->name());
      out_ += ':';
      if (field->is_map()) {
        WriteMap(message, field);
      } else if (field->is_repeated()) {
        out_ += '[';
        int size = reflection->FieldSize(message, field);
        for (int k = 0; k < size; ++k) {
          if (k > 0) out_ += ',';
          WriteValue(message, field, k);
        }
        out_ += ']';
      } else {
        WriteValue(message, field, -1);
      }
    }
    out_ += '}';
  }

 private:
  // One value of `field`; `index` -1 for a singular field.
  void WriteValue(const Message& m, const FieldDescriptor* f, int index) {
    const Reflection* r = m.GetReflection();
    const bool rep = index >= 0;
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        AppendNumber(out_, rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        AppendNumber(out_, rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f));
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        AppendNumber(out_, rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f));
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        AppendNumber(out_, rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f));
        break;
      case FieldDescriptor::CPPTYPE_FLOAT:
        AppendFloating(out_, rep ? r->GetRepeatedFloat(m, f, index) : r->GetFloat(m, f), true);
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        AppendFloating(out_, rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f), false);
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        out_ += (rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f)) ? "true" : "false";
        break;
      case FieldDescriptor::CPPTYPE_ENUM: {
        int number = rep ? r->GetRepeatedEnumValue(m, f, index) : r->GetEnumValue(m, f);
        const auto* value = f->enum_type()->FindValueByNumber(number);
        if (value != nullptr) {
          AppendJsonString(out_, value->name());
        } else {
          AppendNumber(out_, number);  // an open enum's unknown value
        }
        break;
      }
      case FieldDescriptor::CPPTYPE_STRING: {
        std::string scratch;
        const std::string& s = rep ? r->GetRepeatedStringReference(m, f, index, &scratch)
                                   : r->GetStringReference(m, f, &scratch);
        if (f->type() == FieldDescriptor::TYPE_BYTES) {
          AppendBase64(out_, s);
        } else {
          AppendJsonString(out_, s);
        }
        break;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        WriteMessage(rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f));
        break;
    }
  }

  // A map as a JSON object, entries sorted by key so output is deterministic.
  void WriteMap(const Message& m, const FieldDescriptor* f) {
    const Reflection* r = m.GetReflection();
    const FieldDescriptor* key = f->message_type()->map_key();
    const FieldDescriptor* value = f->message_type()->map_value();
    std::vector<const Message*> entries;
    int size = r->FieldSize(m, f);
    entries.reserve(size);
    for (int i = 0; i < size; ++i) entries.push_back(&r->GetRepeatedMessage(m, f, i));
    auto less = [key](const Message* a, const Message* b) {
      const Reflection* ra = a->GetReflection();
      const Reflection* rb = b->GetReflection();
      switch (key->cpp_type()) {
        case FieldDescriptor::CPPTYPE_INT32:
          return ra->GetInt32(*a, key) < rb->GetInt32(*b, key);
        case FieldDescriptor::CPPTYPE_INT64:
          return ra->GetInt64(*a, key) < rb->GetInt64(*b, key);
        case FieldDescriptor::CPPTYPE_UINT32:
          return ra->GetUInt32(*a, key) < rb->GetUInt32(*b, key);
        case FieldDescriptor::CPPTYPE_UINT64:
          return ra->GetUInt64(*a, key) < rb->GetUInt64(*b, key);
        case FieldDescriptor::CPPTYPE_BOOL:
          return ra->GetBool(*a, key) < rb->GetBool(*b, key);
        default:
          return ra->GetString(*a, key) < rb->GetString(*b, key);
      }
    };
    std::stable_sort(entries.begin(), entries.end(), less);
    out_ += '{';
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i > 0) out_ += ',';
      const Message& entry = *entries[i];
      if (key->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
        AppendJsonString(out_, entry.GetReflection()->GetString(entry, key));
      } else {
        // JSON keys are strings: quote the number or bool.
        std::string text;
        JsonWriter(text).WriteValue(entry, key, -1);
        AppendJsonString(out_, text);
      }
      out_ += ':';
      WriteValue(entry, value, -1);
    }
    out_ += '}';
  }

  std::string& out_;
};

// ------------------------------------------------- config overrides (JSON in)

// `json` as a message of `message`'s type; INVALID_ARGUMENT as a load answers.
Status ParseOverrideJson(std::string_view json, std::string_view model_name,
                         google::protobuf::Message* message) {
  const std::string what = "model '" + std::string(model_name) + "': the 'config' parameter";
  if (json.size() > ConfigBounds::kMaxOverrideBytes) {
    return InvalidArgument(what + " is " + std::to_string(json.size()) +
                           " bytes; expected at most " +
                           std::to_string(ConfigBounds::kMaxOverrideBytes));
  }
  auto parsed = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), message);
  if (!parsed.ok()) {
    return InvalidArgument(
        what + " is not a model configuration in JSON: " + std::string(parsed.message()));
  }
  return OkStatus();
}

}  // namespace

StatusOr<inference::ModelConfig> ParseConfigOverride(std::string_view json,
                                                     std::string_view model_name,
                                                     const ServerLimits& limits) {
  inference::ModelConfig config;
  MM_RETURN_IF_ERROR(ParseOverrideJson(json, model_name, &config));
  const std::string what = "model '" + std::string(model_name) + "': the 'config' parameter";
  if (!config.name().empty() && config.name() != model_name) {
    return InvalidArgument(what + " names model '" + config.name() + "'");
  }
  config.set_name(std::string(model_name));
  if (Status s = ValidateModelConfig(config); !s.ok()) return s.WithContext(what);
  if (Status s = CheckServerLimits(config, limits); !s.ok()) return s.WithContext(what);
  return config;
}

StatusOr<std::vector<std::string>> AdminOnlyFieldsIn(std::string_view json,
                                                     std::string_view model_name) {
  inference::ModelConfig config;
  MM_RETURN_IF_ERROR(ParseOverrideJson(json, model_name, &config));
  std::vector<std::string> fields;
  if (!config.has_mmserve()) return fields;
  // What the block sets, as parsed (duplicate keys merged) ...
  const Descriptor* block = inference::MmserveOptions::descriptor();
  std::vector<const FieldDescriptor*> set;
  config.mmserve().GetReflection()->ListFields(config.mmserve(), &set);
  for (const FieldDescriptor* f : set) fields.push_back("mmserve." + f->name());
  // ... and what the JSON names, a field set to its default value included.
  google::protobuf::Struct doc;
  if (ParseOverrideJson(json, model_name, &doc).ok()) {
    auto it = doc.fields().find("mmserve");
    if (it != doc.fields().end() && it->second.has_struct_value()) {
      for (const auto& [key, value] : it->second.struct_value().fields()) {
        std::string name = key;
        for (int i = 0; i < block->field_count(); ++i) {
          if (block->field(i)->json_name() == key) name = block->field(i)->name();
        }
        fields.push_back("mmserve." + name);
      }
    }
  }
  std::sort(fields.begin(), fields.end());
  fields.erase(std::unique(fields.begin(), fields.end()), fields.end());
  if (fields.empty()) fields.push_back("mmserve");
  return fields;
}

std::string ModelConfigToJson(const google::protobuf::Message& message) {
  std::string out;
  JsonWriter(out).WriteMessage(message);
  return out;
}

}  // namespace mm
