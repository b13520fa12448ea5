#include "http/http2_rest.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "http/infer_codec.h"

namespace mm::http2_internal {

namespace {

HttpMethod MethodOf(std::string_view v) {
  if (v == "GET") return HttpMethod::kGet;
  if (v == "POST") return HttpMethod::kPost;
  if (v == "HEAD") return HttpMethod::kHead;
  if (v == "PUT") return HttpMethod::kPut;
  if (v == "DELETE") return HttpMethod::kDelete;
  return HttpMethod::kOther;
}

// The padding HTTP/1.1's body has too (padded_body.h): the JSON parser reads
// the body in place.
void Reserve(std::string& body, size_t size) {
  if (body.capacity() < size + kRequestBodyPadding) {
    body.reserve(std::max(body.capacity() * 2, size + kRequestBodyPadding));
  }
}

}  // namespace

void TakeRestHeader(H2Stream& s, std::string_view name, std::string_view value, bool traces,
                    size_t max_request_bytes) {
  H2Rest& rest = *s.rest;
  if (name == ":method") {
    rest.method = MethodOf(value);
    rest.head_only = rest.method == HttpMethod::kHead;
  } else if (name == ":path") {
    rest.target.assign(value);
  } else if (name == "authorization") {
    s.authorization.assign(value);
  } else if (name == "traceparent") {
    if (traces) s.traceparent.assign(value);
  } else if (name == "inference-header-content-length") {
    auto length = ParseInferenceHeaderLength(value);
    if (length.ok()) {
      rest.inference_header_length = *length;
    } else if (rest.bad_head.ok()) {
      rest.bad_head = length.status();
    }
  } else if (name == "content-length") {
    // Sizes the body at once (nghttp2 checks that the DATA frames match it).
    size_t n = 0;
    const auto [end, err] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (err == std::errc() && end == value.data() + value.size() && n <= max_request_bytes) {
      if (rest.body == nullptr) rest.body = std::make_shared<std::string>();
      Reserve(*rest.body, n);
    }
  }
}

bool AppendRestBody(H2Rest& rest, std::string_view piece, size_t max_request_bytes) {
  if (rest.body == nullptr) rest.body = std::make_shared<std::string>();
  std::string& body = *rest.body;
  if (piece.size() > max_request_bytes - std::min(body.size(), max_request_bytes)) return false;
  Reserve(body, body.size() + piece.size());
  body.append(piece);
  return true;
}

HttpRequestView RestRequestView(const H2Stream& s) {
  const H2Rest& rest = *s.rest;
  HttpRequestView view;
  view.method = rest.method;
  view.target = rest.target;
  view.inference_header_length = rest.inference_header_length;
  view.authorization = s.authorization;
  view.traceparent = s.traceparent;
  view.body = rest.body != nullptr ? rest.body : std::make_shared<std::string>();
  view.cancellation = s.cancellation;
  return view;
}

void RestResponseHead(const HttpReply& reply, RestHead& head) {
  head.size = 0;
  head.text_used = 0;
  const auto add = [&head](std::string_view name, std::string_view value) {
    if (head.size < head.fields.size()) head.fields[head.size++] = Header(name, value);
  };
  const auto text = [&head](auto number) -> std::string_view {
    std::string& t = head.text[head.text_used++];
    t = std::to_string(number);  // short: in the string itself, no allocation
    return t;
  };
  add(":status", text(reply.events ? 200 : reply.status));
  add("server", "mmserve");
  if (reply.events != nullptr) {
    add("content-type", "text/event-stream; charset=utf-8");
    add("cache-control", "no-cache");
    return;
  }
  const size_t length = reply.content_length();
  add("content-length", text(length));
  if (length > 0) {
    add("content-type", reply.binary_header          ? "application/octet-stream"
                        : reply.content_type.empty() ? std::string_view("application/json")
                                                     : reply.content_type);
  }
  if (reply.binary_header) add("inference-header-content-length", text(reply.body.size()));
  if (!reply.allow.empty()) add("allow", reply.allow);
  if (reply.status == 401) add("www-authenticate", "Bearer realm=\"mmserve\"");
  if (reply.retry_after_s > 0) add("retry-after", text(reply.retry_after_s));
  // The reply's own lines, each after "\r\n" (the console's static strings).
  std::string_view rest = reply.headers;
  while (!rest.empty() && head.text_used < head.text.size() && head.size < head.fields.size()) {
    if (rest.starts_with("\r\n")) rest.remove_prefix(2);
    const size_t end = std::min(rest.find("\r\n"), rest.size());
    const std::string_view line = rest.substr(0, end);
    rest.remove_prefix(end);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string& lower = head.text[head.text_used++];
    lower.assign(line.substr(0, colon));
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string_view value = line.substr(colon + 1);
    while (value.starts_with(' ')) value.remove_prefix(1);
    add(lower, value);
  }
}

void RestBodyPieces(HttpReply& reply, std::deque<H2Out>& out) {
  const size_t first = out.size();
  const std::shared_ptr<const void> owner = std::move(reply.tail_owner);  // shared by the pieces
  if (!reply.body.empty()) out.push_back(H2Out{std::move(reply.body), {}, nullptr, nullptr, {}});
  for (const auto& chunk : reply.tail) {
    if (chunk.empty()) continue;
    const std::string_view bytes(reinterpret_cast<const char*>(chunk.data()), chunk.size());
    if (owner != nullptr) {
      out.push_back(H2Out{{}, bytes, owner, nullptr, {}});
    } else {
      out.push_back(
          H2Out{std::string(bytes), {}, nullptr, nullptr, {}});  // (nothing keeps it: a copy)
    }
  }
  if (out.size() > first) out.back().receipt = std::move(reply.receipt);
}

}  // namespace mm::http2_internal
