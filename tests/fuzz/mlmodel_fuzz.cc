// libFuzzer target for the MLflow model format (repository/mlflow/mlmodel.h):
// ParseMLmodel on the bytes of an MLmodel a tenant's repository chose (YAML
// through yaml-cpp, the signature's JSON through simdjson), then MLmodelConfig
// on what parses. Beyond "no crash, leak, UB or stack overflow": a refusal is
// INVALID_ARGUMENT with a message; what parses holds only servable fields; a
// derived config matches the flavor and the signature.
// The same bytes are also read as the model's python_env.yaml and
// requirements.txt (--mlflow-create-env): what passes holds only plain
// package requirements, none an option, URL or path.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "repository/mlflow/mlmodel.h"
#include "repository/remote_fetch.h"

namespace {

void Check(bool cond, const char* what) {
  if (!cond) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

void CheckFields(const std::vector<mm::MLmodelSignatureField>& fields) {
  Check(fields.size() <= 1024, "at most 1024 fields");
  for (const mm::MLmodelSignatureField& field : fields) {
    Check(field.type != inference::TYPE_INVALID, "a field has a type");
    Check(!field.dims.empty() && field.dims.size() <= 16, "a field has 1 to 16 dims");
    for (int64_t d : field.dims) Check(d >= -1, "a dim is -1 or a size");
  }
}

// Every requirement that passed is one CheckRequirement accepts: it starts
// with a name and holds no option, URL, path or variable.
void CheckRequirements(const std::vector<std::string>& packages) {
  Check(packages.size() <= mm::kMaxMlflowRequirements, "at most the cap of requirements");
  for (const std::string& p : packages) {
    Check(mm::CheckRequirement(p).ok(), "a passed requirement passes its check");
    Check(!p.empty() && p[0] != '-', "a requirement is not an option");
    Check(p.find_first_of("@/\\:$\n") == std::string::npos, "no URL, path or variable");
  }
}

void FuzzRequirements(std::string_view text) {
  auto listed = mm::ParseRequirementsText(text, "requirements.txt");
  if (listed.ok()) {
    CheckRequirements(*listed);
  } else {
    Check(listed.status().code() == mm::StatusCode::kInvalidArgument,
          "a refused requirements.txt is INVALID_ARGUMENT");
  }
  // The same bytes as python_env.yaml, its requirements.txt being them too.
  auto env = mm::ParseMlflowPythonEnv(
      text, [&]() -> mm::StatusOr<std::string> { return std::string(text); });
  if (env.ok()) {
    CheckRequirements(env->packages);
  } else {
    Check(env.status().code() == mm::StatusCode::kInvalidArgument,
          "a refused python_env.yaml is INVALID_ARGUMENT");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 256 << 10) return 0;  // real MLmodels are about 1 KiB; keep runs fast
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  FuzzRequirements(text);

  auto model = mm::ParseMLmodel(text);
  if (!model.ok()) {
    Check(model.status().code() == mm::StatusCode::kInvalidArgument,
          "a refused MLmodel is INVALID_ARGUMENT");
    Check(!model.status().message().empty(), "a refused MLmodel has a message");
    return 0;
  }
  Check(!model->onnx || mm::SafeRelativePath(model->onnx_file),
        "the onnx file is a path inside the model folder");
  Check(model->has_signature || model->inputs.empty(), "inputs only with a signature");
  CheckFields(model->inputs);
  CheckFields(model->outputs);
  for (const auto& field : model->inputs) {
    Check(!model->columns || field.dims == std::vector<int64_t>{-1}, "a column is [-1]");
  }

  auto config = mm::MLmodelConfig(*model, "m");
  if (!config.ok()) {
    Check(config.status().code() == mm::StatusCode::kInvalidArgument,
          "a refused config is INVALID_ARGUMENT");
    Check(!config.status().message().empty(), "a refused config has a message");
    return 0;
  }
  Check(config->name() == "m", "the config is named");
  if (model->onnx) {
    Check(config->backend() == "onnxruntime", "onnx goes to ONNX Runtime");
    Check(config->default_model_filename() == model->onnx_file, "onnx names its file");
  } else {
    Check(model->pyfunc && config->backend() == "python", "pyfunc goes to Python");
    Check(config->max_batch_size() == 0, "pyfunc does not batch");
    Check(static_cast<size_t>(config->input_size()) == model->inputs.size() &&
              static_cast<size_t>(config->output_size()) == model->outputs.size(),
          "one config tensor per signature field");
  }
  return 0;
}
