#include "rpc/observe.h"

#include <memory>
#include <utility>

namespace mm::rpc {

InferCallback Observe(const RequestObserver& observer, InFlightCalls* in_flight,
                      std::string_view traceparent, const Tenant& tenant,
                      const InferRequest& request, int64_t received_ns, InferCallback done) {
  const RequestObserver::Trace trace = observer.Begin(traceparent);
  if (!observer.Wants(trace)) return done;
  auto seen =
      std::make_shared<ObservedRequest>(observer, "grpc", trace, tenant.id, request, received_ns);
  in_flight->Add();
  return [seen, in_flight, done = std::move(done)](StatusOr<std::unique_ptr<InferResponse>> r) {
    seen->Answered(r);
    done(std::move(r));
    seen->Encoded();
    in_flight->Done();
  };
}

}  // namespace mm::rpc
