#include "grpc/grpc_call.h"

namespace mm::grpc_internal {

InferCallback Observe(const RequestObserver* observer, Pending* pending,
                      const grpc::ServerContext& ctx, const Tenant& tenant,
                      const InferRequest& request, int64_t received_ns, InferCallback done) {
  std::string_view traceparent;
  if (observer->tracing()) {
    const auto& md = ctx.client_metadata();
    if (auto it = md.find("traceparent"); it != md.end()) {
      traceparent = {it->second.data(), it->second.size()};
    }
  }
  const RequestObserver::Trace trace = observer->Begin(traceparent);
  if (!observer->Wants(trace)) return done;
  auto seen =
      std::make_shared<ObservedRequest>(*observer, "grpc", trace, tenant.id, request, received_ns);
  pending->Add();
  return [seen, pending, done = std::move(done)](StatusOr<std::unique_ptr<InferResponse>> r) {
    seen->Answered(r);
    done(std::move(r));
    seen->Encoded();
    pending->Done();
  };
}

}  // namespace mm::grpc_internal
