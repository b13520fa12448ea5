// The identity backend (backend "mmserve_test_identity", platform
// "mmserve_test_copy"): a test-only backend that copies each input to an
// output. It lives wholly in the test tree and reaches the server only by the
// mmserve_backend line in its CMakeLists.txt: the proof that a backend is its
// folder and one registration line (registry.h).
//
// Its model needs no file, but needs a config.pbtxt that names the backend
// (or its platform) and lists the inputs. Outputs:
//  - none listed: one per input, named <input>_OUT, of the input's type and
//    dims;
//  - listed: exactly one per input, paired in order, each of its input's
//    type and dims.
// Execute answers each output with its input's bytes (no copy: the output
// points into the request's buffer, kept alive by Tensor::owner).
// List mode (config parameters { key: "batch_as_list" value { string_value:
// "true" } }): the model sets LoadedModel::batch_as_list, so a dynamic batch
// reaches ExecuteList as its requests, unmerged; each request is answered
// alone, with one more output, LIST_INFO (TYPE_STRING, dims [1], listed
// last), whose element per row is JSON saying what the request saw:
// {"list": size of the list it came in (1 through Execute), "index": its
// place, "id": its id, "parameters": {its parameters}}. A request whose
// parameter "fail" is true fails alone, INVALID_ARGUMENT "identity: request
// '<id>' asked to fail".
// Offered only with --enable-test-backends.
#pragma once

#include "backends/backend.h"

namespace mm {

class BackendRegistry;

// Completes an identity model's config (the rules above), or says what is
// wrong with it. Pure; also the backend's auto-complete hook.
StatusOr<inference::ModelConfig> CompleteIdentityConfig(const LoadSpec& spec);

// Registers the identity backend as a test backend.
Status RegisterIdentityBackend(BackendRegistry& registry);

}  // namespace mm
