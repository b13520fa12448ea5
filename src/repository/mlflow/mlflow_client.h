// A small client for an MLflow tracking server's REST API and its artifact
// proxy (`mlflow server`, which serves artifacts by default): GET a JSON
// answer or a small artifact, and download an artifact into a file.
//
// Authentication as MLflow's own clients do it: MLFLOW_TRACKING_TOKEN (a
// bearer token), else MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD
// (basic). Errors name the path, the HTTP status and MLflow's error code and
// message: 401/403 -> PERMISSION_DENIED, 404 -> NOT_FOUND, what another try
// may fix (no connection, a cut, 5xx, 429) -> UNAVAILABLE after the retries.
// No message holds a credential.
//
// Thread-safety: every method may be called concurrently; each blocks its
// caller (loader and scanning threads, never the request path).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "repository/http_common.h"

namespace mm {

struct MlflowSettings {
  std::string base;  // http(s)://HOST[:PORT][/PATH], no trailing '/'
  std::string token;
  std::string username;
  std::string password;
  // For the log, never the secret: "token (MLFLOW_TRACKING_TOKEN)", ...
  std::string auth_source;
};

// From mlflow://HOST[:PORT][/PATH] (http) or mlflows://... (https) and the
// environment (`get` reads a variable; nullopt when unset). INVALID_ARGUMENT
// for another scheme, an empty host, a user name or password in the URI, or
// a username without a password.
StatusOr<MlflowSettings> ResolveMlflowSettings(
    std::string_view uri, const std::function<std::optional<std::string>(std::string_view)>& get);

class MlflowClient {
 public:
  static StatusOr<std::unique_ptr<MlflowClient>> Create(MlflowSettings settings,
                                                        RetryPolicy retry = {});
  ~MlflowClient();

  // The body of GET base + `path_and_query` (already encoded), at most
  // `max_bytes` (INVALID_ARGUMENT beyond).
  StatusOr<std::string> Get(std::string_view path_and_query, uint64_t max_bytes) const;

  // Downloads GET base + `path` into `fd` (from offset 0): exactly `size`
  // bytes, or an error (retried from the start while tries last). `bytes`
  // hears the bytes received so far, about once a second at least; when it
  // returns false the download stops with CANCELLED.
  Status Download(std::string_view path, int fd, uint64_t size,
                  const std::function<bool(uint64_t)>& bytes) const;

  const MlflowSettings& settings() const { return settings_; }

 private:
  MlflowClient(MlflowSettings settings, RetryPolicy retry);

  const MlflowSettings settings_;
  const RetryPolicy retry_;
  std::unique_ptr<CurlShare> shared_;
};

}  // namespace mm
