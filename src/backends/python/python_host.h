// The native side of pb_utils' BLS calls and custom metrics: functions of the
// built-in module `_mmserve_native` over the ModelHost (backends/model_host.h)
// the model's LoadSpec carried.
//
// A worker process holds one model, so the host is the process's: a load sets
// it (SetPythonModelHost) before model.py is imported, and pb_utils reaches
// it from any Python thread. Null (no host): every call raises RuntimeError
// saying this server hosts no such calls; pb_utils turns it into a
// TritonModelException.
//
// The bindings (RegisterPythonHostBindings, called while `_mmserve_native` is
// built):
//   host_available() -> bool
//   bls_infer(model, version, request_id, inputs, outputs, parameters) -> BlsCall
//       inputs: [(name, data type number, shape, buffer object)], each buffer
//       kept alive (not copied) until the host is done with the request;
//       outputs: [name]; parameters: {str: bool|int|float|str}.
//   BlsCall.next(block) -> None (nothing yet, block=False) or
//       (final, error code or None, error message, outputs or None)
//       with outputs [(name, data type number, shape, read-only buffer)];
//       the buffers view the response's memory (no copy) and keep it alive.
//       After the final one, next raises StopIteration. block=True waits
//       with the GIL released.
//   BlsCall.set_waker(callable): called (GIL taken) on the host's thread
//       whenever a response arrives, and at once if one is waiting (asyncio).
//   is_model_ready(model, version) -> bool
//   metric_create(family, description, kind, labels, buckets) -> id
//   metric_update(id, op, value); metric_value(id) -> float; metric_release(id)
// A refusal by the host raises ValueError (INVALID_ARGUMENT), KeyError
// (NOT_FOUND) or RuntimeError (anything else), with the host's message.
#pragma once

#include <memory>

#include <pybind11/pybind11.h>

#include "backends/model_host.h"

namespace mm {

// The host pb_utils' calls go to (null: none). The GIL need not be held.
void SetPythonModelHost(std::shared_ptr<ModelHost> host);

void RegisterPythonHostBindings(pybind11::module_& m);

}  // namespace mm
