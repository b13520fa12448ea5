#include "http/request_head.h"

#include <optional>
#include <string_view>

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
  static constexpr beast::string_view kInferenceHeaderLength = "Inference-Header-Content-Length";
  static constexpr beast::string_view kTraceparent = "traceparent";
  view.method = ToMethod(request.method());
  target.assign(request.target().data(), request.target().size());
  view.target = target;
  // One walk over the fields in their order, instead of a lookup per header
  // in Beast's tree: each lookup compares names case-insensitively node by
  // node (about 600 instructions for Inference-Header-Content-Length, 2% of
  // a request), while a walk compares each field's enum, and the lengths of
  // the names Beast does not know, before any name. As a lookup does, the
  // first field of a name counts.
  std::optional<std::string_view> header_length, auth, parent;
  for (const auto& field : request) {
    if (field.name() == bhttp::field::authorization) {
      if (!auth) auth = std::string_view(field.value().data(), field.value().size());
      continue;
    }
    if (field.name() != bhttp::field::unknown) continue;
    const auto name = field.name_string();
    if (name.size() == kInferenceHeaderLength.size()) {
      if (!header_length && beast::iequals(name, kInferenceHeaderLength)) {
        header_length = std::string_view(field.value().data(), field.value().size());
      }
    } else if (traceparent != nullptr && name.size() == kTraceparent.size()) {
      if (!parent && beast::iequals(name, kTraceparent)) {
        parent = std::string_view(field.value().data(), field.value().size());
      }
    }
  }
  view.inference_header_length.reset();
  if (header_length) {
    MM_ASSIGN_OR_RETURN(view.inference_header_length, ParseInferenceHeaderLength(*header_length));
  }
  authorization.assign(auth.value_or(std::string_view()));
  view.authorization = authorization;
  if (traceparent != nullptr) {
    traceparent->assign(parent.value_or(std::string_view()));
    view.traceparent = *traceparent;
  }
  return OkStatus();
}

}  // namespace mm
