// The process's one ONNX Runtime environment, shared by every session of the
// ONNX Runtime backend, and the one-time warm-up of the runtime.
#pragma once

#include <onnxruntime_cxx_api.h>

#include "core/status.h"

namespace mm {

// The Ort::Env of the process, created on first use (telemetry off) and never
// destroyed: sessions (and output values that outlive a model) may be
// released during static destruction, after an Env with static storage would
// already be gone. INTERNAL when it cannot be created; a later call tries
// again. Thread-safe.
StatusOr<Ort::Env*> SharedOrtEnv();

// ONNX Runtime builds its kernel registries and other process-wide state at
// the first session creation (~1.4 MiB). Paying that here, once per process,
// keeps it out of the first real model's load time and measured footprint.
// Best effort; thread-safe.
void WarmUpOrtRuntime(Ort::Env& env);

}  // namespace mm
