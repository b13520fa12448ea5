// The backends built into this binary: every mmserve_backend() line in the
// build (src/backends/*/, and tests/backends/*/ with MMSERVE_TEST_BACKENDS),
// registered by one generated function (see registry.h).
#pragma once

#include "backends/registry.h"
#include "core/status.h"

namespace mm {

// Registers each built-in backend's names and factory; creates none of them.
// The server and its worker processes both call it, so both know the same
// names. Fails only when two backends claim one name (a build error).
Status RegisterBuiltinBackends(BackendRegistry& registry);

}  // namespace mm
