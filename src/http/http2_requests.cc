// The requests on an HTTP/2 connection's streams (http2_session.h), from
// their heads to their answers: gRPC unary calls, ModelStreamInfer streams
// and their flow, and REST requests to the Router.
#include "http/http2_session.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

#include "http/http2_rest.h"

namespace mm::http2_internal {

void Http2Session::OnRequestHead(H2Stream* s) {
  if (s->rest != nullptr) return;  // (decided once it has ended: RunRest)
  if (s->deadline_ns != 0) Arm(s->deadline_ns);
  if (!s->post || !s->grpc_content_type) {
    // Not a gRPC call (the gRPC specification: 415 for another content
    // type), answered once the request has ended, as any HTTP/2 server
    // would; its bytes are dropped meanwhile.
    s->http_status = s->post ? 415 : 405;
    return;
  }
  if (!s->refused.ok()) return output_.End(s, std::move(s->refused));
  if (!s->method.has_value()) {
    return output_.End(s, Unimplemented("the request names no method (:path); expected "
                                        "/inference.GRPCInferenceService/METHOD"));
  }
  s->reader.emplace(server_->options().max_request_bytes, s->encoding);
  if (*s->method != rpc::Method::kModelStreamInfer) {
    s->call = GrpcUnaryCall::Create(*s->method);
    return;
  }
  // A stream authenticates at once (and again at each message).
  auto who = server_->service()->Authenticate(s->authorization, &auth_memo_);
  if (!who.ok()) return output_.End(s, who.status());
  const int32_t id = s->id;
  s->streaming = true;
  s->stream_call = std::make_shared<GrpcStreamCall>(
      server_->grpc_env(), s->authorization, s->traceparent,
      [self = shared_from_this(), id](GrpcStreamCall::Out out) {
        net::dispatch(self->executor_, [self, id, out = std::move(out)]() mutable {
          self->OnStreamOut(id, std::move(out));
        });
      });
}

void Http2Session::OnStreamData(H2Stream* s, std::string_view piece) {
  Status fed = s->reader->Feed(piece, [this, s](std::string_view message) {
    std::string bytes = s->reader->Take(message);
    if (s->waiting.empty() && HasRoom(s)) return HandOn(s, std::move(bytes));
    s->waiting.push_back(std::move(bytes));
    return OkStatus();
  });
  if (s->waiting.empty()) {
    nghttp2_session_consume(session_, s->id, piece.size());
  } else {
    s->unconsumed += piece.size();
  }
  // The per-message read deadline: a message begun must end in time.
  if (!s->reader->partial()) {
    s->partial_since_ns = 0;
  } else if (s->partial_since_ns == 0 || s->reader->messages() != s->messages_seen) {
    s->partial_since_ns = NowNs();
    s->partial_bytes = 0;
    Arm(s->partial_since_ns + TransferNs(0));
  }
  s->partial_bytes += piece.size();
  s->messages_seen = s->reader->messages();
  if (!fed.ok()) StopReading(s, std::move(fed));
}

bool Http2Session::HasRoom(const H2Stream* s) const {
  return s->in_flight + s->outgoing.size() < server_->options().grpc.stream_max_pending;
}

Status Http2Session::HandOn(H2Stream* s, std::string message) {
  // Counted first: its answer may come back at once (inline execution).
  ++s->in_flight;
  Status handed = s->stream_call->OnMessage(std::move(message), &auth_memo_, NowNs());
  if (!handed.ok()) --s->in_flight;
  return handed;
}

void Http2Session::Pump(H2Stream* s) {
  while (!s->waiting.empty() && HasRoom(s) && !s->answered && s->stream_call != nullptr) {
    std::string message = std::move(s->waiting.front());
    s->waiting.pop_front();
    if (Status handed = HandOn(s, std::move(message)); !handed.ok()) {
      return StopReading(s, handed);
    }
  }
  if (s->waiting.empty() && s->unconsumed > 0) {
    nghttp2_session_consume(session_, s->id, s->unconsumed);
    s->unconsumed = 0;
  }
  output_.MaybeEndStream(s);
}

void Http2Session::StopReading(H2Stream* s, Status status) {
  s->request_done = true;
  s->waiting.clear();
  if (s->end_status.ok()) s->end_status = std::move(status);
  output_.MaybeEndStream(s);
}

void Http2Session::OnRequestDone(H2Stream* s) {
  if (s->rest != nullptr) return RunRest(s);
  if (s->http_status != 0) return output_.Respond(s, s->http_status);
  if (s->streaming) {
    if (Status whole = s->reader->Finish(); !whole.ok() && s->end_status.ok()) {
      s->end_status = std::move(whole);
    }
    return output_.MaybeEndStream(s);
  }
  if (s->answered || s->running || s->call == nullptr) return;
  if (Status whole = s->reader->Finish(); !whole.ok()) return output_.End(s, std::move(whole));
  if (!s->call->parsed()) {
    return output_.End(s,
                       InvalidArgument("a unary call carries exactly one request message; this one "
                                       "ended without any"));
  }
  std::shared_ptr<const Tenant> tenant;
  if (!rpc::OpenToAnyone(*s->method)) {
    auto who = server_->service()->Authenticate(s->authorization, &auth_memo_);
    if (!who.ok()) return output_.End(s, who.status());
    tenant = std::move(*who);
  }
  s->running = true;
  GrpcCallMeta meta;
  meta.traceparent = s->traceparent;
  meta.received_ns = s->received_ns;
  if (*s->method == rpc::Method::kModelInfer) {
    s->cancellation = std::make_shared<Cancellation>();
    meta.cancellation = s->cancellation;
  }
  // The call keeps this session until it has answered, so the answer's
  // callback holds a plain pointer (16 bytes: std::function keeps it in
  // place, no allocation).
  meta.caller = shared_from_this();
  const int32_t id = s->id;
  s->call->Run(server_->grpc_env(), std::move(tenant), meta, [session = this, id](GrpcReply reply) {
    // On an execution thread this hops onto the connection's loop;
    // on the loop's own thread (a call answered at once) it runs now.
    net::dispatch(session->executor_,
                  [self = session->shared_from_this(), id, reply = std::move(reply)]() mutable {
                    self->OnAnswered(id, std::move(reply));
                  });
  });
}

void Http2Session::OnAnswered(int32_t id, GrpcReply reply) {
  H2Stream* s = closed_ ? nullptr : Find(session_, id);
  if (s == nullptr || s->answered) return;  // gone (reset, or past its deadline): dropped
  if (!reply.status.ok()) {
    output_.End(s, std::move(reply.status));
  } else if (reply.parts.has_value()) {
    output_.QueueParts(s, std::move(*reply.parts), std::move(reply.owner), std::move(reply.keep),
                       std::move(reply.receipt));
    output_.End(s, OkStatus());
  } else {
    output_.Queue(s, H2Out{std::move(reply.message),
                           {},
                           nullptr,
                           std::move(reply.keep),
                           std::move(reply.receipt)});
    output_.End(s, OkStatus());
  }
  Flush();
}

void Http2Session::OnStreamOut(int32_t id, GrpcStreamCall::Out out) {
  H2Stream* s = closed_ ? nullptr : Find(session_, id);
  if (s == nullptr) return;  // gone: its receipt is settled undelivered
  if (out.completes) --s->in_flight;
  if (out.write && !s->answered) {
    output_.Queue(s, H2Out{std::move(out.message), {}, nullptr, nullptr, std::move(out.receipt)});
  }
  Pump(s);
  Flush();
}

void Http2Session::RunRest(H2Stream* s) {
  if (s->answered || s->running) return;
  const auto& o = server_->options();
  if (s->header_bytes > o.max_header_bytes) {
    return ReplyRest(s, HeadersTooLargeReply(o.max_header_bytes));
  }
  if (s->http_status == 413) return ReplyRest(s, BodyTooLargeReply(o.max_request_bytes));
  if (!s->rest->bad_head.ok()) return ReplyRest(s, ErrorReply(s->rest->bad_head));
  s->running = true;
  s->cancellation = std::make_shared<Cancellation>();
  HttpRequestView view = http2_internal::RestRequestView(*s);
  view.auth_memo = &auth_memo_;
  const int32_t id = s->id;
  server_->router().Handle(view, [self = shared_from_this(), id](HttpReply reply) {
    // As a gRPC call's answer (OnRequestDone): onto the connection's loop.
    net::dispatch(self->executor_, [self, id, reply = std::move(reply)]() mutable {
      self->OnRestReply(id, std::move(reply));
    });
  });
}

void Http2Session::OnRestReply(int32_t id, HttpReply reply) {
  H2Stream* s = closed_ ? nullptr : Find(session_, id);
  if (s == nullptr || s->answered) {  // reset meanwhile: dropped, undelivered
    if (reply.events != nullptr) reply.events->Abandon();
    return;
  }
  ReplyRest(s, std::move(reply));
  Flush();
}

void Http2Session::ReplyRest(H2Stream* s, HttpReply reply) {
  if (output_.ReplyRest(s, std::move(reply))) PumpEvents(s);
}

void Http2Session::PumpEvents(H2Stream* s) {
  const std::shared_ptr<EventStream>& events = s->rest->events;
  if (events == nullptr || s->ending || !s->outgoing.empty()) return;
  std::string chunk;
  bool last = false;
  const int32_t id = s->id;
  const bool any = events->Take(chunk, &last, [self = shared_from_this(), id] {
    net::dispatch(self->executor_, [self, id] {
      H2Stream* s = self->closed_ ? nullptr : Find(self->session_, id);
      if (s == nullptr || s->rest == nullptr) return;
      self->PumpEvents(s);
      self->Flush();
    });
  });
  if (!any) return;
  if (!chunk.empty()) s->outgoing.push_back(H2Out{std::move(chunk), {}, nullptr, nullptr, {}});
  if (last) s->ending = true;
  output_.Resume(s);
}

}  // namespace mm::http2_internal
