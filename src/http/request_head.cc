#include "http/request_head.h"

namespace mm {

namespace {

HttpMethod ToMethod(bhttp::verb verb) {
  switch (verb) {
    case bhttp::verb::get:
      return HttpMethod::kGet;
    case bhttp::verb::head:
      return HttpMethod::kHead;
    case bhttp::verb::post:
      return HttpMethod::kPost;
    case bhttp::verb::put:
      return HttpMethod::kPut;
    case bhttp::verb::delete_:
      return HttpMethod::kDelete;
    default:
      return HttpMethod::kOther;
  }
}

}  // namespace

Status ReadRequestHead(const RequestMessage& request, HttpRequestView& view, std::string& target,
                       std::string& authorization, std::string* traceparent) {
  view.method = ToMethod(request.method());
  target.assign(request.target().data(), request.target().size());
  view.target = target;
  view.inference_header_length.reset();
  if (auto it = request.find("Inference-Header-Content-Length"); it != request.end()) {
    MM_ASSIGN_OR_RETURN(view.inference_header_length,
                        ParseInferenceHeaderLength({it->value().data(), it->value().size()}));
  }
  if (auto it = request.find(bhttp::field::authorization); it != request.end()) {
    authorization.assign(it->value().data(), it->value().size());
  } else {
    authorization.clear();
  }
  view.authorization = authorization;
  if (traceparent != nullptr) {
    if (auto it = request.find("traceparent"); it != request.end()) {
      traceparent->assign(it->value().data(), it->value().size());
    } else {
      traceparent->clear();
    }
    view.traceparent = *traceparent;
  }
  return OkStatus();
}

}  // namespace mm
