#include "python_interpreter.h"

#include <pybind11/embed.h>
#include <spdlog/spdlog.h>

#include <mutex>

#include "core/thread_annotations.h"

namespace py = pybind11;

namespace mm {

extern const std::string_view kPbUtilsSource;  // pb_utils_source.cc (generated)

namespace {

Mutex log_model_mu;
std::string& LogModel() MM_REQUIRES(log_model_mu) {
  static std::string* name = new std::string;  // never destroyed: used at exit
  return *name;
}

// pb_utils.Logger's sink. Levels are pb_utils.LogLevel's: INFO 0, WARNING 1,
// ERROR 2, VERBOSE 3 (spdlog's debug: shown with the server's verbose log).
void Log(int level, const std::string& message, const std::string& file, int line) {
  std::string model;
  {
    MutexLock lock(log_model_mu);
    model = LogModel();
  }
  const std::string_view base = std::string_view(file).substr(file.rfind('/') + 1);
  spdlog::level::level_enum l = spdlog::level::info;
  switch (level) {
    case 1:
      l = spdlog::level::warn;
      break;
    case 2:
      l = spdlog::level::err;
      break;
    case 3:
      l = spdlog::level::debug;
      break;
    default:
      break;
  }
  // The GIL stays held: spdlog's sinks do not call back into Python.
  spdlog::log(l, "model '{}' {}:{}: {}", model, base, line, message);
}

PyObject* InitNativeModule() {
  static PyModuleDef def{};
  auto m = py::module_::create_extension_module(
      "_mmserve_native", "mmserve's Python backend: the native side of pb_utils", &def);
  m.def("log", &Log, py::arg("level"), py::arg("message"), py::arg("file"), py::arg("line"));
  return m.release().ptr();
}

Status Start(const std::vector<std::filesystem::path>& site_packages) {
  if (PyImport_AppendInittab("_mmserve_native", &InitNativeModule) != 0) {
    return Internal("cannot register the module _mmserve_native with the embedded Python");
  }
  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  config.install_signal_handlers = 0;  // the worker's signals stay the worker's
  config.parse_argv = 0;
  config.buffered_stdio = 0;  // print() in a model reaches the log as it happens
  PyStatus status = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(status)) {
    return Internal(std::string("cannot start the embedded Python ") +
                    std::string(EmbeddedPythonVersion()) + ": " +
                    (status.err_msg != nullptr ? status.err_msg : "unknown error"));
  }
  Status result = OkStatus();
  try {
    py::module_ types = py::module_::import("types");
    py::module_ sys = py::module_::import("sys");
    // The environment's packages come first, before anything imports numpy
    // (pb_utils does): a model's packages were built against its numpy, not
    // the system's. addsitedir applies their .pth files.
    // What addsitedir adds (the folders and their .pth entries) moves in
    // front of the interpreter's own path.
    py::list path = sys.attr("path");
    if (!site_packages.empty()) {
      py::list before = py::module_::import("builtins").attr("list")(path);
      py::object addsitedir = py::module_::import("site").attr("addsitedir");
      for (const auto& dir : site_packages) addsitedir(dir.string());
      py::list added;
      for (const auto& entry : path) {
        if (!before.contains(entry)) added.append(entry);
      }
      for (const auto& dir : site_packages) {
        if (!added.contains(py::str(dir.string()))) added.append(py::str(dir.string()));
      }
      py::list rest;
      for (const auto& entry : before) {
        if (!added.contains(entry)) rest.append(entry);
      }
      path.attr("clear")();
      for (const auto& entry : added) path.append(entry);
      for (const auto& entry : rest) path.append(entry);
    }
    py::object module = types.attr("ModuleType")("triton_python_backend_utils");
    module.attr("__file__") = "<mmserve built-in>/triton_python_backend_utils.py";
    py::object code = py::module_::import("builtins")
                          .attr("compile")(py::str(kPbUtilsSource.data(), kPbUtilsSource.size()),
                                           module.attr("__file__"), "exec");
    // Registered before it runs, as an import would: its own imports see it.
    sys.attr("modules")["triton_python_backend_utils"] = module;
    py::module_::import("builtins").attr("exec")(code, module.attr("__dict__"));
  } catch (const py::error_already_set& e) {
    result = Internal(std::string("cannot install triton_python_backend_utils in the embedded "
                                  "Python (is numpy installed for it?): ") +
                      e.what());
  }
  // From now on the GIL is taken only while Python runs.
  PyEval_SaveThread();
  return result;
}

}  // namespace

Status StartPythonInterpreter(const std::vector<std::filesystem::path>& site_packages) {
  static const Status* started = new Status(Start(site_packages));  // once; never destroyed
  return *started;
}

void SetPythonLogModel(std::string_view model_name) {
  MutexLock lock(log_model_mu);
  LogModel().assign(model_name);
}

std::string_view EmbeddedPythonVersion() { return MMSERVE_PYTHON_VERSION; }

}  // namespace mm
