// REST over HTTP/2 on the HTTP port (h2c with prior knowledge, h2 by ALPN
// under TLS): the translation between an HTTP/2 stream's header fields and
// the Router's HttpRequestView and HttpReply, so that both HTTP versions
// reach the same Router with the same request and write the same reply.
// Pure functions of the stream's state (http2_stream.h); the session
// (http2_session.cc) carries the frames. Not a door: src/http only.
#pragma once

#include <nghttp2/nghttp2.h>

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "http/http2_stream.h"
#include "http/router.h"

namespace mm::http2_internal {

// Takes one request header field of a REST stream (HTTP/2 names are lower
// case): the pseudo-headers :method and :path, and the fields the Router
// reads: authorization, traceparent (with `traces`),
// inference-header-content-length, and content-length (to size the body).
// A malformed inference-header-content-length is kept in rest.bad_head
// (400 once the request ends, as HTTP/1.1 answers it).
void TakeRestHeader(H2Stream& s, std::string_view name, std::string_view value, bool traces,
                    size_t max_request_bytes);

// Appends a piece of the body. False once the body would pass
// `max_request_bytes`: the request gets 413 and its bytes are dropped.
bool AppendRestBody(H2Rest& rest, std::string_view piece, size_t max_request_bytes);

// The request for the Router, viewing the stream's fields (valid while the
// stream lives; the body is shared).
HttpRequestView RestRequestView(const H2Stream& s);

// A response head, with no allocation for the usual one: its fields, and
// the texts they view that are not in the reply (numbers, lower-cased names).
struct RestHead {
  std::array<nghttp2_nv, 20> fields;
  size_t size = 0;
  std::array<std::string, 12> text;
  size_t text_used = 0;
};

// The response head of `reply`: :status, then the fields HTTP/1.1 sends
// (content-type, content-length, inference-header-content-length, allow,
// www-authenticate, retry-after, and the reply's own header lines, their
// names in lower case, as HTTP/2 requires; lines past `head`'s room are
// dropped). The fields point into `reply` and `head`, which must stay as
// they are while nghttp2 copies them (nghttp2_submit_response does).
void RestResponseHead(const HttpReply& reply, RestHead& head);

// The body of `reply` as pieces to write where they lie: the JSON body,
// then the binary tensors (kept alive by the reply's tail_owner). The
// receipt rides on the last piece; with no piece (an empty body, HEAD) it
// is settled as delivered once the head is submitted, by the caller.
void RestBodyPieces(HttpReply& reply, std::deque<H2Out>& out);

}  // namespace mm::http2_internal
