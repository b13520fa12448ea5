// Shared by the model_config_*.cc files (not a door: include
// repository/model_config.h from outside the repository room).
#pragma once

#include <string>
#include <string_view>

namespace mm::model_config_internal {

// Quotes `s` for a message, escaping bytes that would garble a log line.
std::string Quote(std::string_view s);

}  // namespace mm::model_config_internal
