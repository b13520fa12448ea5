#include "repository/mlflow/mlmodel.h"

#include "repository/remote_fetch.h"
#include "repository/repository_file.h"

#include <simdjson.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <set>

namespace mm {
namespace {

constexpr size_t kMaxFields = 1024;
constexpr size_t kMaxDims = 16;
constexpr size_t kMaxIndent = 128;

// Refuses what would make a recursive YAML parser recurse deeply: flow
// collections nested past kMaxMLmodelDepth, or lines indented past kMaxIndent.
// A character scan, not a YAML lexer: it misses some shapes (a block sequence
// "- - - ..." on one line; brackets after an apostrophe in a comment or a
// plain scalar), which yaml-cpp's own depth guard (DeepRecursion, 500 levels)
// then refuses; tests/unit/repository/mlmodel_test.cc holds both.
Status CheckNesting(std::string_view text, std::string_view what = "MLmodel") {
  int depth = 0;
  char quote = 0;
  size_t indent = 0;
  bool line_start = true;
  for (char c : text) {
    if (c == '\n') {
      line_start = true;
      indent = 0;
      continue;
    }
    if (line_start) {
      if (c == ' ' || c == '\t') {
        if (++indent > kMaxIndent) {
          return InvalidArgument(std::string(what) + " is indented deeper than " +
                                 std::to_string(kMaxIndent) + " columns; expected MLflow's " +
                                 std::string(what) + " YAML");
        }
        continue;
      }
      line_start = false;
    }
    if (quote) {
      if (c == quote) quote = 0;
      continue;
    }
    if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxMLmodelDepth) {
        return InvalidArgument(std::string(what) + " nests deeper than " +
                               std::to_string(kMaxMLmodelDepth) + " levels; expected MLflow's " +
                               std::string(what) + " YAML");
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return OkStatus();
}

StatusOr<inference::DataType> ColumnType(std::string_view type, const std::string& what) {
  if (type == "boolean") return inference::TYPE_BOOL;
  if (type == "integer") return inference::TYPE_INT32;
  if (type == "long") return inference::TYPE_INT64;
  if (type == "float") return inference::TYPE_FP32;
  if (type == "double") return inference::TYPE_FP64;
  if (type == "string" || type == "binary") return inference::TYPE_STRING;
  return InvalidArgument(what + " has type '" + std::string(type) +
                         "', which mmserve cannot serve; expected boolean, integer, long, float, "
                         "double, string or binary");
}

StatusOr<inference::DataType> TensorType(std::string_view dtype, const std::string& what) {
  static const std::pair<std::string_view, inference::DataType> kTypes[] = {
      {"bool", inference::TYPE_BOOL},     {"int8", inference::TYPE_INT8},
      {"int16", inference::TYPE_INT16},   {"int32", inference::TYPE_INT32},
      {"int64", inference::TYPE_INT64},   {"uint8", inference::TYPE_UINT8},
      {"uint16", inference::TYPE_UINT16}, {"uint32", inference::TYPE_UINT32},
      {"uint64", inference::TYPE_UINT64}, {"float16", inference::TYPE_FP16},
      {"float32", inference::TYPE_FP32},  {"float64", inference::TYPE_FP64},
      {"str", inference::TYPE_STRING},    {"object", inference::TYPE_STRING},
      {"bytes", inference::TYPE_STRING},
  };
  for (const auto& [name, type] : kTypes) {
    if (dtype == name) return type;
  }
  return InvalidArgument(what + " has dtype '" + std::string(dtype) +
                         "', which mmserve cannot serve; expected a numpy dtype such as "
                         "float32, int64, bool or str");
}

// One side ("inputs" or "outputs") of a signature: MLflow's JSON list.
Status ParseFields(const std::string& json, std::string_view side,
                   std::vector<MLmodelSignatureField>* fields, bool* columns) {
  const std::string where = "MLmodel signature " + std::string(side);
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(json).get(root) != simdjson::SUCCESS) {
    return InvalidArgument(where + " is not JSON; expected MLflow's list of fields");
  }
  simdjson::dom::array list;
  if (root.get_array().get(list) != simdjson::SUCCESS) {
    return InvalidArgument(where + " is not a JSON list; expected MLflow's list of fields");
  }
  bool any_tensor = false, any_column = false;
  size_t index = 0;
  for (simdjson::dom::element item : list) {
    const std::string what = where + "[" + std::to_string(index) + "]";
    if (++index > kMaxFields) {
      return InvalidArgument(where + " has more than " + std::to_string(kMaxFields) +
                             " fields; expected at most " + std::to_string(kMaxFields));
    }
    simdjson::dom::object object;
    if (item.get_object().get(object) != simdjson::SUCCESS) {
      return InvalidArgument(what + " is not an object; expected a column or tensor spec");
    }
    MLmodelSignatureField field;
    std::string_view text;
    if (object["name"].get_string().get(text) == simdjson::SUCCESS) field.name = text;
    bool required = true;
    if (bool value; object["required"].get_bool().get(value) == simdjson::SUCCESS) required = value;
    field.optional = !required;
    std::string_view type;
    if (object["type"].get_string().get(type) != simdjson::SUCCESS) {
      return InvalidArgument(what + " has no \"type\"; expected a column type or \"tensor\"");
    }
    const std::string named = field.name.empty() ? what : what + " ('" + field.name + "')";
    if (type == "tensor") {
      any_tensor = true;
      simdjson::dom::object spec;
      std::string_view dtype;
      simdjson::dom::array shape;
      if (object["tensor-spec"].get_object().get(spec) != simdjson::SUCCESS ||
          spec["dtype"].get_string().get(dtype) != simdjson::SUCCESS ||
          spec["shape"].get_array().get(shape) != simdjson::SUCCESS) {
        return InvalidArgument(named + " is a tensor without a \"tensor-spec\" of dtype and shape");
      }
      MM_ASSIGN_OR_RETURN(field.type, TensorType(dtype, named));
      for (simdjson::dom::element dim : shape) {
        int64_t value = 0;
        if (dim.get_int64().get(value) != simdjson::SUCCESS || value < -1 ||
            value > (int64_t{1} << 40) || field.dims.size() >= kMaxDims) {
          return InvalidArgument(named + " has a shape that is not a list of at most " +
                                 std::to_string(kMaxDims) + " sizes (-1 for any)");
        }
        field.dims.push_back(value);
      }
      if (field.dims.empty()) field.dims.push_back(1);
    } else {
      any_column = true;
      MM_ASSIGN_OR_RETURN(field.type, ColumnType(type, named));
      field.dims = {-1};
    }
    fields->push_back(std::move(field));
  }
  if (any_tensor && any_column) {
    return InvalidArgument(where + " mixes tensors and columns; expected one or the other");
  }
  if (columns) *columns = any_column;
  return OkStatus();
}

// A scalar's text, or an error naming `what`.
StatusOr<std::string> Scalar(const YAML::Node& node, const std::string& what) {
  if (!node.IsScalar()) return InvalidArgument(what + " is not a string");
  return node.Scalar();
}

}  // namespace

StatusOr<MLmodel> ParseMLmodel(std::string_view text) {
  MM_RETURN_IF_ERROR(CheckNesting(text));
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::DeepRecursion& e) {
    // Nesting CheckNesting cannot see (a block sequence "- - - ..." on one
    // line, brackets after an apostrophe in a comment): yaml-cpp's own guard
    // stops it, with a message ("bad file") that says nothing of why.
    return InvalidArgument("MLmodel nests deeper than " + std::to_string(e.depth() - 1) +
                           " levels at line " + std::to_string(e.mark.line + 1) +
                           "; expected MLflow's MLmodel YAML");
  } catch (const YAML::Exception& e) {
    return InvalidArgument(std::string("MLmodel is not YAML (") + e.what() +
                           "); expected MLflow's MLmodel");
  }
  MLmodel model;
  try {
    if (!root.IsMap())
      return InvalidArgument("MLmodel is not a YAML map; expected MLflow's MLmodel");
    const YAML::Node flavors = root["flavors"];
    if (!flavors || !flavors.IsMap()) {
      return InvalidArgument("MLmodel has no `flavors` map; expected MLflow's MLmodel");
    }
    for (const auto& entry : flavors) {
      MM_ASSIGN_OR_RETURN(std::string name, Scalar(entry.first, "an MLmodel flavor's name"));
      model.flavors.push_back(name);
      if (name == "onnx") {
        const YAML::Node data = entry.second.IsMap() ? entry.second["data"] : YAML::Node();
        if (!data) {
          return InvalidArgument(
              "MLmodel flavor onnx has no `data`; expected the ONNX file's path in the model "
              "folder");
        }
        MM_ASSIGN_OR_RETURN(model.onnx_file, Scalar(data, "MLmodel flavor onnx's `data`"));
        if (model.onnx_file.size() > 1024 || !SafeRelativePath(model.onnx_file)) {
          return InvalidArgument("MLmodel flavor onnx's `data` '" + model.onnx_file +
                                 "' is not a path inside the model folder; expected a relative "
                                 "path such as model.onnx");
        }
        model.onnx = true;
      } else if (name == "python_function") {
        model.pyfunc = true;
      }
    }
    const YAML::Node signature = root["signature"];
    if (signature && signature.IsMap()) {
      const YAML::Node inputs = signature["inputs"];
      const YAML::Node outputs = signature["outputs"];
      if (inputs && inputs.IsScalar() && inputs.Scalar() != "null") {
        MM_RETURN_IF_ERROR(ParseFields(inputs.Scalar(), "inputs", &model.inputs, &model.columns));
        model.has_signature = true;
      }
      if (outputs && outputs.IsScalar() && outputs.Scalar() != "null") {
        MM_RETURN_IF_ERROR(ParseFields(outputs.Scalar(), "outputs", &model.outputs, nullptr));
      }
    }
  } catch (const YAML::Exception& e) {
    return InvalidArgument(std::string("MLmodel cannot be read (") + e.what() +
                           "); expected MLflow's MLmodel");
  }
  return model;
}

StatusOr<inference::ModelConfig> MLmodelConfig(const MLmodel& model, std::string_view model_name) {
  inference::ModelConfig config;
  config.set_name(std::string(model_name));
  std::string listed;
  for (const std::string& f : model.flavors) listed += (listed.empty() ? "" : ", ") + f;
  if (model.onnx) {
    config.set_backend("onnxruntime");
    config.set_default_model_filename(model.onnx_file);
    return config;
  }
  if (!model.pyfunc) {
    return InvalidArgument("MLmodel flavors (" + listed +
                           ") have none mmserve serves; expected onnx or python_function");
  }
  if (!model.has_signature || model.inputs.empty() || model.outputs.empty()) {
    return InvalidArgument(
        "MLmodel has no signature with inputs and outputs; expected one (log the model with "
        "mlflow's infer_signature) or a config.pbtxt naming the inputs and outputs");
  }
  config.set_backend("python");
  config.set_max_batch_size(0);
  (*config.mutable_parameters())[std::string(kMlflowPyfuncParameter)].set_string_value(
      model.columns ? "columns" : "tensors");
  std::set<std::string> names;
  auto add = [&](const MLmodelSignatureField& f, size_t i, bool input) -> Status {
    std::string name = f.name.empty() ? (input ? "input-" : "output-") + std::to_string(i) : f.name;
    if (!names.insert((input ? "i:" : "o:") + name).second) {
      return InvalidArgument("MLmodel signature names " + std::string(input ? "input" : "output") +
                             " '" + name + "' twice; expected each name once");
    }
    if (input) {
      auto* in = config.add_input();
      in->set_name(name);
      in->set_data_type(f.type);
      for (int64_t d : f.dims) in->add_dims(d);
      in->set_optional(f.optional);
    } else {
      auto* out = config.add_output();
      out->set_name(name);
      out->set_data_type(f.type);
      for (int64_t d : f.dims) out->add_dims(d);
    }
    return OkStatus();
  };
  for (size_t i = 0; i < model.inputs.size(); ++i)
    MM_RETURN_IF_ERROR(add(model.inputs[i], i, true));
  for (size_t i = 0; i < model.outputs.size(); ++i) {
    MM_RETURN_IF_ERROR(add(model.outputs[i], i, false));
  }
  return config;
}

// ---------------------------------------------------------------- requirements

namespace {

// `text` for a message: at most 80 characters, control characters as '?'.
std::string Shown(std::string_view text) {
  std::string out(text.substr(0, 80));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  if (text.size() > 80) out += "...";
  return out;
}

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

std::string_view TrimmedView(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

}  // namespace

Status CheckRequirement(std::string_view requirement) {
  auto refuse = [&](const std::string& why) {
    return InvalidArgument("requirement '" + Shown(requirement) + "' " + why +
                           "; expected a package requirement: a name, optional [extras], version "
                           "specifiers and '; markers' (PEP 508 without URLs or paths), installed "
                           "from the package index");
  };
  if (requirement.empty()) return refuse("is empty");
  if (requirement.size() > kMaxRequirementLength) {
    return refuse("is longer than " + std::to_string(kMaxRequirementLength) + " characters");
  }
  // Options before it or after it ("numpy --hash=...", "--index-url ...").
  if (requirement[0] == '-' || requirement.find(" -") != std::string_view::npos) {
    return refuse("is or holds a pip option");
  }
  if (!IsAlnum(requirement[0])) return refuse("does not start with a package name");
  // Name, extras, specifiers ("==", "~=", ".*", "+local"), markers' quotes.
  constexpr std::string_view kAllowed = "._-[],<>=!~*+;'\"() ";
  for (char c : requirement) {
    if (IsAlnum(c) || kAllowed.find(c) != std::string_view::npos) continue;
    if (c == '@') return refuse("is a direct reference (name @ URL)");
    if (c == '/' || c == '\\' || c == ':') return refuse("names a URL or a path");
    if (c == '$') return refuse("names an environment variable");
    return refuse("holds the character '" + Shown(std::string_view(&c, 1)) + "'");
  }
  return OkStatus();
}

StatusOr<std::vector<std::string>> ParseRequirementsText(std::string_view text,
                                                         std::string_view source) {
  std::vector<std::string> out;
  size_t number = 0;
  for (size_t from = 0; from <= text.size();) {
    size_t end = text.find('\n', from);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(from, end - from);
    from = end + 1;
    ++number;
    const std::string where = std::string(source) + " line " + std::to_string(number);
    // pip's comments: '#' at the start of the line or after whitespace.
    for (size_t hash = line.find('#'); hash != std::string_view::npos;
         hash = line.find('#', hash + 1)) {
      if (hash == 0 || line[hash - 1] == ' ' || line[hash - 1] == '\t') {
        line = line.substr(0, hash);
        break;
      }
    }
    line = TrimmedView(line);
    if (line.empty()) continue;
    if (line.back() == '\\') {
      return InvalidArgument(where +
                             " is continued on the next line with '\\'; expected one "
                             "requirement per line");
    }
    Status ok = CheckRequirement(line);
    if (!ok.ok()) return ok.WithContext(where);
    if (out.size() == kMaxMlflowRequirements) {
      return InvalidArgument(std::string(source) + " lists more than " +
                             std::to_string(kMaxMlflowRequirements) + " requirements");
    }
    out.emplace_back(line);
  }
  return out;
}

StatusOr<MlflowRequirements> ParseMlflowPythonEnv(
    std::string_view text, const std::function<StatusOr<std::string>()>& read_requirements_txt) {
  const std::string file(kMlflowPythonEnvFile);
  MM_RETURN_IF_ERROR(CheckNesting(text, file));
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::DeepRecursion& e) {
    return InvalidArgument(file + " nests deeper than " + std::to_string(e.depth() - 1) +
                           " levels at line " + std::to_string(e.mark.line + 1) +
                           "; expected MLflow's python_env.yaml");
  } catch (const YAML::Exception& e) {
    return InvalidArgument(file + " is not YAML (" + e.what() + "); expected MLflow's " + file);
  }
  MlflowRequirements out;
  out.source = file;
  try {
    if (!root.IsMap())
      return InvalidArgument(file + " is not a YAML map; expected MLflow's " + file);
    if (const YAML::Node python = root["python"]) {
      MM_ASSIGN_OR_RETURN(out.python, Scalar(python, file + "'s `python`"));
      const bool version = !out.python.empty() && out.python.size() <= 32 &&
                           std::all_of(out.python.begin(), out.python.end(),
                                       [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
      if (!version) {
        return InvalidArgument(file + "'s `python` is '" + Shown(out.python) +
                               "'; expected a version such as 3.11.4");
      }
    }
    const YAML::Node dependencies = root["dependencies"];
    if (!dependencies) return out;
    if (!dependencies.IsSequence()) {
      return InvalidArgument(file +
                             "'s `dependencies` is not a list; expected a list of "
                             "requirements");
    }
    bool included = false;
    for (const auto& item : dependencies) {
      MM_ASSIGN_OR_RETURN(std::string raw, Scalar(item, file + "'s dependency"));
      const std::string_view entry = TrimmedView(raw);
      if (entry.rfind("-r ", 0) == 0 || entry.rfind("--requirement ", 0) == 0) {
        const std::string_view named = TrimmedView(entry.substr(entry.find(' ')));
        if (named != kMlflowRequirementsFile) {
          return InvalidArgument(file + "'s dependency '" + Shown(entry) +
                                 "' names another file than " +
                                 std::string(kMlflowRequirementsFile) +
                                 "; expected only \"-r requirements.txt\" (the file beside it)");
        }
        if (included) continue;
        included = true;
        MM_ASSIGN_OR_RETURN(std::string listed, read_requirements_txt());
        MM_ASSIGN_OR_RETURN(std::vector<std::string> packages,
                            ParseRequirementsText(listed, kMlflowRequirementsFile));
        for (auto& p : packages) out.packages.push_back(std::move(p));
      } else {
        Status ok = CheckRequirement(entry);
        if (!ok.ok()) return ok.WithContext(file);
        out.packages.emplace_back(entry);
      }
      if (out.packages.size() > kMaxMlflowRequirements) {
        return InvalidArgument(file + " lists more than " + std::to_string(kMaxMlflowRequirements) +
                               " requirements");
      }
    }
  } catch (const YAML::Exception& e) {
    return InvalidArgument(file + " cannot be read (" + e.what() + "); expected MLflow's " + file);
  }
  return out;
}

StatusOr<std::optional<MlflowRequirements>> ReadMlflowRequirements(
    const std::filesystem::path& version_dir) {
  const auto requirements_txt = version_dir / kMlflowRequirementsFile;
  auto yaml = ReadRepositoryFile(version_dir / kMlflowPythonEnvFile, RepositoryFileKind::kConfig);
  if (yaml.ok()) {
    auto parsed = ParseMlflowPythonEnv(*yaml, [&]() -> StatusOr<std::string> {
      return ReadRepositoryFile(requirements_txt, RepositoryFileKind::kConfig);
    });
    if (!parsed.ok()) return parsed.status().WithContext(version_dir.string());
    return std::optional<MlflowRequirements>(std::move(*parsed));
  }
  if (yaml.status().code() != StatusCode::kNotFound) return yaml.status();
  auto text = ReadRepositoryFile(requirements_txt, RepositoryFileKind::kConfig);
  if (!text.ok()) {
    if (text.status().code() == StatusCode::kNotFound) return std::optional<MlflowRequirements>();
    return text.status();
  }
  MlflowRequirements out;
  out.source = std::string(kMlflowRequirementsFile);
  auto packages = ParseRequirementsText(*text, kMlflowRequirementsFile);
  if (!packages.ok()) return packages.status().WithContext(version_dir.string());
  out.packages = std::move(*packages);
  return std::optional<MlflowRequirements>(std::move(out));
}

}  // namespace mm
