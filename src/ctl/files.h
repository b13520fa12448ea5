// Reading a whole file named on the command line (.npy inputs, @file.json
// inputs, --config @file).
#pragma once

#include <string>

#include "core/status.h"

namespace mm {

// The bytes of the file at `path`. NOT_FOUND / PERMISSION_DENIED / INTERNAL
// naming the path and what the OS said.
StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace mm
