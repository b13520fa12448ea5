// The web console's routes (console/): GET /console (its page), GET
// /console/{console.css,console.js}, and GET /console/api/overview, the
// JSON document the page and `mmserve ctl top` poll.
//
// Access: the page and its scripts hold no data and are served to anyone
// (the page asks for a key); the overview needs a key (as every endpoint
// but the health checks) of an admin tenant: it names every tenant's
// models. An open server's default tenant is an admin.
//
// Every console reply carries a Content-Security-Policy that allows only
// the server's own scripts, styles and connections (no inline script, no
// other origin, no framing): a model name or reason the page shows is
// tenant input, and the page writes it as text.
#pragma once

#include <span>
#include <string>

#include "http/router.h"

namespace mm {

// `segments`: the path's decoded segments, the first "console". Synchronous.
HttpReply HandleConsoleRequest(const InferenceService& service, const HttpRequestView& request,
                               std::span<const std::string> segments);

}  // namespace mm
