#include "repository/mlflow/mlflow_client.h"

#include <curl/curl.h>
#include <simdjson.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>

#include "repository/repository_key.h"

namespace mm {
namespace {

// One request's answer: into `buffer` (a JSON answer, an error body), or
// into `fd` (a download of a 2xx answer).
struct Answer {
  CURL* easy = nullptr;
  int fd = -1;
  uint64_t max_buffer = 0;
  uint64_t expected = 0;  // a download's size
  std::string buffer;
  uint64_t written = 0;
  Status write_error;
  const std::function<bool(uint64_t)>* bytes = nullptr;

  long Code() const {
    long code = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    return code;
  }
};

size_t Write(char* data, size_t size, size_t count, void* user) {
  auto& a = *static_cast<Answer*>(user);
  const size_t n = size * count;
  const long code = a.Code();
  if (a.fd < 0 || code < 200 || code >= 300) {
    if (a.buffer.size() + n > std::max<uint64_t>(a.max_buffer, 1 << 16)) {
      a.write_error =
          InvalidArgument("the answer is larger than " + std::to_string(a.max_buffer) + " bytes");
      return CURL_WRITEFUNC_ERROR;
    }
    a.buffer.append(data, n);
    return n;
  }
  if (a.written + n > a.expected) {
    a.write_error = Unavailable("the server sent more than the " + std::to_string(a.expected) +
                                " bytes the artifact listing gave");
    return CURL_WRITEFUNC_ERROR;
  }
  a.write_error = WriteFileAt(a.fd, data, n, a.written);
  if (!a.write_error.ok()) return CURL_WRITEFUNC_ERROR;
  a.written += n;
  return n;
}

// libcurl's progress callback (often, and about once a second while nothing
// arrives): reports the bytes written; non-zero stops the transfer.
int Progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto& a = *static_cast<Answer*>(user);
  if (a.bytes && *a.bytes && !(*a.bytes)(a.written)) {
    a.write_error = Cancelled("stopped before it finished");
    return 1;
  }
  return 0;
}

// MLflow's error body: {"error_code": "...", "message": "..."}.
std::string MlflowError(const std::string& body) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(body).get(root) != simdjson::SUCCESS) return "";
  std::string_view code, message;
  std::string out;
  if (root["error_code"].get_string().get(code) == simdjson::SUCCESS) out += code;
  if (root["message"].get_string().get(message) == simdjson::SUCCESS) {
    out += (out.empty() ? "" : ": ") + std::string(message.substr(0, 500));
  }
  return out;
}

Status HttpError(long status, const std::string& body, const std::string& what) {
  std::string detail = "HTTP " + std::to_string(status);
  if (const std::string e = MlflowError(body); !e.empty()) detail += " " + e;
  if (status == 401 || status == 403) {
    return PermissionDenied(what + ": access denied (" + detail +
                            "); check MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME and "
                            "MLFLOW_TRACKING_PASSWORD");
  }
  if (status == 404) return NotFound(what + ": not found (" + detail + ")");
  if (RetryableHttpStatus(status)) return Unavailable(what + ": the server answered " + detail);
  return FailedPrecondition(what + ": the server answered " + detail);
}

}  // namespace

StatusOr<MlflowSettings> ResolveMlflowSettings(
    std::string_view uri, const std::function<std::optional<std::string>(std::string_view)>& get) {
  const RepositoryLocation location = ParseRepositoryLocation(uri);
  // A URI with userinfo may hold a password: it is never repeated (as
  // NormalizeEndpoint does for S3), since these messages reach the log.
  const std::string quoted =
      uri.find('@') == std::string_view::npos ? "'" + std::string(uri) + "'" : "(with userinfo)";
  constexpr std::string_view kExpected =
      "; expected mlflow://HOST[:PORT][/PATH] (http) or mlflows://HOST[:PORT][/PATH] (https)";
  if (location.scheme != "mlflow" && location.scheme != "mlflows") {
    return InvalidArgument("model repository " + quoted + " is not an MLflow URI" +
                           std::string(kExpected));
  }
  const std::string rest = location.path.substr(location.scheme.size() + 3);
  const std::string host = rest.substr(0, rest.find('/'));
  if (host.empty() || host.find('@') != std::string::npos ||
      host.find_first_of("?#\\ ") != std::string::npos) {
    return InvalidArgument("model repository " + quoted +
                           ": expected a host (no user name or password in the URI: they come "
                           "from MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)" +
                           std::string(kExpected));
  }
  MlflowSettings settings;
  settings.base = (location.scheme == "mlflows" ? "https://" : "http://") + rest;
  auto env = [&get](std::string_view name) {
    auto value = get ? get(name) : std::nullopt;
    return value && !value->empty() ? *value : std::string();
  };
  settings.token = env("MLFLOW_TRACKING_TOKEN");
  settings.username = env("MLFLOW_TRACKING_USERNAME");
  settings.password = env("MLFLOW_TRACKING_PASSWORD");
  if (!settings.token.empty()) {
    settings.auth_source = "a bearer token (MLFLOW_TRACKING_TOKEN)";
  } else if (!settings.username.empty()) {
    if (settings.password.empty()) {
      return InvalidArgument(
          "MLFLOW_TRACKING_USERNAME is set without MLFLOW_TRACKING_PASSWORD; expected both");
    }
    settings.auth_source = "user '" + settings.username + "' (MLFLOW_TRACKING_USERNAME)";
  } else {
    settings.auth_source = "none";
  }
  return settings;
}

MlflowClient::MlflowClient(MlflowSettings settings, RetryPolicy retry)
    : settings_(std::move(settings)), retry_(retry) {}

MlflowClient::~MlflowClient() = default;

StatusOr<std::unique_ptr<MlflowClient>> MlflowClient::Create(MlflowSettings settings,
                                                             RetryPolicy retry) {
  std::unique_ptr<MlflowClient> client(new MlflowClient(std::move(settings), retry));
  MM_ASSIGN_OR_RETURN(client->shared_, CurlShare::Create());
  return client;
}

namespace {

// One GET of `url` into `answer`, tried while tries last.
Status Perform(const MlflowSettings& s, const RetryPolicy& retry, CURLSH* share,
               const std::string& url, const std::string& what, Answer& answer) {
  for (int attempt = 1;; ++attempt) {
    std::unique_ptr<CURL, void (*)(CURL*)> easy(curl_easy_init(), curl_easy_cleanup);
    if (!easy) return Internal("cannot create a libcurl handle");
    answer.easy = easy.get();
    answer.buffer.clear();
    answer.written = 0;
    answer.write_error = OkStatus();
    CURL* e = easy.get();
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_SHARE, share);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 30L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &answer);
    if (answer.bytes) {
      curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
      curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, &Progress);
      curl_easy_setopt(e, CURLOPT_XFERINFODATA, &answer);
    }
    curl_slist* headers = nullptr;
    std::string bearer;
    if (!s.token.empty()) {
      bearer = "Authorization: Bearer " + s.token;
      headers = curl_slist_append(headers, bearer.c_str());
      curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    } else if (!s.username.empty()) {
      curl_easy_setopt(e, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
      curl_easy_setopt(e, CURLOPT_USERNAME, s.username.c_str());
      curl_easy_setopt(e, CURLOPT_PASSWORD, s.password.c_str());
    }
    const CURLcode code = curl_easy_perform(e);
    if (headers) curl_slist_free_all(headers);
    Status status;
    bool again = false;
    if ((code == CURLE_WRITE_ERROR || code == CURLE_ABORTED_BY_CALLBACK) &&
        !answer.write_error.ok()) {
      status = answer.write_error.WithContext(what);
      again = answer.write_error.code() == StatusCode::kUnavailable;
    } else if (code != CURLE_OK) {
      status = Unavailable(what + ": " + curl_easy_strerror(code) + " (" + s.base + ")");
      again = RetryableCurlCode(code);
    } else if (const long http = answer.Code(); http < 200 || http >= 300) {
      status = HttpError(http, answer.buffer, what);
      again = RetryableHttpStatus(http);
    } else if (answer.fd >= 0 && answer.written != answer.expected) {
      status = Unavailable(what + ": the connection ended after " + std::to_string(answer.written) +
                           " of " + std::to_string(answer.expected) + " bytes");
      again = true;
    }
    if (status.ok()) return status;
    if (!again || attempt >= retry.max_attempts) {
      return attempt > 1 ? status.WithContext("after " + std::to_string(attempt) + " tries")
                         : status;
    }
    if (answer.bytes && *answer.bytes && !(*answer.bytes)(0)) {
      return Cancelled(what + ": stopped before it finished");
    }
    std::this_thread::sleep_for(retry.Backoff(attempt));
  }
}

}  // namespace

StatusOr<std::string> MlflowClient::Get(std::string_view path_and_query, uint64_t max_bytes) const {
  const std::string path(path_and_query);
  Answer answer;
  answer.max_buffer = max_bytes;
  MM_RETURN_IF_ERROR(Perform(settings_, retry_, shared_->share, settings_.base + path,
                             "MLflow " + path.substr(0, path.find('?')), answer));
  if (answer.buffer.size() > max_bytes) {
    return InvalidArgument("MLflow " + path + ": the answer is larger than " +
                           std::to_string(max_bytes) + " bytes");
  }
  return std::move(answer.buffer);
}

Status MlflowClient::Download(std::string_view path, int fd, uint64_t size,
                              const std::function<bool(uint64_t)>& bytes) const {
  Answer answer;
  answer.fd = fd;
  answer.expected = size;
  answer.max_buffer = 1 << 20;
  answer.bytes = &bytes;
  return Perform(settings_, retry_, shared_->share, settings_.base + std::string(path),
                 "MLflow artifact " + std::string(path), answer);
}

}  // namespace mm
