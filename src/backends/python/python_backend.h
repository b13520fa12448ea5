// The Python backend: Triton's Python backend for mmserve. A model is a
// `<model>/<version>/model.py` (or the config's default_model_filename)
// defining `class TritonPythonModel`, with config `backend: "python"`; it is
// run unchanged by CPython 3.11 embedded in the model's worker processes.
//
// Choices (issue 19):
//  - The interpreter is Debian's libpython3.11 embedded through pybind11
//    (python_interpreter.h), started at the first Load, which happens only
//    in a worker process (`mmserve --worker`; the backend is process_only).
//    Creating the backend is cheap and starts nothing: the server creates
//    every backend at start (BackendRegistry::CreateAll).
//  - `triton_python_backend_utils` (pb_utils) is Python source compiled into
//    the binary (pb_utils.py) plus a small built-in C++ module for what needs
//    the server (the log): nothing to install, no path to get wrong.
//  - Inputs reach as_numpy() as numpy views of the request's tensor bytes (in
//    a worker, the shared-memory region) with no copy; a view is valid while
//    `execute` runs (a model that keeps one must copy it). BYTES tensors are
//    numpy object arrays of bytes, both ways.
//  - With dynamic batching a batch reaches `execute` as the list of its
//    requests (LoadedModel::batch_as_list).
//
// Settings (BackendSettings, Triton's --backend-config=python,<key>=<value>):
//   env            the default virtual environment (--python-env PATH)
//   env-cache-dir  where EXECUTION_ENV_PATH archives are unpacked and
//                  environments made (default $HOME/.cache/mmserve/python-envs)
//   mlflow-create-env  true: an MLflow pyfunc model with python_env.yaml or
//                  requirements.txt runs in an environment made from them
//                  (--mlflow-create-env; requirements_env.h), made in the
//                  server by Prepare, before the worker starts
//   uv             the uv program that makes them (default: --python-env's
//                  bin/uv, else uv on PATH)
//
// Errors: an exception in model.py's import, auto_complete_config or
// initialize fails the load; one in execute, a wrong response count, a
// response's TritonError, an output contradicting the config or a missing
// requested output fails that request. Each message names the model and, for
// an exception, its type, message and last frames; the log has the whole
// traceback.
//
// Thread-safety: Load may run concurrently (the GIL serialises Python);
// instances follow backend.h.
#pragma once

#include <filesystem>
#include <memory>
#include <string_view>

#include "backends/backend.h"
#include "backends/registry.h"

namespace mm {

class PythonBackend final : public Backend {
 public:
  static constexpr std::string_view kName = "python";
  static constexpr std::string_view kDefaultModelFile = "model.py";

  struct Options {
    std::filesystem::path default_env;  // setting `env`; empty: none
    std::filesystem::path cache_dir;    // setting `env-cache-dir`
    bool mlflow_create_env = false;     // setting `mlflow-create-env`
    std::filesystem::path uv;           // setting `uv`, else found (when mlflow_create_env)
  };

  // Reads `settings` (keys above); INVALID_ARGUMENT naming a key it does not
  // know and the keys it knows. Starts nothing.
  static StatusOr<std::unique_ptr<Backend>> Create(const BackendSettings& settings);

  explicit PythonBackend(Options options) : options_(std::move(options)) {}

  StatusOr<std::unique_ptr<LoadedModel>> Load(const LoadSpec& spec) override;
  Status Prepare(const LoadSpec& spec, const std::function<void(std::string)>& progress) override;

 private:
  const Options options_;
};

Status RegisterPythonBackend(BackendRegistry& registry);

}  // namespace mm
