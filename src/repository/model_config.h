// Model configuration: reading config.pbtxt, checking it, choosing versions
// and writing it as Triton's JSON.
//
// All functions are pure (no I/O, no global state) and safe to call
// concurrently.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/message.h>

#include "core/status.h"
#include "model_config.pb.h"

namespace mm {

// Parses config.pbtxt text. `model_name` names the model in messages
// ("config.pbtxt of model 'm' line 3 column 5: ..."; lines and columns count
// from 1). Fields mmserve does not know (other Triton fields) are skipped and
// each adds an entry to `*warnings` naming it ("... unknown field 'foo'
// ignored"); `warnings` may be null. A syntax error, a wrong value type or an
// unknown enum value is INVALID_ARGUMENT. The result is not validated and its
// name is not filled in: see ValidateModelConfig.
StatusOr<inference::ModelConfig> ParseModelConfig(std::string_view text,
                                                  std::string_view model_name,
                                                  std::vector<std::string>* warnings);

// Structural checks that need nothing but the config: the name is usable as a
// model name, tensors are named uniquely with a data type and sane dims,
// counts and batch sizes are in range. INVALID_ARGUMENT names the offending
// field and says what was expected. Checks against the model file itself are
// the backend's job.
Status ValidateModelConfig(const inference::ModelConfig& config);

// The versions to serve: `available` (on disk, any order) filtered by
// `policy`, ascending. Unset policy: latest 1. latest N: the N highest.
// all: every version. specific: the listed versions that are available.
std::vector<int64_t> SelectVersions(const inference::ModelVersionPolicy& policy,
                                    std::vector<int64_t> available);

// `message` as JSON the way Triton's HTTP model-config endpoint writes it:
// proto field names, enums by name, 64-bit integers as JSON numbers, every
// non-oneof scalar and repeated field printed even when default, sub-messages
// only when set, map entries sorted by key. Floats print shortest round-trip;
// NaN and infinities as the strings "NaN", "Infinity", "-Infinity"; bytes
// as base64.
std::string ModelConfigToJson(const google::protobuf::Message& message);

}  // namespace mm
