// Router: KServe v2 REST (plus Triton's extensions) as a function from a
// parsed HTTP request to an HttpReply. It knows URLs, methods and JSON, and
// nothing about sockets, so it is unit-testable and the server stays small.
//
// Handle() calls `done` exactly once: synchronously for cheap endpoints, or
// later from an execution thread for inference.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/cancellation.h"
#include "core/delivery.h"
#include "http/event_stream.h"
#include "http/infer_codec.h"
#include "observability/request_observer.h"
#include "service/inference_service.h"

namespace mm {

enum class HttpMethod { kGet, kHead, kPost, kPut, kDelete, kOther };

struct InferSlot;

struct HttpRequestView {
  HttpMethod method = HttpMethod::kGet;
  std::string_view target;  // path and query, as received
  std::shared_ptr<const std::string> body;
  std::optional<size_t> inference_header_length;  // Inference-Header-Content-Length
  std::string_view authorization;                 // the Authorization header, if any
  std::string_view traceparent;  // the W3C traceparent header (when the server traces)
  // The connection's memory of its last key (see TenantRegistry::Memo); may be null.
  TenantRegistry::Memo* auth_memo = nullptr;
  // Cancelled by the connection when its client goes away; may be null.
  std::shared_ptr<Cancellation> cancellation;
  // Where an inference request's state waits for its answer (see InferSlot);
  // may be null (the router allocates it then).
  InferSlot* infer_slot = nullptr;
};

struct HttpReply {
  int status = 200;
  std::string body;                                 // JSON (or empty)
  std::vector<std::span<const std::byte>> tail;     // binary tensor data written after `body`
  std::unique_ptr<const InferResponse> tail_owner;  // keeps `tail` alive until written
  bool binary_header = false;  // send Inference-Header-Content-Length: body.size()
  // Static strings: the body's type when it is not JSON (empty: JSON), and
  // header lines to add, each after "\r\n" (the console's).
  std::string_view content_type;
  std::string_view headers;
  std::string allow;           // for 405: the methods the path accepts
  uint32_t retry_after_s = 0;  // Retry-After (a quota's refusal); 0: none
  // A /generate_stream reply (Server-Sent Events): the connection writes a
  // 200 head, then the stream's events as they come (chunked), and ends the
  // body after the last one. `body`, `tail` and `receipt` are unused then.
  std::shared_ptr<EventStream> events;
  // An inference reply's: the connection settles it once the reply is
  // written (delivered) or the write fails (core/delivery.h).
  DeliveryReceipt receipt;
  size_t content_length() const;
};

using ReplyCallback = std::function<void(HttpReply)>;

// What an inference request keeps while it waits for its answer: how to
// encode it, whom to give the reply, and the service's bill (CallRoom). A
// transport that handles one request at a time on a connection (HTTP/1.1)
// lends its own, so that neither the router nor the service allocates to
// carry the request to its answer (issue 27). The transport lends it to one
// request at a time, and keeps it until that request's reply has been
// written or dropped (the reply's receipt settles into the room).
struct InferSlot {
  HttpResponseFormat format;
  ReplyCallback done;
  InferenceService::CallRoom room;
};

class Router {
 public:
  // `observer`: tracing and the access log for inference requests; may be
  // null. Neither is owned; both outlive the router.
  explicit Router(InferenceService* service, const RequestObserver* observer = nullptr)
      : service_(service),
        observer_(observer != nullptr && observer->enabled() ? observer : nullptr) {}
  void Handle(const HttpRequestView& request, ReplyCallback done) const;
  // Whether requests' traceparent headers are wanted.
  bool traces() const { return observer_ != nullptr && observer_->tracing(); }

 private:
  void HandleInfer(const Tenant& tenant, const HttpRequestView& request, std::string model,
                   std::string version, ReplyCallback done) const;
  // Triton's generate extension (generate_handler.cc): /generate answers
  // with one JSON object, /generate_stream (`stream`) with Server-Sent Events.
  void HandleGenerate(const Tenant& tenant, const HttpRequestView& request, std::string model,
                      std::string version, bool stream, ReplyCallback done) const;

  InferenceService* const service_;        // not owned
  const RequestObserver* const observer_;  // null: nothing observes requests
};

// A reply carrying the KServe error JSON {"error": message}.
HttpReply ErrorReply(const Status& status);

// The answers to a request over the server's limits, the same over HTTP/1.1
// and HTTP/2: 413 naming --max-request-bytes, 431 naming --max-header-bytes.
HttpReply BodyTooLargeReply(size_t max_request_bytes);
HttpReply HeadersTooLargeReply(size_t max_header_bytes);

// An Inference-Header-Content-Length value: a non-negative integer, else
// INVALID_ARGUMENT naming the value.
StatusOr<size_t> ParseInferenceHeaderLength(std::string_view value);

// Percent-decodes one path segment; nullopt for malformed escapes or a decoded
// '/' or NUL (which would change how the path splits).
std::optional<std::string> DecodePathSegment(std::string_view segment);

}  // namespace mm
