// Paths of the server's HTTP API, built from user-given names: a model name
// may hold any character ("team/a b"), so every segment taken from the user is
// percent-encoded (RFC 3986: the unreserved characters stay, every other byte
// becomes %XX with upper-case hex). The server decodes each segment back
// (http/router.cc); a name holding '/' or NUL is encoded all the same, and the
// server answers it with its own error.
#pragma once

#include <string>
#include <string_view>

namespace mm {

// `segment` with every byte outside [A-Za-z0-9-._~] written as %XX.
std::string PercentEncodeSegment(std::string_view segment);

// "/v2/models/<model>[/versions/<version>]" followed by "/<action>" when
// `action` is not empty; `version` empty: the server's choice.
std::string ModelPath(std::string_view model, std::string_view version, std::string_view action);

// "/v2/repository/models/<model>/<action>" (action: "load" or "unload").
std::string RepositoryModelPath(std::string_view model, std::string_view action);

}  // namespace mm
