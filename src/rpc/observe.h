// Observe: tracing and the access log around one gRPC inference call, for
// every gRPC transport (grpc++ in src/grpc, the native one in src/http).
#pragma once

#include <cstdint>
#include <string_view>

#include "core/infer_request.h"
#include "observability/request_observer.h"
#include "rpc/in_flight.h"
#include "tenancy/tenants.h"

namespace mm::rpc {

// `done` wrapped so that its request is traced and logged (RequestObserver):
// the record is made before `done` encodes and sends the answer, and handed
// over after. It counts in `in_flight` until then, so that the server does
// not stop (and the observer go) in between. A request that is neither
// traced nor logged keeps `done` as it is.
//
// `traceparent`: the call's traceparent metadata (empty: none). Looking it up
// costs, so a caller passes it only when observer.tracing() (empty otherwise:
// Begin ignores it then anyway). The record's protocol is "grpc".
// `observer` and `in_flight` outlive the returned callback; `tenant` and
// `request` are read during the call only.
InferCallback Observe(const RequestObserver& observer, InFlightCalls* in_flight,
                      std::string_view traceparent, const Tenant& tenant,
                      const InferRequest& request, int64_t received_ns, InferCallback done);

}  // namespace mm::rpc
