#include "ctl/http_client.h"

#include <curl/curl.h>
#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <mutex>

namespace mm {

namespace {

Status InitCurlOnce() {
  static std::once_flag once;
  static CURLcode code = CURLE_OK;
  std::call_once(once, [] { code = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (code != CURLE_OK) {
    return Internal(std::string("cannot initialize libcurl: ") + curl_easy_strerror(code));
  }
  return OkStatus();
}

size_t WriteBody(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

// Picks Inference-Header-Content-Length out of the reply's header lines.
size_t ReadHeader(char* data, size_t size, size_t count, void* user) {
  const size_t n = size * count;
  std::string_view line(data, n);
  constexpr std::string_view kName = "inference-header-content-length:";
  if (line.size() > kName.size()) {
    bool match = true;
    for (size_t i = 0; i < kName.size() && match; ++i) {
      match = std::tolower(static_cast<unsigned char>(line[i])) == kName[i];
    }
    if (match) {
      size_t value = 0;
      bool digits = false;
      for (const char c : line.substr(kName.size())) {
        if (c >= '0' && c <= '9') {
          value = value * 10 + static_cast<size_t>(c - '0');
          digits = true;
        } else if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
          digits = false;
          break;
        }
      }
      if (digits) static_cast<HttpResponse*>(user)->header_length = value;
    }
  }
  return n;
}

int CheckCancel(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* cancel = static_cast<const volatile std::sig_atomic_t*>(user);
  return *cancel != 0 ? 1 : 0;
}

bool ConnectFailure(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
      return true;
    default:
      return false;
  }
}

StatusCode CodeForHttpStatus(long status) {
  switch (status) {
    case 400:
    case 405:
      return StatusCode::kInvalidArgument;
    case 401:
      return StatusCode::kUnauthenticated;
    case 403:
      return StatusCode::kPermissionDenied;
    case 404:
      return StatusCode::kNotFound;
    case 409:
      return StatusCode::kAlreadyExists;
    case 413:
      return StatusCode::kPayloadTooLarge;
    case 429:
      return StatusCode::kResourceExhausted;
    case 501:
      return StatusCode::kUnimplemented;
    case 503:
      return StatusCode::kUnavailable;
    case 504:
      return StatusCode::kDeadlineExceeded;
    default:
      return StatusCode::kInternal;
  }
}

}  // namespace

Status HttpErrorStatus(long status, std::string_view body) {
  const StatusCode code = CodeForHttpStatus(status);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::string_view message;
  if (!parser.parse(body.data(), body.size()).get(doc) && !doc["error"].get(message) &&
      !message.empty()) {
    return Status(code, std::string(message));
  }
  std::string text = "HTTP " + std::to_string(status);
  std::string_view start = body.substr(0, 200);
  while (!start.empty() && std::isspace(static_cast<unsigned char>(start.back()))) {
    start.remove_suffix(1);
  }
  if (!start.empty()) {
    text += ": ";
    text += start;
    if (body.size() > start.size() && start.size() == 200) text += "…";
  }
  return Status(code, std::move(text));
}

StatusOr<std::unique_ptr<HttpClient>> HttpClient::Create(HttpClientOptions options) {
  if (options.url.empty()) return InvalidArgument("the server URL is empty");
  MM_RETURN_IF_ERROR(InitCurlOnce());
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return Internal("cannot create a libcurl handle");
  while (options.url.size() > 1 && options.url.back() == '/') options.url.pop_back();
  return std::unique_ptr<HttpClient>(new HttpClient(std::move(options), curl));
}

HttpClient::HttpClient(HttpClientOptions options, void* curl)
    : options_(std::move(options)), curl_(curl) {}

HttpClient::~HttpClient() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

StatusOr<HttpResponse> HttpClient::Get(std::string_view path) {
  return Perform(false, path, {}, std::nullopt);
}

StatusOr<HttpResponse> HttpClient::Post(std::string_view path, std::string_view body,
                                        std::optional<size_t> header_length) {
  return Perform(true, path, body, header_length);
}

StatusOr<HttpResponse> HttpClient::GetChecked(std::string_view path) {
  MM_ASSIGN_OR_RETURN(HttpResponse r, Get(path));
  if (r.status >= 400) return HttpErrorStatus(r.status, r.body);
  return r;
}

StatusOr<HttpResponse> HttpClient::PostChecked(std::string_view path, std::string_view body,
                                               std::optional<size_t> header_length) {
  MM_ASSIGN_OR_RETURN(HttpResponse r, Post(path, body, header_length));
  if (r.status >= 400) return HttpErrorStatus(r.status, r.body);
  return r;
}

StatusOr<HttpResponse> HttpClient::Perform(bool post, std::string_view path, std::string_view body,
                                           std::optional<size_t> header_length) {
  CURL* curl = static_cast<CURL*>(curl_);
  curl_easy_reset(curl);  // keeps the connection cache
  const std::string url = options_.url + std::string(path);
  HttpResponse response;
  char error[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &WriteBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &ReadHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  if (options_.timeout_s > 0) {
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(std::max(1.0, options_.timeout_s * 1000)));
  }
  if (options_.cancel != nullptr) {
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &CheckCancel);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, const_cast<std::sig_atomic_t*>(options_.cancel));
  }
  if (!options_.cacert.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options_.cacert.c_str());
  if (options_.insecure) {
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  curl_slist* headers = nullptr;
  std::string authorization;
  if (!options_.api_key.empty()) {
    authorization = "Authorization: Bearer " + options_.api_key;
    headers = curl_slist_append(headers, authorization.c_str());
  }
  std::string length_header;
  if (post) {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
    if (header_length) {
      length_header = "Inference-Header-Content-Length: " + std::to_string(*header_length);
      headers = curl_slist_append(headers, length_header.c_str());
      headers = curl_slist_append(headers, "Content-Type: application/octet-stream");
    } else {
      headers = curl_slist_append(headers, "Content-Type: application/json");
    }
  }
  if (headers != nullptr) curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  const CURLcode code = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  if (!authorization.empty()) std::fill(authorization.begin(), authorization.end(), '\0');
  if (code == CURLE_ABORTED_BY_CALLBACK) return Cancelled("request to " + url + " cancelled");
  if (code != CURLE_OK) {
    const std::string what = error[0] != '\0' ? error : curl_easy_strerror(code);
    if (ConnectFailure(code)) {
      return Unavailable("cannot reach the server at " + options_.url + ": " + what);
    }
    return Unavailable("request to " + url + " failed: " + what);
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

}  // namespace mm
