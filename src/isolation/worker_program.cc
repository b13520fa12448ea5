#include "isolation/worker_program.h"

#include <signal.h>

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <string>
#include <string_view>

#include "backends/backend_flags.h"
#include "isolation/worker_main.h"
#include "isolation/worker_process.h"
#include "observability/logging.h"

namespace mm {

int WorkerProgramMain(int argc, char** argv, Status (*register_backends)(BackendRegistry&),
                      bool enable_test_backends) {
  // The server's --log-format reaches its workers through the environment.
  const char* format = std::getenv("MMSERVE_LOG_FORMAT");
  ConfigureLogging(
      format != nullptr && std::string_view(format) == "json" ? LogFormat::kJson : LogFormat::kText,
      std::string("worker ") + (argc > 2 ? argv[2] : "?"));
  // Ctrl-C reaches the whole process group: the server decides when its
  // workers end (they die with it, or when it closes their socket).
  signal(SIGINT, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  auto fail = [](const Status& status) {
    spdlog::critical("{}", status.message());
    return 1;
  };
  BackendRegistry backends;
  if (Status s = register_backends(backends); !s.ok()) return fail(s);
  // The server's --backend-config and --python-env, as it handed them over.
  if (Status s = ConfigureBackendsFromEnvironment(backends); !s.ok()) return fail(s);
  if (enable_test_backends) (void)backends.EnableTestBackends();
  return RunWorker(WorkerProcess::kWorkerSocketFd, backends);
}

}  // namespace mm
