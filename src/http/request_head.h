// The head of an HTTP request, from Beast's parsed message to what the
// router reads (HttpRequestView). Kept apart from the connection code so that
// the head's decoding is a function a fuzz target can call on any bytes.
#pragma once

#include <memory_resource>
#include <string>

#include "core/status.h"
#include "http/asio.h"
#include "http/padded_body.h"
#include "http/router.h"

namespace mm {

// What a connection parses each request into: the header fields live in a
// per-connection arena (see HttpServer), the body in a padded string.
using RequestAllocator = std::pmr::polymorphic_allocator<char>;
using RequestParser = bhttp::request_parser<PaddedStringBody, RequestAllocator>;
using RequestMessage = bhttp::request<PaddedStringBody, bhttp::basic_fields<RequestAllocator>>;

// Fills the view's method, target, inference_header_length and
// authorization from `request`'s head. The target and Authorization value
// are copied into `target` and `authorization` (reused across requests),
// which the view then points into. With `traceparent`, the W3C traceparent
// header is copied there too (only a traced server looks it up).
// INVALID_ARGUMENT for an Inference-Header-Content-Length that is not a
// non-negative integer.
Status ReadRequestHead(const RequestMessage& request, HttpRequestView& view, std::string& target,
                       std::string& authorization, std::string* traceparent = nullptr);

}  // namespace mm
