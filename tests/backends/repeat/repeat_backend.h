// The repeat backend (backend "mmserve_test_repeat"): a test-only decoupled
// backend modelled on Triton's repeat_int32 example. Its model's config must
// say model_transaction_policy { decoupled: true }; inputs and outputs are
// filled in when the config lists none:
//   IN      INT32 [-1]  the values to repeat, one response each
//   FAIL_AT INT32 [1]   optional: response number FAIL_AT is an error
//                       response (the request goes on)
//   HOLD    INT32 [1]   optional: nonzero holds the request after its
//                       responses until its client goes away, then
//                       completes it CANCELLED (the instance's thread
//                       answers nothing else meanwhile)
//   OUT     INT32 [1]   IN[i]
//   IDX     UINT32 [1]  i
// A request with n values gets n responses, then the final flag alone (so
// n = 0 sends only the flag). Responses are sent from the instance's own
// thread, after ExecuteDecoupled returned; a cancelled request stops early
// and completes CANCELLED. Offered only with --enable-test-backends.
#pragma once

#include "backends/backend.h"

namespace mm {

class BackendRegistry;

// Completes a repeat model's config (the rules above), or says what is wrong.
StatusOr<inference::ModelConfig> CompleteRepeatConfig(const LoadSpec& spec);

// The instance on its own (for unit tests): answers on its own thread.
std::unique_ptr<ModelInstance> MakeRepeatInstance();

// Registers the repeat backend as a test backend.
Status RegisterRepeatBackend(BackendRegistry& registry);

}  // namespace mm
