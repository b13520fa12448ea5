// Shared by the worker protocol's two halves (worker_protocol_encode.cc and
// worker_protocol_decode.cc); not part of the protocol's door.
#pragma once

#include <string>
#include <string_view>

namespace mm::worker_protocol_internal {

// Bytes as they may appear inside an error message: printable ASCII kept,
// anything else (newlines a peer could inject into a log, say) as '?'.
std::string Printable(std::string_view s);

}  // namespace mm::worker_protocol_internal
