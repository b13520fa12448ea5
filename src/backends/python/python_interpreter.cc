#include "python_interpreter.h"

#include <pybind11/embed.h>
#include <spdlog/spdlog.h>

#include <mutex>

#include "core/thread_annotations.h"
#include "python_host.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MMSERVE_ASAN 1
#endif
#endif
#if !defined(MMSERVE_ASAN) && defined(__SANITIZE_ADDRESS__)
#define MMSERVE_ASAN 1
#endif
#ifndef MMSERVE_ASAN
#define MMSERVE_ASAN 0
#endif

namespace py = pybind11;

namespace mm {

extern const std::string_view kPbUtilsSource;      // pb_utils_source.cc (generated)
extern const std::string_view kPbUtilsHostSource;  // (pb_utils_host.py)

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
  RegisterPythonHostBindings(m);  // BLS calls and custom metrics (python_host.h)
  return m.release().ptr();
}

Status Start() {
  if (PyImport_AppendInittab("_mmserve_native", &InitNativeModule) != 0) {
    return Internal("cannot register the module _mmserve_native with the embedded Python");
  }
#if MMSERVE_ASAN
  // Under AddressSanitizer, Python objects come from malloc, not from
  // pymalloc's mmap'd arenas: LeakSanitizer does not scan those arenas, so
  // everything only they point to (the interpreter's and numpy's state, all
  // alive) would be reported as leaked at exit, and ASan checks each object.
  PyPreConfig preconfig;
  PyPreConfig_InitPythonConfig(&preconfig);
  preconfig.allocator = PYMEM_ALLOCATOR_MALLOC;
  if (PyStatus pre = Py_PreInitialize(&preconfig); PyStatus_Exception(pre)) {
    return Internal(std::string("cannot pre-initialise the embedded Python: ") +
                    (pre.err_msg != nullptr ? pre.err_msg : "unknown error"));
  }
#endif
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
  // From now on the GIL is taken only while Python runs.
  PyEval_SaveThread();
  return OkStatus();
}

}  // namespace

Status StartPythonInterpreter() {
  static const Status* started = new Status(Start());  // once; never destroyed
  return *started;
}

void SetPythonLogModel(std::string_view model_name) {
  MutexLock lock(log_model_mu);
  LogModel().assign(model_name);
}

Status InstallPbUtils() {
  constexpr const char* kName = "triton_python_backend_utils";
  py::dict modules = py::module_::import("sys").attr("modules");
  if (modules.contains(kName)) return OkStatus();
  try {
    py::module_ builtins = py::module_::import("builtins");
    py::object module = py::module_::import("types").attr("ModuleType")(kName);
    module.attr("__file__") = "<mmserve built-in>/triton_python_backend_utils.py";
    // Registered before it runs, as an import would: its own imports see it.
    modules[kName] = module;
    // Each part runs in the module's namespace; tracebacks through it show
    // its source lines, as for a file.
    for (const auto& [source, file] :
         {std::pair{kPbUtilsSource, "<mmserve built-in>/triton_python_backend_utils.py"},
          std::pair{kPbUtilsHostSource,
                    "<mmserve built-in>/triton_python_backend_utils_host.py"}}) {
      py::str text(source.data(), source.size());
      py::object code = builtins.attr("compile")(text, file, "exec");
      py::module_::import("linecache").attr("cache")[py::str(file)] =
          py::make_tuple(source.size(), py::none(), text.attr("splitlines")(true), file);
      builtins.attr("exec")(code, module.attr("__dict__"));
    }
    return OkStatus();
  } catch (const py::error_already_set& e) {
    if (modules.contains(kName)) PyDict_DelItemString(modules.ptr(), kName);
    return Internal(std::string("cannot install triton_python_backend_utils in the embedded "
                                "Python (is numpy installed for it?): ") +
                    e.what());
  }
}

std::string_view EmbeddedPythonVersion() { return MMSERVE_PYTHON_VERSION; }

std::string_view EmbeddedPythonExecutable() { return MMSERVE_PYTHON_EXECUTABLE; }

}  // namespace mm
