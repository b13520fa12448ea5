// The embedded CPython interpreter of a worker process: started once, on the
// first Python model load, with the GIL released between uses.
//
// StartPythonInterpreter initialises CPython 3.11 (Debian's libpython, through
// pybind11's embedding), registers the built-in module `_mmserve_native` (the
// log sink of pb_utils.Logger) and installs `triton_python_backend_utils`
// from the source compiled into this binary (pb_utils.py), then releases the
// GIL. The interpreter is never finalised: it lives until the process exits
// (a worker holds one model; a unit test process starts it once).
//
// Thread-safety: StartPythonInterpreter may be called from any thread, any
// number of times; only the first starts the interpreter. Every other use of
// Python takes the GIL (pybind11::gil_scoped_acquire) for as long as Python
// runs and no longer.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace mm {

// Starts the interpreter (the first call) or returns the first call's result.
// `site_packages` (the model's Python environment, python_env.h) go first on
// sys.path before anything is imported; only the first call's count (a worker
// holds one model).
Status StartPythonInterpreter(const std::vector<std::filesystem::path>& site_packages);

// The model name pb_utils.Logger lines carry; set by a load, before model.py
// is imported. A worker holds one model.
void SetPythonLogModel(std::string_view model_name);

// The Python version embedded ("3.11").
std::string_view EmbeddedPythonVersion();

}  // namespace mm
