// mmserve-python-worker: the worker program of Python models, started by the
// server as `mmserve-python-worker --worker MODEL` (isolation/worker_program.h).
// It is mmserve's worker with only the Python backend, linked against
// CPython's static library (ProcessBackend::Options::worker_commands says why).
#include <cstdio>
#include <string_view>

#include "backends/python/python_backend.h"
#include "isolation/worker_program.h"

int main(int argc, char** argv) {
  if (argc != 3 || std::string_view(argv[1]) != "--worker") {
    std::fprintf(stderr,
                 "usage: mmserve-python-worker --worker MODEL\n"
                 "The worker process of a Python model, started by mmserve; not run by hand.\n");
    return 2;
  }
  return mm::WorkerProgramMain(argc, argv, &mm::RegisterPythonBackend, false);
}
