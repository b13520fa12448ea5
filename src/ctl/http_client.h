// The ctl's HTTP client: one libcurl easy handle talking to one mmserve, with
// the connection settings of the command line (base URL, API key, timeout,
// TLS). Requests are synchronous; the connection is kept between requests.
//
// Errors:
//  - the server could not be reached (refused, DNS, TLS handshake):
//    UNAVAILABLE "cannot reach the server at <url>: <curl's message>";
//  - any other transfer failure (a timeout): UNAVAILABLE naming the URL;
//  - with the *Checked calls, an HTTP status >= 400: the server's own
//    {"error": "..."} message, with the code the status maps to (401:
//    UNAUTHENTICATED, 404: NOT_FOUND, ...).
// The API key is sent as "Authorization: Bearer <key>" and appears in no
// message.
//
// Thread-safety: one HttpClient per thread; distinct clients may run
// concurrently (libcurl is initialized once per process by Create).
#pragma once

#include <csignal>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace mm {

struct HttpClientOptions {
  std::string url;        // base URL, "http://host:port" (a path prefix is kept)
  std::string api_key;    // empty: no Authorization header
  double timeout_s = 0;   // per request, whole transfer; 0: none
  std::string cacert;     // CA bundle for https (empty: the system's)
  bool insecure = false;  // https without verifying the server's certificate
  // When set and *cancel becomes non-zero (a signal handler's flag), a
  // request in flight ends at once with CANCELLED.
  const volatile std::sig_atomic_t* cancel = nullptr;
};

struct HttpResponse {
  long status = 0;
  std::string body;
  // Inference-Header-Content-Length, when the reply has a binary section.
  std::optional<size_t> header_length;
};

class HttpClient {
 public:
  // INVALID_ARGUMENT for an empty URL; INTERNAL when libcurl cannot start.
  static StatusOr<std::unique_ptr<HttpClient>> Create(HttpClientOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // `path` starts with '/' and is already percent-encoded (url_path.h). Any
  // HTTP status is a success here.
  StatusOr<HttpResponse> Get(std::string_view path);
  // POSTs `body` as application/json, or, with `header_length`, as a JSON
  // header of that many bytes followed by binary data (Triton's binary
  // tensor extension: Inference-Header-Content-Length).
  StatusOr<HttpResponse> Post(std::string_view path, std::string_view body,
                              std::optional<size_t> header_length = std::nullopt);

  // As above, and an HTTP status >= 400 is an error with the server's message.
  StatusOr<HttpResponse> GetChecked(std::string_view path);
  StatusOr<HttpResponse> PostChecked(std::string_view path, std::string_view body,
                                     std::optional<size_t> header_length = std::nullopt);

  const HttpClientOptions& options() const { return options_; }

 private:
  HttpClient(HttpClientOptions options, void* curl);
  StatusOr<HttpResponse> Perform(bool post, std::string_view path, std::string_view body,
                                 std::optional<size_t> header_length);

  const HttpClientOptions options_;
  void* const curl_;  // CURL*, owned
};

// The Status for an HTTP error reply: the message of a {"error": "..."} body,
// else "HTTP <status>" and the start of the body; the code from the status.
Status HttpErrorStatus(long status, std::string_view body);

}  // namespace mm
