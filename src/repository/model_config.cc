#include "repository/model_config.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <set>
#include <system_error>
#include <thread>
#include <utility>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "core/data_type.h"

namespace mm {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// ------------------------------------------------------------------ parsing

// Quotes `s` for a message, escaping bytes that would garble a log line.
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

// --------------------------------------------------------------- validation

bool HasControlChar(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

Status ValidateModelName(const std::string& name) {
  if (name.empty()) {
    return InvalidArgument("model name is empty; expected the model's directory name");
  }
  const char* problem = nullptr;
  if (name.find('/') != std::string::npos) {
    problem = "contains '/'";
  } else if (name.find('\\') != std::string::npos) {
    problem = "contains '\\'";
  } else if (name.find("..") != std::string::npos) {
    problem = "contains '..'";
  } else if (HasControlChar(name)) {
    problem = "contains a control character";
  }
  if (problem != nullptr) {
    return InvalidArgument("model name " + Quote(name) + " " + problem +
                           "; expected a single directory name without '/', '\\', '..' or "
                           "control characters");
  }
  return OkStatus();
}

using B = ConfigBounds;

// "what is N; expected at most BOUND": a number over its bound.
Status OverBound(const std::string& what, auto value, auto bound, std::string_view why = {}) {
  return InvalidArgument(what + " is " + std::to_string(value) + "; expected at most " +
                         std::to_string(bound) +
                         (why.empty() ? "" : " (" + std::string(why) + ")"));
}

// Entries of a repeated or map field: at most `bound`.
Status CheckCount(const std::string& what, int size, int bound) {
  if (size <= bound) return OkStatus();
  return InvalidArgument(what + " has " + std::to_string(size) + " entries; expected at most " +
                         std::to_string(bound));
}

Status ValidateRank(int rank, const std::string& what, const char* field) {
  if (rank <= B::kMaxRank) return OkStatus();
  return InvalidArgument(what + " " + field + " has " + std::to_string(rank) +
                         " dims; expected at most " + std::to_string(B::kMaxRank));
}

// Dims of a configured tensor: -1 (variable) or positive, at most kMaxDim.
Status ValidateDims(const google::protobuf::RepeatedField<int64_t>& dims, const std::string& what,
                    const char* field) {
  MM_RETURN_IF_ERROR(ValidateRank(dims.size(), what, field));
  for (int i = 0; i < dims.size(); ++i) {
    if (dims[i] == -1 || (dims[i] > 0 && dims[i] <= B::kMaxDim)) continue;
    return InvalidArgument(
        what + " " + field + "[" + std::to_string(i) + "] is " + std::to_string(dims[i]) +
        "; expected -1 (variable size) or a positive size up to " + std::to_string(B::kMaxDim));
  }
  return OkStatus();
}

Status ValidateDataType(int data_type, const std::string& what) {
  if (data_type != inference::TYPE_INVALID && inference::DataType_IsValid(data_type)) {
    return OkStatus();
  }
  std::string got = inference::DataType_IsValid(data_type) ? inference::DataType_Name(data_type)
                                                           : std::to_string(data_type);
  return InvalidArgument(what + " has data_type " + got +
                         "; expected a valid type such as TYPE_FP32");
}

// Shared checks of ModelInput and ModelOutput.
template <typename Tensor>
Status ValidateTensors(const google::protobuf::RepeatedPtrField<Tensor>& tensors,
                       const char* kind) {
  MM_RETURN_IF_ERROR(CheckCount(kind, tensors.size(), B::kMaxTensors));
  std::set<std::string> seen;
  for (int i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    if (t.name().empty()) {
      return InvalidArgument(std::string(kind) + " #" + std::to_string(i) + " has no name; every " +
                             kind + " needs a non-empty name");
    }
    std::string what = std::string(kind) + " " + Quote(t.name());
    if (HasControlChar(t.name())) {
      return InvalidArgument(what + " has a control character in its name");
    }
    if (!seen.insert(t.name()).second) {
      return InvalidArgument(what + " appears more than once; " + kind + " names must be unique");
    }
    MM_RETURN_IF_ERROR(ValidateDataType(t.data_type(), what));
    MM_RETURN_IF_ERROR(ValidateDims(t.dims(), what, "dims"));
    if (t.has_reshape())
      MM_RETURN_IF_ERROR(ValidateDims(t.reshape().shape(), what, "reshape.shape"));
  }
  return OkStatus();
}

Status ValidateVersionPolicy(const inference::ModelVersionPolicy& policy) {
  if (policy.has_latest() && policy.latest().num_versions() == 0) {
    return InvalidArgument("version_policy.latest.num_versions is 0; expected at least 1");
  }
  if (policy.has_latest() && policy.latest().num_versions() > B::kMaxVersions) {
    return OverBound("version_policy.latest.num_versions", policy.latest().num_versions(),
                     B::kMaxVersions, "versions served at once");
  }
  if (policy.has_specific()) {
    const auto& versions = policy.specific().versions();
    MM_RETURN_IF_ERROR(
        CheckCount("version_policy.specific.versions", versions.size(), B::kMaxVersions));
    if (versions.empty()) {
      return InvalidArgument(
          "version_policy.specific lists no versions; expected at least one positive version");
    }
    for (int i = 0; i < versions.size(); ++i) {
      if (versions[i] <= 0) {
        return InvalidArgument("version_policy.specific.versions[" + std::to_string(i) + "] is " +
                               std::to_string(versions[i]) +
                               "; expected a positive version number");
      }
    }
  }
  return OkStatus();
}

Status ValidateQueuePolicy(const inference::ModelQueuePolicy& policy, const std::string& what) {
  if (!inference::ModelQueuePolicy::TimeoutAction_IsValid(policy.timeout_action())) {
    return InvalidArgument(what + ".timeout_action is " + std::to_string(policy.timeout_action()) +
                           "; expected REJECT or DELAY");
  }
  if (policy.default_timeout_microseconds() > B::kMaxQueueTimeoutUs) {
    return OverBound(what + ".default_timeout_microseconds", policy.default_timeout_microseconds(),
                     B::kMaxQueueTimeoutUs, "one hour");
  }
  if (policy.max_queue_size() > B::kMaxQueueSize) {
    return OverBound(what + ".max_queue_size", policy.max_queue_size(), B::kMaxQueueSize,
                     "0 means unbounded");
  }
  return OkStatus();
}

Status ValidateDynamicBatching(const inference::ModelConfig& config) {
  const auto& db = config.dynamic_batching();
  const int32_t max_batch = config.max_batch_size();
  if (max_batch <= 0) {
    return InvalidArgument(
        "dynamic_batching is set but max_batch_size is 0; dynamic batching needs a model "
        "that batches (max_batch_size > 0)");
  }
  MM_RETURN_IF_ERROR(CheckCount("dynamic_batching.preferred_batch_size",
                                db.preferred_batch_size_size(), B::kMaxPreferredBatchSizes));
  for (int i = 0; i < db.preferred_batch_size_size(); ++i) {
    int32_t size = db.preferred_batch_size(i);
    if (size <= 0 || size > max_batch) {
      return InvalidArgument("dynamic_batching.preferred_batch_size[" + std::to_string(i) +
                             "] is " + std::to_string(size) + "; expected 1 to max_batch_size (" +
                             std::to_string(max_batch) + ")");
    }
  }
  if (db.max_queue_delay_microseconds() > B::kMaxQueueDelayUs) {
    return OverBound("dynamic_batching.max_queue_delay_microseconds",
                     db.max_queue_delay_microseconds(), B::kMaxQueueDelayUs, "one minute");
  }
  const uint64_t levels = db.priority_levels();
  if (levels > B::kMaxPriorityLevels) {
    return OverBound("dynamic_batching.priority_levels", levels, B::kMaxPriorityLevels);
  }
  if (levels == 0) {
    if (db.default_priority_level() != 0) {
      return InvalidArgument("dynamic_batching.default_priority_level is " +
                             std::to_string(db.default_priority_level()) +
                             " but priority_levels is 0; set priority_levels first");
    }
    if (!db.priority_queue_policy().empty()) {
      return InvalidArgument(
          "dynamic_batching.priority_queue_policy is set but priority_levels is 0; set "
          "priority_levels first");
    }
  } else if (db.default_priority_level() < 1 || db.default_priority_level() > levels) {
    return InvalidArgument("dynamic_batching.default_priority_level is " +
                           std::to_string(db.default_priority_level()) + "; expected 1 to " +
                           "priority_levels (" + std::to_string(levels) + ")");
  }
  if (db.has_default_queue_policy()) {
    MM_RETURN_IF_ERROR(
        ValidateQueuePolicy(db.default_queue_policy(), "dynamic_batching.default_queue_policy"));
  }
  for (const auto& [level, policy] : db.priority_queue_policy()) {
    std::string what = "dynamic_batching.priority_queue_policy[" + std::to_string(level) + "]";
    if (level < 1 || level > levels) {
      return InvalidArgument(what + " names priority level " + std::to_string(level) +
                             "; expected 1 to priority_levels (" + std::to_string(levels) + ")");
    }
    MM_RETURN_IF_ERROR(ValidateQueuePolicy(policy, what));
  }
  return OkStatus();
}

Status ValidateInstanceGroups(const inference::ModelConfig& config) {
  MM_RETURN_IF_ERROR(
      CheckCount("instance_group", config.instance_group_size(), B::kMaxInstanceGroups));
  int64_t total = 0;
  for (int i = 0; i < config.instance_group_size(); ++i) {
    const auto& group = config.instance_group(i);
    std::string what = "instance_group[" + std::to_string(i) + "]";
    if (group.count() < 0) {
      return InvalidArgument(what + ".count is " + std::to_string(group.count()) +
                             "; expected 0 or more (0 means 1)");
    }
    if (group.count() > B::kMaxInstances) {
      return OverBound(what + ".count", group.count(), B::kMaxInstances);
    }
    total += std::max(group.count(), 1);  // at most 64 groups of 1024: no overflow
    if (total > B::kMaxInstances) {
      return InvalidArgument("instance_group asks for " + std::to_string(total) +
                             " instances or more in total; expected at most " +
                             std::to_string(B::kMaxInstances));
    }
    MM_RETURN_IF_ERROR(CheckCount(what + ".gpus", group.gpus_size(), B::kMaxGpusPerGroup));
    const auto& limiter = group.rate_limiter();
    MM_RETURN_IF_ERROR(CheckCount(what + ".rate_limiter.resources", limiter.resources_size(),
                                  B::kMaxRateLimiterResources));
    for (int r = 0; r < limiter.resources_size(); ++r) {
      if (limiter.resources(r).count() > B::kMaxRateLimiterCount) {
        return OverBound(what + ".rate_limiter.resources[" + std::to_string(r) + "].count",
                         limiter.resources(r).count(), B::kMaxRateLimiterCount);
      }
    }
    if (limiter.priority() > B::kMaxRateLimiterCount) {
      return OverBound(what + ".rate_limiter.priority", limiter.priority(),
                       B::kMaxRateLimiterCount);
    }
    if (!inference::ModelInstanceGroup::Kind_IsValid(group.kind())) {
      return InvalidArgument(what + ".kind is " + std::to_string(group.kind()) +
                             "; expected KIND_AUTO, KIND_CPU, KIND_GPU or KIND_MODEL");
    }
    for (int g : group.gpus()) {
      if (g < 0 || g > B::kMaxGpuIndex) {
        return InvalidArgument(what + ".gpus lists " + std::to_string(g) +
                               "; expected GPU indices from 0 to " +
                               std::to_string(B::kMaxGpuIndex));
      }
    }
  }
  return OkStatus();
}

// Bytes of one warmup input's data at least: elements x element size (a
// BYTES element at least its 4-byte length prefix), saturating past `cap`.
uint64_t WarmupInputBytes(const inference::ModelWarmup::Input& input, uint64_t rows, uint64_t cap) {
  const auto type = static_cast<DataType>(input.data_type());
  uint64_t bytes = type == DataType::kBytes ? 4 : std::max<uint64_t>(DataTypeSize(type), 1);
  bytes *= rows;
  for (int64_t d : input.dims()) {  // each in [0, kMaxDim]
    if (d == 0) return 0;
    if (bytes > cap / static_cast<uint64_t>(d)) return cap + 1;
    bytes *= static_cast<uint64_t>(d);
  }
  return bytes;
}

Status ValidateWarmup(const inference::ModelConfig& config) {
  MM_RETURN_IF_ERROR(CheckCount("model_warmup", config.model_warmup_size(), B::kMaxWarmupSamples));
  uint64_t runs = 0;
  for (int i = 0; i < config.model_warmup_size(); ++i) {
    const auto& warmup = config.model_warmup(i);
    std::string what = "model_warmup[" + std::to_string(i) + "]";
    if (warmup.count() > B::kMaxWarmupRuns) {
      return OverBound(what + ".count", warmup.count(), B::kMaxWarmupRuns,
                       "warmup runs per instance, on a loader thread");
    }
    runs += std::max<uint64_t>(warmup.count(), 1);
    if (runs > B::kMaxWarmupRuns) {
      return InvalidArgument("model_warmup runs " + std::to_string(runs) +
                             " times or more per instance (each sample's count, 0 counting 1); "
                             "expected at most " +
                             std::to_string(B::kMaxWarmupRuns) + " in total");
    }
    uint32_t limit = config.max_batch_size() > 0 ? config.max_batch_size() : 1;
    if (warmup.batch_size() < 1 || warmup.batch_size() > limit) {
      return InvalidArgument(
          what + ".batch_size is " + std::to_string(warmup.batch_size()) + "; expected 1 to " +
          std::to_string(limit) +
          (config.max_batch_size() > 0 ? " (max_batch_size)" : " (the model does not batch)"));
    }
    MM_RETURN_IF_ERROR(CheckCount(what + ".inputs", warmup.inputs_size(), B::kMaxTensors));
    const uint64_t rows = config.max_batch_size() > 0 ? warmup.batch_size() : 1;
    uint64_t sample_bytes = 0;
    for (const auto& [name, input] : warmup.inputs()) {
      std::string in = what + ".inputs[" + Quote(name) + "]";
      if (name.empty()) return InvalidArgument(what + " has an input with an empty name");
      MM_RETURN_IF_ERROR(ValidateDataType(input.data_type(), in));
      MM_RETURN_IF_ERROR(ValidateRank(input.dims_size(), in, "dims"));
      for (int d = 0; d < input.dims_size(); ++d) {
        if (input.dims(d) < 0 || input.dims(d) > B::kMaxDim) {
          return InvalidArgument(in + " dims[" + std::to_string(d) + "] is " +
                                 std::to_string(input.dims(d)) +
                                 "; expected a concrete size from 0 to " +
                                 std::to_string(B::kMaxDim) + " for warmup data");
        }
      }
      if (input.input_data_type_case() == inference::ModelWarmup::Input::INPUT_DATA_TYPE_NOT_SET) {
        return InvalidArgument(in + " says no data; expected zero_data, random_data or " +
                               "input_data_file");
      }
      sample_bytes += WarmupInputBytes(input, rows, B::kMaxWarmupSampleBytes);
      if (sample_bytes > B::kMaxWarmupSampleBytes) {
        return InvalidArgument(what + " needs more than " +
                               std::to_string(B::kMaxWarmupSampleBytes) +
                               " bytes of input data (batch_size x dims x element size, "
                               "summed over its inputs); expected at most " +
                               std::to_string(B::kMaxWarmupSampleBytes) + " (64 MiB)");
      }
    }
  }
  return OkStatus();
}

// A map field's entries: at most kMaxMapEntries.
Status ValidateMaps(const inference::ModelConfig& config) {
  MM_RETURN_IF_ERROR(CheckCount("parameters", config.parameters_size(), B::kMaxMapEntries));
  MM_RETURN_IF_ERROR(CheckCount("metric_tags", config.metric_tags_size(), B::kMaxMapEntries));
  MM_RETURN_IF_ERROR(
      CheckCount("cc_model_filenames", config.cc_model_filenames_size(), B::kMaxMapEntries));
  return OkStatus();
}

// The parameters that set a runtime's thread counts (Triton's names, read by
// the onnxruntime backend): a decimal integer in [0, kMaxThreadsPerInstance].
constexpr std::string_view kThreadParameters[] = {"intra_op_thread_count", "inter_op_thread_count"};

// The value of thread parameter `key`: `unset` when absent.
StatusOr<int64_t> ThreadParameter(const inference::ModelConfig& config, std::string_view key,
                                  int64_t unset) {
  auto it = config.parameters().find(std::string(key));
  if (it == config.parameters().end()) return unset;
  const std::string& text = it->second.string_value();
  int64_t value = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0 ||
      value > B::kMaxThreadsPerInstance) {
    return InvalidArgument("parameters[" + Quote(key) + "] is " + Quote(text) +
                           "; expected an integer from 0 (one per core) to " +
                           std::to_string(B::kMaxThreadsPerInstance));
  }
  return value;
}

Status ValidateMmserve(const inference::MmserveOptions& mm) {
  if (!inference::MmserveOptions::Isolation_IsValid(mm.isolation())) {
    return InvalidArgument(
        "mmserve.isolation is " + std::to_string(mm.isolation()) +
        "; expected IN_PROCESS or PROCESS (or none: the server's --default-isolation)");
  }
  if (const double w = mm.weight(); !(w >= 0 && w <= B::kMaxWeight)) {
    return InvalidArgument("mmserve.weight is " + std::to_string(w) +
                           "; expected a number from 0 (the default, 1) to 1000000");
  }
  if (mm.memory_footprint_bytes() > B::kMaxMemoryBytes) {
    return OverBound("mmserve.memory_footprint_bytes", mm.memory_footprint_bytes(),
                     B::kMaxMemoryBytes, "256 TiB");
  }
  if (mm.memory_limit_bytes() > B::kMaxMemoryBytes) {
    return OverBound("mmserve.memory_limit_bytes", mm.memory_limit_bytes(), B::kMaxMemoryBytes,
                     "256 TiB");
  }
  if (mm.execution_timeout_ms() > B::kMaxExecutionTimeoutMs) {
    return OverBound("mmserve.execution_timeout_ms", mm.execution_timeout_ms(),
                     B::kMaxExecutionTimeoutMs, "one hour");
  }
  return OkStatus();
}

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

Status ValidateModelConfig(const inference::ModelConfig& config) {
  MM_RETURN_IF_ERROR(ValidateModelName(config.name()));
  if (config.max_batch_size() < 0) {
    return InvalidArgument("max_batch_size is " + std::to_string(config.max_batch_size()) +
                           "; expected 0 (no batching) or a positive batch size");
  }
  if (config.max_batch_size() > B::kMaxBatchSize) {
    return OverBound("max_batch_size", config.max_batch_size(), B::kMaxBatchSize);
  }
  MM_RETURN_IF_ERROR(ValidateTensors(config.input(), "input"));
  MM_RETURN_IF_ERROR(ValidateTensors(config.output(), "output"));
  for (const auto& input : config.input()) {
    if (!inference::ModelInput::Format_IsValid(input.format())) {
      return InvalidArgument("input " + Quote(input.name()) + " has format " +
                             std::to_string(input.format()) +
                             "; expected FORMAT_NONE, FORMAT_NHWC or FORMAT_NCHW");
    }
  }
  MM_RETURN_IF_ERROR(ValidateVersionPolicy(config.version_policy()));
  MM_RETURN_IF_ERROR(ValidateInstanceGroups(config));
  if (config.has_dynamic_batching()) MM_RETURN_IF_ERROR(ValidateDynamicBatching(config));
  MM_RETURN_IF_ERROR(ValidateWarmup(config));
  MM_RETURN_IF_ERROR(ValidateMaps(config));
  for (std::string_view key : kThreadParameters) {
    MM_RETURN_IF_ERROR(ThreadParameter(config, key, 0).status());
  }
  return ValidateMmserve(config.mmserve());
}

int64_t InstanceCount(const inference::ModelConfig& config) {
  int64_t total = 0;
  for (const auto& group : config.instance_group()) {
    total += std::max<int64_t>(group.count(), 1);
  }
  return std::max<int64_t>(total, 1);
}

Status CheckServerLimits(const inference::ModelConfig& config, const ServerLimits& limits) {
  const int64_t instances = InstanceCount(config);
  if (limits.max_instances_per_model > 0 && instances > limits.max_instances_per_model) {
    return InvalidArgument("instance_group asks for " + std::to_string(instances) +
                           " instances; this server allows at most " +
                           std::to_string(limits.max_instances_per_model) +
                           " per model (--max-instances-per-model)");
  }
  if (limits.max_threads_per_model <= 0) return OkStatus();
  const int64_t cores =
      limits.cores > 0
          ? limits.cores
          : std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()));
  int64_t per_instance = 0;
  std::string terms;
  for (std::string_view key : kThreadParameters) {
    MM_ASSIGN_OR_RETURN(int64_t n, ThreadParameter(config, key, 1));
    if (!terms.empty()) terms += " + ";
    terms += std::string(key) + " " + std::to_string(n);
    if (!config.parameters().contains(std::string(key))) {
      terms += " (unset)";
    } else if (n == 0) {
      n = cores;
      terms += " (one per core: " + std::to_string(cores) + ")";
    }
    per_instance += n;
  }
  const int64_t threads = instances * per_instance;  // at most 1024 x 2 x (1024 or cores)
  if (threads > limits.max_threads_per_model) {
    return InvalidArgument(
        std::to_string(instances) + " instance(s) x (" + terms + ") = " + std::to_string(threads) +
        " threads; this server allows at most " + std::to_string(limits.max_threads_per_model) +
        " per model (--max-threads-per-model)");
  }
  return OkStatus();
}

namespace {

// `json` as a message of `message`'s type; INVALID_ARGUMENT as a load answers.
Status ParseOverrideJson(std::string_view json, std::string_view model_name,
                         google::protobuf::Message* message) {
  const std::string what = "model '" + std::string(model_name) + "': the 'config' parameter";
  if (json.size() > B::kMaxOverrideBytes) {
    return InvalidArgument(what + " is " + std::to_string(json.size()) +
                           " bytes; expected at most " + std::to_string(B::kMaxOverrideBytes));
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

std::vector<int64_t> SelectVersions(const inference::ModelVersionPolicy& policy,
                                    std::vector<int64_t> available) {
  std::erase_if(available, [](int64_t v) { return v <= 0; });
  std::sort(available.begin(), available.end());
  available.erase(std::unique(available.begin(), available.end()), available.end());
  switch (policy.policy_choice_case()) {
    case inference::ModelVersionPolicy::kAll:
      return available;
    case inference::ModelVersionPolicy::kSpecific: {
      std::vector<int64_t> selected;
      for (int64_t v : available) {
        const auto& wanted = policy.specific().versions();
        if (std::find(wanted.begin(), wanted.end(), v) != wanted.end()) selected.push_back(v);
      }
      return selected;
    }
    case inference::ModelVersionPolicy::kLatest:
    case inference::ModelVersionPolicy::POLICY_CHOICE_NOT_SET:
      break;
  }
  size_t n = policy.has_latest() ? std::max<uint32_t>(policy.latest().num_versions(), 1) : 1;
  if (available.size() > n) available.erase(available.begin(), available.end() - n);
  return available;
}

std::string ModelConfigToJson(const google::protobuf::Message& message) {
  std::string out;
  JsonWriter(out).WriteMessage(message);
  return out;
}

}  // namespace mm
