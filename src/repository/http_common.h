// What the remote repositories' HTTP clients (S3, MLflow) share: libcurl's
// process-wide set-up, which failures another try may fix, the wait between
// tries, and URI encoding. Thread-safe.
#pragma once

#include <curl/curl.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "core/status.h"

namespace mm {

// curl_global_init, once per process; INTERNAL when it failed.
Status InitCurl();

// Whether a transfer that failed with this CURLcode may succeed when tried
// again: no connection, a connection cut, a timeout.
bool RetryableCurlCode(int code);

// Whether an HTTP status may be a passing state: 408, 429, 500, 502, 503, 504.
bool RetryableHttpStatus(long status);

// RFC 3986 (and SigV4) encoding: unreserved characters stay, '/' stays when
// `keep_slash`, everything else is %XX with upper-case hex.
std::string UriEncode(std::string_view s, bool keep_slash);

// Writes all of `data` into `fd` at `offset` (pwrite, retried when
// interrupted or short). RESOURCE_EXHAUSTED for a full disk or quota,
// INTERNAL for any other error; both say what the OS said.
Status WriteFileAt(int fd, const char* data, size_t size, uint64_t offset);

// libcurl's connection and DNS caches, shared by every transfer of one
// client (CURLOPT_SHARE), with the locks libcurl asks for.
struct CurlShare {
  // Also initializes libcurl (InitCurl). INTERNAL when it cannot.
  static StatusOr<std::unique_ptr<CurlShare>> Create();
  ~CurlShare();

  CURLSH* share = nullptr;
  std::mutex locks[CURL_LOCK_DATA_LAST];
};

struct RetryPolicy {
  int max_attempts = 5;  // tries, the first included
  std::chrono::milliseconds first_backoff{200};
  std::chrono::milliseconds max_backoff{5000};

  // The wait after try `attempt` (1-based) failed: first_backoff, doubling,
  // at most max_backoff.
  std::chrono::milliseconds Backoff(int attempt) const;
};

}  // namespace mm
