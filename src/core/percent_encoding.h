// Percent-encoding (RFC 3986's %XX, upper-case hex) with a caller-chosen set
// of bytes left as they are: URL path segments keep the unreserved
// characters, gRPC's grpc-message keeps printable ASCII but '%'.
#pragma once

#include <string>
#include <string_view>

namespace mm {

// `text` with every byte for which `keep` is false written as %XX.
std::string PercentEncode(std::string_view text, bool (*keep)(unsigned char byte));

}  // namespace mm
