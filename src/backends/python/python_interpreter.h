// The embedded CPython interpreter of a worker process: started once, on the
// first Python model load, with the GIL released between uses.
//
// StartPythonInterpreter initialises CPython 3.11 (Debian's libpython, through
// pybind11's embedding) and registers the built-in module `_mmserve_native`
// (the log sink of pb_utils.Logger; BLS calls and custom metrics,
// python_host.h), then releases the GIL.
// InstallPbUtils installs `triton_python_backend_utils` from the sources
// compiled into this binary (pb_utils.py, then pb_utils_host.py in the same
// namespace); a load calls it once the model's environment is on sys.path,
// so that the numpy pb_utils imports is the environment's, as the model's
// packages expect. The interpreter is never finalised: it lives until the
// process exits (a worker holds one model; a unit test process starts it
// once).
//
// Thread-safety: StartPythonInterpreter may be called from any thread, any
// number of times; only the first starts the interpreter. Every other use of
// Python takes the GIL (pybind11::gil_scoped_acquire) for as long as Python
// runs and no longer.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace mm {

// Starts the interpreter (the first call) or returns the first call's result.
Status StartPythonInterpreter();

// Installs triton_python_backend_utils (once; later calls find it). The GIL
// must be held. INTERNAL naming the Python error (numpy missing, say).
Status InstallPbUtils();

// The model name pb_utils.Logger lines carry; set by a load, before model.py
// is imported. A worker holds one model.
void SetPythonLogModel(std::string_view model_name);

// The Python version embedded ("3.11").
std::string_view EmbeddedPythonVersion();

// The interpreter program of the embedded Python (/usr/bin/python3.11):
// environments made for the worker are made with it.
std::string_view EmbeddedPythonExecutable();

}  // namespace mm
