// config.pbtxt as protobuf TextFormat: the spellings of unknown (Triton)
// fields protobuf would refuse, and its errors and warnings as messages a
// user can act on. The door is repository/model_config.h.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <utility>
#include <vector>

#include "repository/model_config.h"
#include "repository/model_config_internal.h"

namespace mm {

namespace model_config_internal {

std::string Quote(std::string_view s) {
  std::string out = "'";
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '\'';
  return out;
}

}  // namespace model_config_internal

namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using model_config_internal::Quote;

// A token of text format, enough to find field names and brackets.
struct Token {
  enum Kind { kIdentifier, kString, kPunct, kOther } kind;
  size_t begin, end;  // byte range in the text
  int line, column;   // from 0, columns as protobuf counts them (tab: next multiple of 8)
};

bool IsIdentifierStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsIdentifierChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
bool IsPunct(char c) { return std::string_view("{}[]<>:,;").find(c) != std::string_view::npos; }
bool IsSpace(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

std::vector<Token> Tokenize(std::string_view text) {
  std::vector<Token> tokens;
  int line = 0, column = 0;
  size_t i = 0;
  auto advance_to = [&](size_t to) {
    for (; i < to; ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 0;
      } else {
        column += text[i] == '\t' ? 8 - column % 8 : 1;
      }
    }
  };
  while (i < text.size()) {
    const char c = text[i];
    if (IsSpace(c)) {
      advance_to(i + 1);
      continue;
    }
    if (c == '#') {  // comment to the end of the line
      size_t eol = text.find('\n', i);
      advance_to(eol == std::string_view::npos ? text.size() : eol);
      continue;
    }
    Token t{Token::kOther, i, i + 1, line, column};
    if (IsIdentifierStart(c)) {
      t.kind = Token::kIdentifier;
      while (t.end < text.size() && IsIdentifierChar(text[t.end])) ++t.end;
    } else if (c == '"' || c == '\'') {
      t.kind = Token::kString;
      while (t.end < text.size() && text[t.end] != c && text[t.end] != '\n') {
        t.end += text[t.end] == '\\' && t.end + 1 < text.size() ? 2 : 1;
      }
      if (t.end < text.size() && text[t.end] == c) ++t.end;
    } else if (IsPunct(c)) {
      t.kind = Token::kPunct;
    } else {
      while (t.end < text.size() && !IsSpace(text[t.end]) && !IsPunct(text[t.end]) &&
             text[t.end] != '#' && text[t.end] != '"' && text[t.end] != '\'') {
        ++t.end;
      }
    }
    tokens.push_back(t);
    advance_to(t.end);
  }
  return tokens;
}

// Protobuf 3.21 skips an unknown field only when it is written as "name {...}",
// "name: {...}", "name: value" or "name: [non-empty list]"; it fails on
// "name [ {...} ]" and on empty lists, both of which Triton accepts for its
// fields. This rewrites just those spellings of fields unknown to
// ModelConfig, keeping every other byte (and so line and column numbers) in
// place: "name [" becomes "name:[" and an empty "[ ]" becomes "{ }". Known
// fields are left for protobuf, which parses them in every spelling.
std::string SpellUnknownFieldsSkippably(std::string_view text, const std::vector<Token>& tokens) {
  auto is = [&](size_t k, char c) {
    return k < tokens.size() && tokens[k].kind == Token::kPunct && text[tokens[k].begin] == c;
  };
  struct Frame {
    bool is_list;
    const Descriptor* type;  // fields (message) or elements (list); null: unknown
  };
  std::vector<Frame> stack = {{false, inference::ModelConfig::descriptor()}};
  const Descriptor* next_type = nullptr;  // type of the value the next bracket opens
  std::string out(text);
  size_t inserted = 0;  // bytes inserted so far, to map text offsets into `out`
  for (size_t k = 0; k < tokens.size(); ++k) {
    const Token& t = tokens[k];
    if (is(k, '{') || is(k, '<')) {
      stack.push_back({false, stack.back().is_list ? stack.back().type : next_type});
      next_type = nullptr;
    } else if (is(k, '[')) {
      stack.push_back({true, stack.back().is_list ? nullptr : next_type});
      next_type = nullptr;
    } else if (is(k, '}') || is(k, '>') || is(k, ']')) {
      if (stack.size() > 1) stack.pop_back();
    } else if (t.kind == Token::kIdentifier && !stack.back().is_list &&
               !(k > 0 && is(k - 1, ':'))) {
      // A field name.
      const Descriptor* type = stack.back().type;
      std::string name(text.substr(t.begin, t.end - t.begin));
      const FieldDescriptor* field = type != nullptr ? type->FindFieldByName(name) : nullptr;
      next_type = field != nullptr ? field->message_type() : nullptr;
      if (field != nullptr) continue;
      size_t open = is(k + 1, ':') ? k + 2 : k + 1;
      if (!is(open, '[')) continue;
      if (is(open + 1, ']')) {  // empty list: skip it as an empty message
        out[tokens[open].begin + inserted] = '{';
        out[tokens[open + 1].begin + inserted] = '}';
      } else if (open == k + 1) {  // "name [": needs a colon to be skipped as a list
        size_t at = t.end + inserted;
        if (out[at] == ' ') {
          out[at] = ':';
        } else {
          out.insert(at, 1, ':');
          ++inserted;
        }
      }
    }
  }
  return out;
}

// Collects TextFormat's errors and warnings as messages a user can act on.
class ConfigErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  ConfigErrorCollector(std::string_view model_name, std::vector<std::string>* warnings)
      : prefix_("config.pbtxt of model " + Quote(model_name)), warnings_(warnings) {}

  // Tokens of the text being parsed, to point warnings at field names.
  void set_tokens(const std::string* text, std::vector<Token> tokens) {
    text_ = text;
    tokens_ = std::move(tokens);
  }

  void AddError(int line, int column, const std::string& message) override {
    if (first_error_.empty()) first_error_ = Where(line, column) + message;
  }

  void AddWarning(int line, int column, const std::string& message) override {
    if (warnings_ == nullptr) return;
    std::string field;
    std::string description = DescribeWarning(message, &field);
    if (!field.empty()) MoveToFieldName(field, line, column);
    warnings_->push_back(Where(line, column) + description);
  }

  const std::string& first_error() const { return first_error_; }
  const std::string& prefix() const { return prefix_; }

 private:
  std::string Where(int line, int column) const {
    // TextFormat counts from 0.
    return prefix_ + " line " + std::to_string(line + 1) + " column " + std::to_string(column + 1) +
           ": ";
  }

  // TextFormat reports an unknown field at the token after its name.
  void MoveToFieldName(const std::string& field, int& line, int& column) const {
    auto it = std::find_if(tokens_.begin(), tokens_.end(),
                           [&](const Token& t) { return t.line == line && t.column == column; });
    if (it == tokens_.begin() || it == tokens_.end()) return;
    const Token& name = *(it - 1);
    if (name.kind != Token::kIdentifier ||
        std::string_view(*text_).substr(name.begin, name.end - name.begin) != field) {
      return;
    }
    line = name.line;
    column = name.column;
  }

  // Rewrites TextFormat's unknown-field warning
  //   Message type "inference.ModelInput" has no field named "foo".
  // as "unknown field 'foo' ignored (...)" and sets `*field`; other warnings
  // pass unchanged.
  static std::string DescribeWarning(const std::string& message, std::string* field) {
    static constexpr std::string_view kType = "Message type \"";
    static constexpr std::string_view kField = "\" has no field named \"";
    std::string_view m(message);
    if (m.substr(0, kType.size()) != kType) return message;
    size_t type_end = m.find(kField, kType.size());
    if (type_end == std::string_view::npos) return message;
    std::string_view type = m.substr(kType.size(), type_end - kType.size());
    std::string_view rest = m.substr(type_end + kField.size());
    size_t name_end = rest.find('"');
    if (name_end == std::string_view::npos) return message;
    *field = rest.substr(0, name_end);
    return "unknown field " + Quote(*field) + " ignored (mmserve does not support it in " +
           std::string(type) + ")";
  }

  std::string prefix_;
  std::vector<std::string>* warnings_;
  const std::string* text_ = nullptr;
  std::vector<Token> tokens_;
  std::string first_error_;
};

}  // namespace

StatusOr<inference::ModelConfig> ParseModelConfig(std::string_view text,
                                                  std::string_view model_name,
                                                  std::vector<std::string>* warnings) {
  ConfigErrorCollector collector(model_name, warnings);
  constexpr size_t kMaxTextBytes = 64 << 20;  // leaves room below protobuf's int sizes
  if (text.size() > kMaxTextBytes) {
    return InvalidArgument(collector.prefix() + " is " + std::to_string(text.size()) +
                           " bytes; expected at most " + std::to_string(kMaxTextBytes));
  }
  const std::string skippable = SpellUnknownFieldsSkippably(text, Tokenize(text));
  collector.set_tokens(&skippable, Tokenize(skippable));
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&collector);
  parser.AllowUnknownField(true);
  parser.AllowUnknownExtension(true);
  google::protobuf::io::ArrayInputStream input(skippable.data(),
                                               static_cast<int>(skippable.size()));
  inference::ModelConfig config;
  if (!parser.Parse(&input, &config)) {
    if (!collector.first_error().empty()) return InvalidArgument(collector.first_error());
    return InvalidArgument(collector.prefix() + " could not be parsed as a ModelConfig");
  }
  return config;
}

}  // namespace mm
