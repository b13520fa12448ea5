#include "http/router.h"

#include <array>
#include <charconv>
#include <chrono>

#include "http/console_handler.h"
#include "http/infer_codec.h"
#include "http/metadata_codec.h"
#include "http/repository_codec.h"
#include "http/shm_codec.h"
#include "http/stats_codec.h"
#include "http/usage_codec.h"
#include "repository/model_config.h"

namespace mm {

namespace {

constexpr size_t kMaxPathSegments = 8;

HttpReply JsonReply(std::string body) {
  HttpReply r;
  r.body = std::move(body);
  return r;
}

HttpReply EmptyReply(int status) {
  HttpReply r;
  r.status = status;
  return r;
}

HttpReply MethodNotAllowed(std::string allow) {
  HttpReply r = ErrorReply(
      Status(StatusCode::kInvalidArgument, "method not allowed here; this path accepts " + allow));
  r.status = 405;
  r.allow = std::move(allow);
  return r;
}

int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Encodes an inference response (or its error) into an HTTP reply.
HttpReply InferReply(StatusOr<std::unique_ptr<InferResponse>> result,
                     const HttpResponseFormat& format) {
  if (!result.ok()) return ErrorReply(result.status());
  HttpReply reply;
  reply.receipt = std::move((*result)->receipt);  // settled once the reply is written
  std::unique_ptr<const InferResponse> response = std::move(*result);
  Status s = EncodeInferResponse(*response, format, reply.body, reply.tail);
  if (!s.ok()) return ErrorReply(s);  // (its receipt goes unsettled: not delivered)
  if (!reply.tail.empty()) {
    reply.binary_header = true;
    reply.tail_owner = std::move(response);
  }
  return reply;
}

}  // namespace

void Router::HandleInfer(const Tenant& tenant, const HttpRequestView& request, std::string model,
                         std::string version, ReplyCallback done) const {
  const int64_t received_ns = SteadyNowNs();
  auto decoded = DecodeInferRequest(request.body, request.inference_header_length);
  if (!decoded.ok()) return done(ErrorReply(decoded.status()));
  auto infer = std::make_unique<InferRequest>(std::move(decoded->request));
  infer->model_name = std::move(model);
  infer->model_version = std::move(version);
  infer->cancellation = request.cancellation;
  infer->received_ns = received_ns;
  RequestObserver::Trace trace;
  if (observer_ != nullptr) trace = observer_->Begin(request.traceparent);
  if (observer_ == nullptr || !observer_->Wants(trace)) {
    if (InferSlot* slot = request.infer_slot; slot != nullptr) {
      // The transport's slot holds the format and `done`: the callback is
      // one pointer (in place in std::function), the bill goes in its room.
      slot->format = std::move(decoded->format);
      slot->done = std::move(done);
      return service_->Infer(
          tenant, std::move(infer),
          [slot](StatusOr<std::unique_ptr<InferResponse>> result) {
            HttpReply reply = InferReply(std::move(result), slot->format);
            ReplyCallback reply_to = std::move(slot->done);  // the slot is free from here
            reply_to(std::move(reply));
          },
          &slot->room);
    }
    return service_->Infer(tenant, std::move(infer),
                           [format = std::move(decoded->format), done = std::move(done)](
                               StatusOr<std::unique_ptr<InferResponse>> result) {
                             done(InferReply(std::move(result), format));
                           });
  }
  // Observed: the access log and the trace.
  auto seen =
      std::make_shared<ObservedRequest>(*observer_, "http", trace, tenant.id, *infer, received_ns);
  service_->Infer(tenant, std::move(infer),
                  [seen, format = std::move(decoded->format),
                   done = std::move(done)](StatusOr<std::unique_ptr<InferResponse>> result) {
                    seen->Answered(result);
                    const bool ok = result.ok();
                    HttpReply reply = InferReply(std::move(result), format);
                    if (ok && reply.status != 200) seen->EncodingFailed(reply.body);
                    seen->Encoded();
                    done(std::move(reply));
                  });
}

size_t HttpReply::content_length() const {
  size_t n = body.size();
  for (const auto& chunk : tail) n += chunk.size();
  return n;
}

HttpReply BodyTooLargeReply(size_t max_request_bytes) {
  return ErrorReply(PayloadTooLarge("request body exceeds the limit of " +
                                    std::to_string(max_request_bytes) +
                                    " bytes (--max-request-bytes)"));
}

HttpReply HeadersTooLargeReply(size_t max_header_bytes) {
  HttpReply r =
      ErrorReply(InvalidArgument("request headers exceed the limit of " +
                                 std::to_string(max_header_bytes) + " bytes (--max-header-bytes)"));
  r.status = 431;
  return r;
}

StatusOr<size_t> ParseInferenceHeaderLength(std::string_view value) {
  size_t n = 0;
  auto [end, err] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (value.empty() || err != std::errc() || end != value.data() + value.size()) {
    return InvalidArgument("Inference-Header-Content-Length must be a non-negative integer, got '" +
                           std::string(value.substr(0, 64)) + "'");
  }
  return n;
}

HttpReply ErrorReply(const Status& status) {
  HttpReply r;
  r.status = HttpStatusFor(status.code());
  EncodeError(status.message(), r.body);
  // Whole seconds, rounded up: a client that waits that long gets through.
  if (status.retry_after_ms() > 0) r.retry_after_s = (status.retry_after_ms() + 999) / 1000;
  return r;
}

std::optional<std::string> DecodePathSegment(std::string_view segment) {
  std::string out;
  out.reserve(segment.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < segment.size(); ++i) {
    char c = segment[i];
    if (c == '%') {
      if (i + 2 >= segment.size()) return std::nullopt;
      int hi = hex(segment[i + 1]), lo = hex(segment[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      c = static_cast<char>(hi * 16 + lo);
      if (c == '/' || c == '\0') return std::nullopt;
      i += 2;
    }
    out += c;
  }
  return out;
}

void Router::Handle(const HttpRequestView& request, ReplyCallback done) const {
  std::string_view path = request.target.substr(0, request.target.find('?'));
  // Split "/v2/models/m/versions/1/infer" into decoded segments. A fixed array
  // of short strings: no allocation for the usual names.
  if (path.empty() || path[0] != '/') {
    return done(ErrorReply(NotFound("malformed request target '" + std::string(path) + "'")));
  }
  std::array<std::string, kMaxPathSegments> seg;
  size_t count = 0;
  size_t pos = 1;
  while (pos <= path.size()) {
    if (count == kMaxPathSegments) {
      return done(ErrorReply(NotFound("no such endpoint: " + std::string(path))));
    }
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    std::string_view raw = path.substr(pos, end - pos);
    if (raw.find('%') == std::string_view::npos) {
      seg[count++].assign(raw);
    } else if (auto decoded = DecodePathSegment(raw)) {
      seg[count++] = std::move(*decoded);
    } else {
      return done(ErrorReply(
          InvalidArgument("malformed percent-encoding in path '" + std::string(path) + "'")));
    }
    pos = end + 1;
  }
  if (count > 0 && seg[count - 1].empty()) --count;  // tolerate a trailing '/'
  auto not_found = [&] { done(ErrorReply(NotFound("no such endpoint: " + std::string(path)))); };
  const HttpMethod m = request.method;
  const bool get = m == HttpMethod::kGet || m == HttpMethod::kHead;
  if (count > 0 && seg[0] == "console") {
    return done(HandleConsoleRequest(*service_, request, std::span(seg.data(), count)));
  }
  if (count == 0 || seg[0] != "v2") return not_found();

  // /v2/health/{live,ready}: open to anyone (probes carry no key).
  if (count == 3 && seg[1] == "health" && (seg[2] == "live" || seg[2] == "ready")) {
    if (!get) return done(MethodNotAllowed("GET"));
    bool ok = seg[2] == "live" ? service_->Live() : service_->Ready();
    return done(EmptyReply(ok ? 200 : 400));
  }
  // Everything else asks who is asking.
  auto tenant = service_->Authenticate(request.authorization, request.auth_memo);
  if (!tenant.ok()) return done(ErrorReply(tenant.status()));

  // /v2
  if (count == 1) {
    if (!get) return done(MethodNotAllowed("GET"));
    return done(JsonReply(EncodeServerMetadata(service_->Metadata())));
  }
  // /v2/usage: what each tenant used (an admin sees every tenant's).
  if (count == 2 && seg[1] == "usage") {
    if (!get) return done(MethodNotAllowed("GET"));
    return done(JsonReply(EncodeUsage(service_->Usage(**tenant))));
  }
  // /v2/repository/index
  if (seg[1] == "repository" && count == 3 && seg[2] == "index") {
    if (m != HttpMethod::kPost) return done(MethodNotAllowed("POST"));
    auto ready_only = DecodeIndexRequest(*request.body);
    if (!ready_only.ok()) return done(ErrorReply(ready_only.status()));
    return done(JsonReply(EncodeRepositoryIndex(service_->RepositoryIndex(**tenant, *ready_only))));
  }
  // /v2/repository/models/{m}/{load,unload}
  if (seg[1] == "repository" && count == 5 && seg[2] == "models" &&
      (seg[4] == "load" || seg[4] == "unload")) {
    if (m != HttpMethod::kPost) return done(MethodNotAllowed("POST"));
    auto finish = [done](Status s) { done(s.ok() ? EmptyReply(200) : ErrorReply(s)); };
    if (seg[4] == "load") {
      auto config = DecodeLoadRequest(*request.body);
      if (!config.ok()) return done(ErrorReply(config.status()));
      return service_->LoadModel(**tenant, seg[3], std::move(*config), std::move(finish));
    }
    if (Status s = DecodeUnloadRequest(*request.body); !s.ok()) return done(ErrorReply(s));
    return service_->UnloadModel(**tenant, seg[3], std::move(finish));
  }
  // /v2/systemsharedmemory[/region/{name}]/{status,register,unregister}
  if (seg[1] == "systemsharedmemory") {
    // Every tenant registers and sees only its own regions (shared_memory.h).
    const std::string& owner = (**tenant).id;
    std::string region;
    size_t at = 2;
    if (count >= 4 && seg[2] == "region") {
      region = seg[3];
      at = 4;
    }
    if (count != at + 1) return not_found();
    SharedMemoryManager& shm = service_->shared_memory();
    const std::string_view op = seg[at];
    if (op == "status") {
      if (!get) return done(MethodNotAllowed("GET"));
      auto regions = shm.List(owner, region);
      if (!regions.ok()) return done(ErrorReply(regions.status()));
      return done(JsonReply(EncodeShmStatus(*regions)));
    }
    if (op == "register" && !region.empty()) {
      if (m != HttpMethod::kPost) return done(MethodNotAllowed("POST"));
      auto req = DecodeShmRegisterRequest(*request.body);
      if (!req.ok()) return done(ErrorReply(req.status()));
      Status s = shm.Register(owner, region, req->key, req->offset, req->byte_size);
      return done(s.ok() ? EmptyReply(200) : ErrorReply(s));
    }
    if (op == "unregister") {
      if (m != HttpMethod::kPost) return done(MethodNotAllowed("POST"));
      if (region.empty()) {
        shm.UnregisterAll(owner);
        return done(EmptyReply(200));
      }
      Status s = shm.Unregister(owner, region);
      return done(s.ok() ? EmptyReply(200) : ErrorReply(s));
    }
    return not_found();
  }
  // /v2/models/stats: every model's statistics.
  if (count == 3 && seg[1] == "models" && seg[2] == "stats") {
    if (!get) return done(MethodNotAllowed("GET"));
    auto stats = service_->ModelStatistics(**tenant, "", "");
    if (!stats.ok()) return done(ErrorReply(stats.status()));
    return done(JsonReply(EncodeStatistics(*stats)));
  }
  // /v2/models/{m}[/versions/{v}][/ready|/config|/stats|/infer|/generate|/generate_stream]
  if (seg[1] != "models" || count < 3) return not_found();
  std::string model = std::move(seg[2]);
  std::string version;
  size_t next = 3;
  if (count > 3 && seg[3] == "versions") {
    if (count < 5) return not_found();
    version = std::move(seg[4]);
    next = 5;
  }
  if (model.empty()) return not_found();
  std::string_view action = next < count ? std::string_view(seg[next]) : "";
  if (next + 1 < count) return not_found();

  if (action.empty()) {
    if (!get) return done(MethodNotAllowed("GET"));
    auto md = service_->GetModelMetadata(**tenant, model, version);
    if (!md.ok()) return done(ErrorReply(md.status()));
    return done(JsonReply(EncodeModelMetadata(*md)));
  }
  if (action == "ready") {
    if (!get) return done(MethodNotAllowed("GET"));
    return done(EmptyReply(service_->ModelReady(**tenant, model, version) ? 200 : 400));
  }
  if (action == "config") {
    if (!get) return done(MethodNotAllowed("GET"));
    auto handle = service_->GetModel(**tenant, model, version);
    if (!handle.ok()) return done(ErrorReply(handle.status()));
    return done(JsonReply(ModelConfigToJson((*handle)->config)));
  }
  if (action == "stats") {
    if (!get) return done(MethodNotAllowed("GET"));
    auto stats = service_->ModelStatistics(**tenant, model, version);
    if (!stats.ok()) return done(ErrorReply(stats.status()));
    return done(JsonReply(EncodeStatistics(*stats)));
  }
  if (action == "infer") {
    if (m != HttpMethod::kPost) return done(MethodNotAllowed("POST"));
    return HandleInfer(**tenant, request, std::move(model), std::move(version), std::move(done));
  }
  if (action == "generate" || action == "generate_stream") {
    if (m != HttpMethod::kPost) return done(MethodNotAllowed("POST"));
    return HandleGenerate(**tenant, request, std::move(model), std::move(version),
                          action == "generate_stream", std::move(done));
  }
  return not_found();
}

}  // namespace mm
