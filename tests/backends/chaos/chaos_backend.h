// The chaos backend (backend and platform "mmserve_chaos"): a test-only model
// that misbehaves on command, so that process isolation's failure paths are
// tested for real. It lives in the test tree and is built into the server only
// with MMSERVE_TEST_BACKENDS (its CMakeLists.txt's mmserve_backend line); the
// server offers it only with --enable-test-backends, and it is meant for
// PROCESS isolation: in the server process its commands would take the server
// down, which is their point.
//
// Its model needs no file (an empty version folder will do) and has a fixed
// signature, filled in whatever the config says:
//   input  COMMAND INT64 [2]   [op, arg]
//   input  INPUT   FP32  [-1]  echoed
//   output OUTPUT  FP32  [-1]  = INPUT (after the command)
// Ops: 0 echo; 1 crash (SIGSEGV); 2 allocate and touch `arg` MiB and keep it
// (a leak); 3 hang for `arg` ms (0: for ever); 4 abort (SIGABRT); 5 fail the
// request with INTERNAL "chaos: asked to fail".
// Config parameters: `crash_on_load` "1" crashes during Load;
// `load_delay_ms` sleeps that long in Load; `load_hang_while_file` PATH waits
// in Load for as long as PATH exists (a load that hangs, then recovers).
#pragma once

#include <memory>

#include "backends/backend.h"

namespace mm {

class BackendRegistry;

class ChaosBackend final : public Backend {
 public:
  static constexpr const char* kPlatform = "mmserve_chaos";
  StatusOr<std::unique_ptr<LoadedModel>> Load(const LoadSpec& spec) override;
};

// Registers it as a test backend (hidden until EnableTestBackends).
Status RegisterChaosBackend(BackendRegistry& registry);

}  // namespace mm
