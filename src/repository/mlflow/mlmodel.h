// The MLflow model format: a folder holding an `MLmodel` file (YAML) beside
// the model's artifacts. In a repository it is a version folder
// (<model>/<version>/MLmodel), served without a config.pbtxt: the config is
// derived from the MLmodel of the model's newest version.
//
//  - The `onnx` flavor goes to ONNX Runtime (backend "onnxruntime",
//    default_model_filename = the flavor's `data`); its inputs and outputs
//    come from the ONNX model itself, as for any ONNX model.
//  - Otherwise the `python_function` flavor goes to the Python backend, with
//    mmserve's built-in model.py (parameter kMlflowPyfuncParameter) that calls
//    mlflow.pyfunc.load_model. Its inputs and outputs come from the MLflow
//    signature: a tensor-based signature maps to tensors (an unnamed one is
//    "input-0" / "output-0"); a column-based one to one input per column,
//    shape [-1] (as MLServer does for the V2 protocol), BYTES for strings.
//    max_batch_size is 0: the signature's shapes are served as written.
//
// The MLmodel is hostile input (a tenant's repository): it is size-capped
// by its reader, nesting deeper than kMaxMLmodelDepth is refused before
// YAML parsing, and every field is checked. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "model_config.pb.h"

namespace mm {

inline constexpr std::string_view kMLmodelFile = "MLmodel";
// Set (to "columns" or "tensors") on a config served by the built-in MLflow
// pyfunc model.py; a config.pbtxt may set it too, to serve an MLflow folder
// with its own config.
inline constexpr std::string_view kMlflowPyfuncParameter = "mmserve_mlflow_pyfunc";
inline constexpr int kMaxMLmodelDepth = 32;

struct MLmodelSignatureField {
  std::string name;  // "" for an unnamed tensor
  inference::DataType type = inference::TYPE_INVALID;
  std::vector<int64_t> dims;  // [-1] for a column
  bool optional = false;
};

struct MLmodel {
  std::vector<std::string> flavors;  // every flavor listed, in order
  bool onnx = false;
  std::string onnx_file;  // the onnx flavor's `data`
  bool pyfunc = false;    // a python_function flavor
  bool has_signature = false;
  bool columns = false;  // a column-based input signature
  std::vector<MLmodelSignatureField> inputs;
  std::vector<MLmodelSignatureField> outputs;
};

// INVALID_ARGUMENT naming what is wrong: not YAML, nested too deep, no
// `flavors` map, a flavor field of the wrong kind, a signature that is not
// MLflow's JSON, a type mmserve cannot serve.
StatusOr<MLmodel> ParseMLmodel(std::string_view text);

// The config `model` is served with, named `model_name`. INVALID_ARGUMENT
// when it has neither an onnx nor a python_function flavor, or (pyfunc) no
// signature with inputs and outputs.
StatusOr<inference::ModelConfig> MLmodelConfig(const MLmodel& model, std::string_view model_name);

// ---- The model's Python requirements (--mlflow-create-env).
//
// MLflow saves `python_env.yaml` (the Python version, build dependencies,
// dependencies: usually "-r requirements.txt") and `requirements.txt` beside
// MLmodel. Both are hostile input: a requirements file is a pip command line
// (options, index URLs, paths, `-r` of any file, environment variables), so
// only plain package requirements pass: a name, optional extras, version
// specifiers and environment markers (PEP 508 without URLs). Nothing else
// may choose where packages come from or what is read.
inline constexpr std::string_view kMlflowPythonEnvFile = "python_env.yaml";
inline constexpr std::string_view kMlflowRequirementsFile = "requirements.txt";
inline constexpr size_t kMaxMlflowRequirements = 512;
inline constexpr size_t kMaxRequirementLength = 512;

struct MlflowRequirements {
  std::string python;                 // python_env.yaml's `python` ("3.11.4"); "" when none
  std::vector<std::string> packages;  // checked requirements, in order, trimmed
  std::string source;                 // "python_env.yaml" or "requirements.txt"
};

// OK when `requirement` is a package requirement as above; else
// INVALID_ARGUMENT saying what it is and what is accepted.
Status CheckRequirement(std::string_view requirement);

// The requirements of a requirements.txt's text (comments and blank lines
// skipped). `source` names the file in messages. INVALID_ARGUMENT for an
// option line (-r, -c, --index-url, ...), a URL or path, a line continued
// with a backslash, or more than kMaxMlflowRequirements.
StatusOr<std::vector<std::string>> ParseRequirementsText(std::string_view text,
                                                         std::string_view source);

// A python_env.yaml's requirements. Its `dependencies` list holds
// requirements, or "-r requirements.txt", whose text `read_requirements_txt`
// gives (only that file beside it may be named). `build_dependencies` (pip,
// setuptools, wheel) are not needed to install wheels and are ignored.
StatusOr<MlflowRequirements> ParseMlflowPythonEnv(
    std::string_view text, const std::function<StatusOr<std::string>()>& read_requirements_txt);

// The requirements of the MLflow model in `version_dir`: its python_env.yaml,
// else its requirements.txt; nullopt when it has neither. Files are read by
// ReadRepositoryFile's rules.
StatusOr<std::optional<MlflowRequirements>> ReadMlflowRequirements(
    const std::filesystem::path& version_dir);

}  // namespace mm
