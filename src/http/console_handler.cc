#include "http/console_handler.h"

#include "console/console_assets.h"
#include "console/console_overview.h"

namespace mm {

namespace {

// Header lines (each after "\r\n") for every console reply.
constexpr std::string_view kConsoleHeaders =
    "\r\nContent-Security-Policy: default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
    "\r\nX-Content-Type-Options: nosniff"
    "\r\nReferrer-Policy: no-referrer"
    "\r\nCache-Control: no-store";

HttpReply ConsoleError(const Status& status) {
  HttpReply r = ErrorReply(status);
  r.headers = kConsoleHeaders;
  return r;
}

HttpReply NotGet() {
  HttpReply r = ConsoleError(Status(StatusCode::kInvalidArgument,
                                    "method not allowed here; the console's paths accept GET"));
  r.status = 405;
  r.allow = "GET";
  return r;
}

}  // namespace

HttpReply HandleConsoleRequest(const InferenceService& service, const HttpRequestView& request,
                               std::span<const std::string> segments) {
  const std::string path = std::string(request.target.substr(0, request.target.find('?')));
  if (request.method != HttpMethod::kGet) return NotGet();
  // /console/api/overview
  if (segments.size() == 3 && segments[1] == "api" && segments[2] == "overview") {
    auto tenant = service.Authenticate(request.authorization, request.auth_memo);
    if (!tenant.ok()) return ConsoleError(tenant.status());
    if ((**tenant).role != TenantRole::kAdmin) {
      return ConsoleError(PermissionDenied("the console is for admin tenants; tenant '" +
                                           (**tenant).id +
                                           "' is not one (role: admin in the "
                                           "tenants file)"));
    }
    HttpReply r;
    AppendConsoleOverview(service, r.body);
    r.headers = kConsoleHeaders;
    return r;
  }
  // /console, /console/ and /console/{asset}
  std::string_view name;
  if (segments.size() == 1) {
    name = "index.html";
  } else if (segments.size() == 2) {
    name = segments[1];
  }
  const ConsoleAsset* asset = name.empty() ? nullptr : FindConsoleAsset(name);
  if (asset == nullptr) {
    return ConsoleError(
        NotFound("no such console page: " + path + " (the console is at /console/)"));
  }
  HttpReply r;
  // The asset lives as long as the process: written from where it is.
  r.tail.push_back(std::as_bytes(std::span(asset->body.data(), asset->body.size())));
  r.content_type = asset->content_type;
  r.headers = kConsoleHeaders;
  return r;
}

}  // namespace mm
