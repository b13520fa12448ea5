// A Python model in the interpreter (python_backend.h tells the whole story):
// its model.py imported, its config auto-completed, one TritonPythonModel
// object per instance, and the instances that run `execute`.
#pragma once

#include <filesystem>
#include <memory>
#include <vector>

#include "backends/backend.h"

namespace mm {

// Loads the model in `model_file` (the interpreter is started; an empty
// `model_file` is mmserve's built-in model.py for MLflow pyfunc models,
// mlflow_pyfunc.py): puts
// `site_packages` first on sys.path and the version folder on it too, imports
// the file, runs auto_complete_config and each instance's initialize.
// INVALID_ARGUMENT naming the model, the step and the exception (type,
// message, last frames) when any of them fails; the log has the traceback.
StatusOr<std::unique_ptr<LoadedModel>> LoadPythonModel(
    const LoadSpec& spec, const std::filesystem::path& model_file,
    const std::vector<std::filesystem::path>& site_packages);

}  // namespace mm
