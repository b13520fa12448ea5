// Triton's generate extension over HTTP (router.h): POST
// /v2/models/{m}[/versions/{v}]/generate and /generate_stream. The request's
// flat JSON becomes tensors and parameters (generate_codec.h); the model's
// responses (several or none, for a decoupled model) become one JSON object
// (/generate) or one Server-Sent Event each (/generate_stream).
//
// /generate answers with exactly one response: a model that sends several,
// or none, gets an error naming /generate_stream. /generate_stream replies
// with an HTTP error when the request fails before its first response (as
// Triton: "fails before inference begins"); after that, errors are events
// {"error": "..."}, and the body ends after the request's final response.
#include <memory>
#include <string>
#include <utility>

#include "core/thread_annotations.h"
#include "http/generate_codec.h"
#include "http/router.h"

namespace mm {
namespace {

// /generate: gathers a decoupled model's responses before the last.
class Collector final : public ResponseStream {
 public:
  void Send(const InferRequest&, StatusOr<std::unique_ptr<InferResponse>> response) override {
    MutexLock lock(mu_);
    ++count_;
    if (!response.ok()) {
      if (error_.ok()) error_ = response.status();
    } else if (first_ == nullptr) {
      first_ = std::move(*response);
    }
  }

  // The request's final answer: what /generate replies.
  HttpReply Finish(const std::string& model, StatusOr<std::unique_ptr<InferResponse>> last) {
    MutexLock lock(mu_);
    if (!last.ok()) return ErrorReply(last.status());
    if (!error_.ok()) return ErrorReply(error_);
    std::unique_ptr<InferResponse> final = std::move(*last);
    const size_t total = count_ + (final->complete_only ? 0 : 1);
    if (total != 1) {
      return ErrorReply(
          InvalidArgument("model '" + model + "' sent " + std::to_string(total) +
                          " responses to the request; /generate answers with exactly one: use "
                          "/generate_stream for a model that sends several or none"));
    }
    HttpReply reply;
    reply.receipt = std::move(final->receipt);
    const InferResponse& r = final->complete_only ? *first_ : *final;
    if (Status s = EncodeGenerateResponse(r, reply.body); !s.ok()) return ErrorReply(s);
    return reply;
  }

 private:
  Mutex mu_;
  size_t count_ MM_GUARDED_BY(mu_) = 0;
  Status error_ MM_GUARDED_BY(mu_);
  std::unique_ptr<InferResponse> first_ MM_GUARDED_BY(mu_);
};

// /generate_stream: each response becomes an event; the HTTP reply (200 with
// the event stream) is sent with the first one.
class EventSink final : public ResponseStream {
 public:
  explicit EventSink(ReplyCallback done)
      : events_(std::make_shared<EventStream>()), done_(std::move(done)) {}

  void Send(const InferRequest&, StatusOr<std::unique_ptr<InferResponse>> response) override {
    Start();
    events_->Push(SseEvent(Json(response)), false);
  }

  void Finish(StatusOr<std::unique_ptr<InferResponse>> last) {
    {
      MutexLock lock(mu_);
      if (!started_ && !last.ok()) {  // nothing sent yet: a plain HTTP error
        started_ = true;
        ReplyCallback done = std::move(done_);
        lock.Unlock();
        return done(ErrorReply(last.status()));
      }
    }
    Start();
    DeliveryReceipt receipt;
    std::string event;
    if (last.ok()) {
      receipt = std::move((*last)->receipt);
      if (!(*last)->complete_only) event = SseEvent(Json(last));
    } else {
      event = SseEvent(GenerateErrorJson(last.status()));
    }
    events_->Push(event, true, std::move(receipt));
  }

 private:
  static std::string Json(const StatusOr<std::unique_ptr<InferResponse>>& response) {
    if (!response.ok()) return GenerateErrorJson(response.status());
    std::string json;
    if (Status s = EncodeGenerateResponse(**response, json); !s.ok()) return GenerateErrorJson(s);
    return json;
  }

  // Sends the 200 reply that carries the events, once.
  void Start() {
    ReplyCallback done;
    {
      MutexLock lock(mu_);
      if (started_) return;
      started_ = true;
      done = std::move(done_);
    }
    HttpReply reply;
    reply.events = events_;
    done(std::move(reply));
  }

  const std::shared_ptr<EventStream> events_;
  Mutex mu_;
  bool started_ MM_GUARDED_BY(mu_) = false;
  ReplyCallback done_ MM_GUARDED_BY(mu_);
};

}  // namespace

void Router::HandleGenerate(const Tenant& tenant, const HttpRequestView& request, std::string model,
                            std::string version, bool stream, ReplyCallback done) const {
  // The model's inputs say which keys are tensors (a lookup only this
  // endpoint pays).
  auto metadata = service_->GetModelMetadata(tenant, model, version);
  if (!metadata.ok()) return done(ErrorReply(metadata.status()));
  auto decoded = DecodeGenerateRequest(*request.body, metadata->inputs);
  if (!decoded.ok()) return done(ErrorReply(decoded.status().WithContext("model '" + model + "'")));
  auto infer = std::make_unique<InferRequest>(std::move(*decoded));
  infer->model_name = model;
  infer->model_version = std::move(version);
  infer->cancellation = request.cancellation;
  if (!stream) {
    auto collector = std::make_shared<Collector>();
    infer->stream = collector;
    return service_->Infer(tenant, std::move(infer),
                           [collector, model = std::move(model), done = std::move(done)](
                               StatusOr<std::unique_ptr<InferResponse>> result) {
                             done(collector->Finish(model, std::move(result)));
                           });
  }
  auto sink = std::make_shared<EventSink>(std::move(done));
  infer->stream = sink;
  service_->Infer(tenant, std::move(infer), [sink](StatusOr<std::unique_ptr<InferResponse>> r) {
    sink->Finish(std::move(r));
  });
}

}  // namespace mm
