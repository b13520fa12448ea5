#include "repository/http_common.h"

#include <curl/curl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <string>

namespace mm {

Status InitCurl() {
  static const CURLcode init = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (init != CURLE_OK) {
    return Internal(std::string("cannot initialize libcurl: ") + curl_easy_strerror(init));
  }
  return OkStatus();
}

namespace {

void LockShare(CURL*, curl_lock_data data, curl_lock_access, void* user) {
  static_cast<CurlShare*>(user)->locks[data].lock();
}

void UnlockShare(CURL*, curl_lock_data data, void* user) {
  static_cast<CurlShare*>(user)->locks[data].unlock();
}

}  // namespace

StatusOr<std::unique_ptr<CurlShare>> CurlShare::Create() {
  MM_RETURN_IF_ERROR(InitCurl());
  auto shared = std::make_unique<CurlShare>();
  shared->share = curl_share_init();
  if (shared->share == nullptr) return Internal("cannot create a libcurl share handle");
  curl_share_setopt(shared->share, CURLSHOPT_LOCKFUNC, &LockShare);
  curl_share_setopt(shared->share, CURLSHOPT_UNLOCKFUNC, &UnlockShare);
  curl_share_setopt(shared->share, CURLSHOPT_USERDATA, shared.get());
  curl_share_setopt(shared->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(shared->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
  return shared;
}

CurlShare::~CurlShare() {
  if (share) curl_share_cleanup(share);
}

Status WriteFileAt(int fd, const char* data, size_t size, uint64_t offset) {
  for (size_t done = 0; done < size;) {
    const ssize_t w = pwrite(fd, data + done, size - done, static_cast<off_t>(offset + done));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      const int err = errno;
      return err == ENOSPC || err == EDQUOT
                 ? ResourceExhausted(std::string("the disk is full (") + std::strerror(err) + ")")
                 : Internal(std::string("cannot write the file: ") + std::strerror(err));
    }
    done += static_cast<size_t>(w);
  }
  return OkStatus();
}

bool RetryableCurlCode(int code) {
  switch (static_cast<CURLcode>(code)) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

bool RetryableHttpStatus(long status) {
  return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
         status == 504;
}

std::string UriEncode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::chrono::milliseconds RetryPolicy::Backoff(int attempt) const {
  auto wait = first_backoff;
  for (int i = 1; i < attempt && wait < max_backoff; ++i) wait *= 2;
  return std::min(wait, max_backoff);
}

}  // namespace mm
