// The entry of a worker program: what `mmserve --worker MODEL` runs, and
// `mmserve-python-worker --worker MODEL` (src/python_worker_main.cc), a
// program of its own for Python models (process_backend.h, worker_commands,
// says why). Both are started by the server with their control socket as
// descriptor WorkerProcess::kWorkerSocketFd and serve it through RunWorker
// (worker_main.h).
#pragma once

#include "backends/registry.h"
#include "core/status.h"

namespace mm {

// Sets the process up as the server's workers expect (the log format the
// server's MMSERVE_LOG_FORMAT says, SIGINT ignored, SIGPIPE ignored),
// registers its backends with `register_backends`, configures them from
// MMSERVE_BACKEND_CONFIG (backend_flags.h), enables the test backends when
// asked, and serves until the server is done. argv: program, "--worker",
// the model's name. Returns the process's exit status.
int WorkerProgramMain(int argc, char** argv, Status (*register_backends)(BackendRegistry&),
                      bool enable_test_backends);

}  // namespace mm
