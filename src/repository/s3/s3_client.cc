#include "repository/s3/s3_client.h"

#include "core/hex.h"
#include "repository/http_common.h"
#include "repository/s3/part_md5.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <zlib.h>

#include <algorithm>
#include <optional>
#include <thread>
#include <utility>

namespace mm {
namespace {

using Clock = std::chrono::steady_clock;

// The SHA-256 of an empty payload: every request here is a GET.
constexpr std::string_view kEmptyPayloadSha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
// A listing longer than this is refused (each object costs memory).
constexpr size_t kMaxListedObjects = 1'000'000;
// The largest listing page or error body read into memory.
constexpr uint64_t kMaxDocumentBytes = 64ull << 20;

// What a non-2xx answer means, for `what` ("s3://b/k", "listing s3://b/p").
Status HttpStatus(long status, std::string_view body, const std::string& what) {
  const S3Error error = ParseS3Error(body);
  std::string detail = "HTTP " + std::to_string(status);
  if (!error.code.empty()) detail += " " + error.code;
  if (!error.message.empty()) detail += ": " + error.message;
  if (status == 403) {
    return PermissionDenied(what + ": access denied (" + detail +
                            "); check the credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE) and that "
                            "they may read this bucket");
  }
  if (status == 404) {
    return NotFound(what + ": not found (" + detail + "); check the bucket and prefix");
  }
  if (status == 412) {
    return Unavailable(what + ": the object changed while it was fetched (" + detail +
                       "); the next scan sees its new version");
  }
  if (RetryableHttpStatus(status)) return Unavailable(what + ": the server answered " + detail);
  return FailedPrecondition(what + ": the server answered " + detail);
}

// One transfer: a request and what its answer goes into.
struct Transfer {
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string url;
  // Where the body goes: `file` at `offset` (a download), else `buffer`.
  int fd = -1;
  uint64_t offset = 0;
  uint64_t expected = 0;  // bytes of body a download expects
  bool ranged = false;
  uint64_t max_buffer = kMaxDocumentBytes;
  std::string buffer;                         // a document, or an error body of a download
  uint64_t written = 0;                       // body bytes written to the file
  std::string etag;                           // the answer's ETag header, unquoted
  std::string checksum_crc32;                 // its x-amz-checksum-crc32 header (base64)
  std::string checksum_type;                  // its x-amz-checksum-type header
  bool crc = false;                           // take the CRC32 of the body as it arrives
  uLong crc_value = 0;                        // of the body written so far (crc32 of nothing)
  Status write_error;                         // why the write callback stopped the transfer
  std::atomic<uint64_t>* received = nullptr;  // a download's shared progress counter

  ~Transfer() {
    if (headers) curl_slist_free_all(headers);
    if (easy) curl_easy_cleanup(easy);
  }
  long HttpCode() const {
    long code = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    return code;
  }
};

size_t WriteBody(char* data, size_t size, size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const size_t n = size * count;
  const long code = t.HttpCode();
  const bool success = code == 200 || code == 206;
  if (t.fd < 0 || !success) {
    if (t.buffer.size() + n > t.max_buffer) {
      t.write_error =
          InvalidArgument("the answer is larger than " + std::to_string(t.max_buffer) + " bytes");
      return CURL_WRITEFUNC_ERROR;
    }
    t.buffer.append(data, n);
    return n;
  }
  if (t.ranged != (code == 206)) {
    t.write_error = FailedPrecondition(
        code == 200 ? "the server ignored a Range request (HTTP 200 instead of 206); expected an "
                      "S3-compatible server that serves byte ranges"
                    : "the server answered a whole-object request with HTTP 206");
    return CURL_WRITEFUNC_ERROR;
  }
  if (t.written + n > t.expected) {
    t.write_error = Unavailable("the server sent more than the " + std::to_string(t.expected) +
                                " bytes expected");
    return CURL_WRITEFUNC_ERROR;
  }
  t.write_error = WriteFileAt(t.fd, data, n, t.offset + t.written);
  if (!t.write_error.ok()) return CURL_WRITEFUNC_ERROR;
  t.written += n;
  if (t.crc) t.crc_value = crc32_z(t.crc_value, reinterpret_cast<const Bytef*>(data), n);
  if (t.received) t.received->fetch_add(n, std::memory_order_relaxed);
  return n;
}

// The value of header `name` (lower case, with the colon) in `line`, trimmed;
// nullopt when the line is another header.
std::optional<std::string_view> HeaderValue(std::string_view line, std::string_view name) {
  if (line.size() < name.size() || strncasecmp(line.data(), name.data(), name.size()) != 0) {
    return std::nullopt;
  }
  line.remove_prefix(name.size());
  while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n' || line.back() == ' ')) {
    line.remove_suffix(1);
  }
  return line;
}

size_t ReadHeader(char* data, size_t size, size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const std::string_view line(data, size * count);
  if (auto etag = HeaderValue(line, "etag:")) {
    if (etag->size() >= 2 && etag->front() == '"' && etag->back() == '"') {
      etag = etag->substr(1, etag->size() - 2);
    }
    t.etag = *etag;
  } else if (auto crc = HeaderValue(line, "x-amz-checksum-crc32:")) {
    t.checksum_crc32 = crc->substr(0, 64);
  } else if (auto type = HeaderValue(line, "x-amz-checksum-type:")) {
    t.checksum_type = type->substr(0, 64);
  }
  return size * count;
}

// The CRC32 a store gives in base64 ("g2mFVg=="): nullopt for anything
// else (a composite checksum of parts, "...==-3", is not the object's).
std::optional<uint32_t> DecodeCrc32(std::string_view base64) {
  if (base64.size() != 8 || base64.substr(6) != "==") return std::nullopt;
  unsigned char out[8] = {};
  const std::string text(base64);
  if (EVP_DecodeBlock(out, reinterpret_cast<const unsigned char*>(text.data()), 8) != 6) {
    return std::nullopt;
  }
  return (uint32_t{out[0]} << 24) | (uint32_t{out[1]} << 16) | (uint32_t{out[2]} << 8) |
         uint32_t{out[3]};
}

std::string Hex32(uint32_t v) {
  char text[9];
  std::snprintf(text, sizeof(text), "%08x", v);
  return text;
}

}  // namespace

std::string S3Uri(std::string_view bucket, std::string_view key) {
  return "s3://" + std::string(bucket) + "/" + std::string(key);
}

S3Client::S3Client(Options options) : options_(std::move(options)) {}

S3Client::~S3Client() = default;

StatusOr<std::unique_ptr<S3Client>> S3Client::Create(Options options) {
  if (options.max_attempts < 1 || options.max_parallel < 1 || options.part_bytes < 1024) {
    return InvalidArgument(
        "S3 client options: expected max_attempts >= 1, max_parallel >= 1 and part_bytes >= "
        "1024");
  }
  std::unique_ptr<S3Client> client(new S3Client(std::move(options)));
  MM_ASSIGN_OR_RETURN(client->shared_, CurlShare::Create());
  return client;
}

namespace {

// Sets up `t` for a GET of `path_and_query` (already encoded).
Status Prepare(Transfer& t, const S3Client::Options& o, CURLSH* share,
               const std::string& path_and_query, const std::string& range,
               const std::string& if_match, bool head = false) {
  t.easy = curl_easy_init();
  if (t.easy == nullptr) return Internal("cannot create a libcurl handle");
  t.url = o.settings.endpoint + path_and_query;
  CURL* e = t.easy;
  curl_easy_setopt(e, CURLOPT_URL, t.url.c_str());
  curl_easy_setopt(e, CURLOPT_SHARE, share);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(o.connect_timeout.count()));
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, static_cast<long>(o.stall_timeout.count()));
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  // Large reads: a 16 KiB buffer (the default) costs a poll, a recv and a
  // pwrite per 16 KiB of a model.
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 512L * 1024);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &WriteBody);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &ReadHeader);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
  const AwsCredentials& c = o.settings.credentials;
  if (!c.anonymous()) {
    const std::string provider = "aws:amz:" + o.settings.region + ":s3";
    curl_easy_setopt(e, CURLOPT_AWS_SIGV4, provider.c_str());
    curl_easy_setopt(e, CURLOPT_USERNAME, c.access_key_id.c_str());
    curl_easy_setopt(e, CURLOPT_PASSWORD, c.secret_access_key.c_str());
  }
  auto add = [&t](const std::string& header) {
    curl_slist* next = curl_slist_append(t.headers, header.c_str());
    if (next) t.headers = next;
    return next != nullptr;
  };
  bool ok = add("x-amz-content-sha256: " + std::string(kEmptyPayloadSha256));
  if (!c.session_token.empty()) ok = ok && add("x-amz-security-token: " + c.session_token);
  if (!range.empty()) ok = ok && add("Range: bytes=" + range);
  if (!if_match.empty()) ok = ok && add("If-Match: \"" + if_match + "\"");
  if (head) {
    // A HEAD for the object's stored checksum.
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    ok = ok && add("x-amz-checksum-mode: ENABLED");
  }
  if (!ok) return Internal("out of memory building a request");
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.headers);
  return OkStatus();
}

// The outcome of a finished transfer, for `what`; `retry` says whether
// another try might succeed.
Status Outcome(Transfer& t, CURLcode code, const std::string& what, bool* retry) {
  *retry = false;
  if (code == CURLE_WRITE_ERROR && !t.write_error.ok()) {
    *retry = t.write_error.code() == StatusCode::kUnavailable;
    return t.write_error.WithContext(what);
  }
  if (code != CURLE_OK) {
    *retry = RetryableCurlCode(code);
    return Unavailable(what + ": " + curl_easy_strerror(code) + " (" +
                       t.url.substr(0, t.url.find('?')) + ")");
  }
  const long status = t.HttpCode();
  if (status < 200 || status >= 300) {
    *retry = RetryableHttpStatus(status);
    return HttpStatus(status, t.buffer, what);
  }
  return OkStatus();
}

std::chrono::milliseconds Backoff(const S3Client::Options& o, int attempt) {
  return RetryPolicy{o.max_attempts, o.first_backoff, o.max_backoff}.Backoff(attempt);
}

}  // namespace

StatusOr<std::vector<S3Object>> S3Client::List(std::string_view bucket,
                                               std::string_view prefix) const {
  std::vector<S3Object> objects;
  std::string token;
  const std::string what = "listing " + S3Uri(bucket, prefix);
  for (;;) {
    // Parameters in SigV4's canonical (sorted) order, fully encoded.
    std::string query = "/" + UriEncode(bucket, false) + "?";
    if (!token.empty()) query += "continuation-token=" + UriEncode(token, false) + "&";
    query += "list-type=2&prefix=" + UriEncode(prefix, false);
    std::optional<S3ListPage> page;
    for (int attempt = 1;; ++attempt) {
      Transfer t;
      MM_RETURN_IF_ERROR(Prepare(t, options_, shared_->share, query, "", ""));
      const CURLcode code = curl_easy_perform(t.easy);
      bool retry = false;
      Status status = Outcome(t, code, what, &retry);
      if (status.ok()) {
        auto parsed = ParseS3ListPage(t.buffer);
        if (!parsed.ok()) return parsed.status().WithContext(what);
        page = std::move(*parsed);
        break;
      }
      if (!retry || attempt >= options_.max_attempts) {
        return attempt > 1 ? status.WithContext("after " + std::to_string(attempt) + " tries")
                           : status;
      }
      std::this_thread::sleep_for(Backoff(options_, attempt));
    }
    for (S3Object& object : page->objects) objects.push_back(std::move(object));
    if (objects.size() > kMaxListedObjects) {
      return FailedPrecondition(what + ": more than " + std::to_string(kMaxListedObjects) +
                                " objects under the prefix; expected a model repository (give "
                                "each repository its own prefix)");
    }
    if (!page->truncated) break;
    if (page->next_continuation_token == token) {
      return FailedPrecondition(what + ": the server repeated a continuation token");
    }
    token = std::move(page->next_continuation_token);
  }
  return objects;
}

StatusOr<std::string> S3Client::Get(std::string_view bucket, std::string_view key,
                                    uint64_t max_bytes) const {
  const std::string what = S3Uri(bucket, key);
  const std::string path = "/" + UriEncode(bucket, false) + "/" + UriEncode(key, true);
  for (int attempt = 1;; ++attempt) {
    Transfer t;
    t.max_buffer = std::max<uint64_t>(max_bytes, 1 << 16);  // room for an error body
    MM_RETURN_IF_ERROR(Prepare(t, options_, shared_->share, path, "", ""));
    const CURLcode code = curl_easy_perform(t.easy);
    bool retry = false;
    Status status = Outcome(t, code, what, &retry);
    if (status.ok()) {
      if (t.buffer.size() > max_bytes) {
        return InvalidArgument(what + " is larger than " + std::to_string(max_bytes) +
                               " bytes; expected at most that");
      }
      return std::move(t.buffer);
    }
    if (!retry || attempt >= options_.max_attempts) {
      return attempt > 1 ? status.WithContext("after " + std::to_string(attempt) + " tries")
                         : status;
    }
    std::this_thread::sleep_for(Backoff(options_, attempt));
  }
}

namespace {

using s3_internal::IsMd5Etag;
using s3_internal::Md5Worker;
using s3_internal::Span;
using s3_internal::SpansOf;

struct Part {
  size_t target = 0;
  size_t index = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  int attempt = 1;
  Clock::time_point not_before;
};

}  // namespace

StatusOr<std::optional<uint32_t>> S3Client::StoredCrc32(std::string_view bucket,
                                                        const S3Object& object) const {
  const std::string what = S3Uri(bucket, object.key) + " (its stored checksum)";
  const std::string path = "/" + UriEncode(bucket, false) + "/" + UriEncode(object.key, true);
  for (int attempt = 1;; ++attempt) {
    Transfer t;
    MM_RETURN_IF_ERROR(Prepare(t, options_, shared_->share, path, "", object.etag, true));
    const CURLcode code = curl_easy_perform(t.easy);
    bool retry = false;
    Status status = Outcome(t, code, what, &retry);
    if (status.ok()) {
      // A composite checksum (a CRC32 of the parts' CRC32s) is not the
      // object's. Stores that do not say which (moto, older ones) give a
      // full-object one only for a single-part upload.
      const bool multipart = object.etag.find('-') != std::string::npos;
      if (t.checksum_type.empty() ? multipart : t.checksum_type != "FULL_OBJECT") {
        return std::nullopt;
      }
      return DecodeCrc32(t.checksum_crc32);
    }
    if (!retry || attempt >= options_.max_attempts) {
      return attempt > 1 ? status.WithContext("after " + std::to_string(attempt) + " tries")
                         : status;
    }
    std::this_thread::sleep_for(Backoff(options_, attempt));
  }
}

Status S3Client::Download(std::string_view bucket, const std::vector<Target>& targets,
                          const Progress& progress) const {
  const uint64_t part_bytes = options_.part_bytes;
  // How each object is checked beyond its size: the CRC32 the store keeps
  // (taken part by part as the bytes arrive, combined at the end: nothing
  // read back, nothing in order), else the MD5 an ETag is (in order, on a
  // thread of its own: ~750 MB/s on one core, the slowest part of a fetch).
  // Objects fetched in one GET keep the MD5: a HEAD would cost more.
  std::vector<std::optional<uint32_t>> crc(targets.size());
  std::vector<bool> md5(targets.size(), false);
  bool any_md5 = false;
  for (size_t i = 0; i < targets.size(); ++i) {
    const S3Object& o = targets[i].object;
    if (o.crc32 && o.size > part_bytes) {
      auto stored = StoredCrc32(bucket, o);
      if (stored.ok()) {
        crc[i] = *stored;
      } else if (stored.status().code() == StatusCode::kUnavailable ||
                 stored.status().code() == StatusCode::kPermissionDenied ||
                 stored.status().code() == StatusCode::kNotFound) {
        return stored.status();  // its GETs would fail the same way
      } else {
        spdlog::warn("{}; checking it without", stored.status().message());  // a store's quirk
      }
    }
    md5[i] = !crc[i] && IsMd5Etag(o.etag) && o.size > 0;
    any_md5 = any_md5 || md5[i];
  }
  std::deque<Part> pending;
  std::vector<int> object_attempt(targets.size(), 1);  // whole-object tries (corruption)
  // Per CRC-checked object: each part's CRC32, and how many are still to come.
  std::vector<std::vector<uLong>> part_crcs(targets.size());
  std::vector<size_t> crc_parts_left(targets.size(), 0);
  auto queue_all = [&](size_t i, int attempt, Clock::time_point not_before) {
    const std::vector<Span> spans = SpansOf(targets[i].object, part_bytes);
    for (size_t p = 0; p < spans.size(); ++p) {
      pending.push_back(Part{i, p, spans[p].offset, spans[p].length, attempt, not_before});
    }
    if (crc[i]) {
      part_crcs[i].assign(spans.size(), 0);
      crc_parts_left[i] = spans.size();
    }
  };
  for (size_t i = 0; i < targets.size(); ++i) queue_all(i, 1, Clock::time_point());
  // Empty objects need no request; an empty MD5 must still match.
  for (size_t i = 0; i < targets.size(); ++i) {
    const S3Object& o = targets[i].object;
    if (o.size == 0 && IsMd5Etag(o.etag) && o.etag != "d41d8cd98f00b204e9800998ecf8427e") {
      return Unavailable(S3Uri(bucket, o.key) +
                         " is corrupt: it is empty, but its ETag is the MD5 of other bytes");
    }
  }
  std::optional<Md5Worker> md5_worker;
  if (any_md5) md5_worker.emplace(targets, md5, part_bytes);
  if (pending.empty()) return OkStatus();

  std::unique_ptr<CURLM, void (*)(CURLM*)> multi(curl_multi_init(),
                                                 [](CURLM* m) { curl_multi_cleanup(m); });
  if (!multi) return Internal("cannot create a libcurl multi handle");
  std::atomic<uint64_t> received{0};
  struct Active {
    std::unique_ptr<Transfer> transfer;
    Part part;
  };
  std::vector<Active> active;
  Status failure;
  uint64_t reported = UINT64_MAX;
  constexpr auto kHeartbeat = std::chrono::seconds(1);
  auto last_report = Clock::now();
  const std::string bucket_path = "/" + UriEncode(bucket, false) + "/";

  auto start = [&](Part part) -> Status {
    const Target& target = targets[part.target];
    auto t = std::make_unique<Transfer>();
    t->fd = target.fd;
    t->offset = part.offset;
    t->expected = part.length;
    t->ranged = part.length != target.object.size;
    t->received = &received;
    t->crc = crc[part.target].has_value();
    t->max_buffer = 1 << 20;
    const std::string range = t->ranged ? std::to_string(part.offset) + "-" +
                                              std::to_string(part.offset + part.length - 1)
                                        : "";
    MM_RETURN_IF_ERROR(Prepare(*t, options_, shared_->share,
                               bucket_path + UriEncode(target.object.key, true), range,
                               target.object.etag));
    if (curl_multi_add_handle(multi.get(), t->easy) != CURLM_OK) {
      return Internal("cannot start a transfer (libcurl multi)");
    }
    active.push_back(Active{std::move(t), part});
    return OkStatus();
  };

  // An object that arrived corrupt comes again, whole, while tries last.
  auto Refetch = [&](size_t index, const Status& corrupt) -> Status {
    const int attempt = ++object_attempt[index];
    if (attempt > options_.max_attempts) {
      return corrupt.WithContext("after " + std::to_string(options_.max_attempts) + " tries");
    }
    spdlog::warn("{}; fetching it again (try {} of {})", corrupt.message(), attempt,
                 options_.max_attempts);
    received.fetch_sub(targets[index].object.size, std::memory_order_relaxed);
    if (md5[index]) md5_worker->Restart(index);
    queue_all(index, attempt, Clock::now() + Backoff(options_, attempt - 1));
    return OkStatus();
  };

  while ((!pending.empty() || !active.empty() || (md5_worker && md5_worker->busy())) &&
         failure.ok()) {
    const auto now = Clock::now();
    // Start what may start: parts whose backoff has passed, up to the cap.
    for (size_t scanned = pending.size();
         scanned > 0 && static_cast<int>(active.size()) < options_.max_parallel; --scanned) {
      Part part = pending.front();
      pending.pop_front();
      if (part.not_before > now) {
        pending.push_back(part);
        continue;
      }
      failure = start(part);
      if (!failure.ok()) break;
    }
    if (!failure.ok()) break;
    int running = 0;
    curl_multi_perform(multi.get(), &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi.get(), &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      auto it = std::find_if(active.begin(), active.end(),
                             [&](const Active& a) { return a.transfer->easy == msg->easy_handle; });
      if (it == active.end()) continue;
      Active done = std::move(*it);
      active.erase(it);
      curl_multi_remove_handle(multi.get(), done.transfer->easy);
      Transfer& t = *done.transfer;
      const Target& target = targets[done.part.target];
      const std::string what = S3Uri(bucket, target.object.key);
      bool retry = false;
      Status status = Outcome(t, msg->data.result, what, &retry);
      if (status.ok() && t.written != t.expected) {
        status = Unavailable(what + ": the connection ended after " + std::to_string(t.written) +
                             " of " + std::to_string(t.expected) + " bytes");
        retry = true;
      }
      if (status.ok() && !t.etag.empty() && t.etag != target.object.etag) {
        status =
            Unavailable(what + ": the object changed while it was fetched (ETag " + t.etag +
                        ", listed " + target.object.etag + "); the next scan sees its new version");
      }
      if (status.ok()) {
        const size_t i = done.part.target;
        if (md5_worker && md5[i]) md5_worker->PartDone(i, done.part.index);
        if (crc[i]) {
          part_crcs[i][done.part.index] = t.crc_value;
          if (--crc_parts_left[i] == 0) {
            const std::vector<Span> spans = SpansOf(target.object, part_bytes);
            uLong whole = part_crcs[i][0];
            for (size_t p = 1; p < spans.size(); ++p) {
              whole =
                  crc32_combine64(whole, part_crcs[i][p], static_cast<z_off64_t>(spans[p].length));
            }
            if (whole != *crc[i]) {
              failure = Refetch(i, Unavailable(what + " arrived corrupt: its CRC32 is " +
                                               Hex32(static_cast<uint32_t>(whole)) +
                                               ", the store's checksum says " + Hex32(*crc[i])));
              if (!failure.ok()) break;
            }
          }
        }
        continue;
      }
      received.fetch_sub(t.written, std::memory_order_relaxed);
      if (!retry || done.part.attempt >= options_.max_attempts) {
        failure = done.part.attempt > 1
                      ? status.WithContext("after " + std::to_string(done.part.attempt) + " tries")
                      : status;
        break;
      }
      Part again = done.part;
      again.not_before = Clock::now() + Backoff(options_, again.attempt);
      ++again.attempt;
      pending.push_back(again);
    }
    if (!failure.ok()) break;
    // The objects hashed meanwhile: one that arrived corrupt comes again,
    // whole, while tries last.
    if (md5_worker) {
      for (auto& [index, digest] : md5_worker->TakeDigests()) {
        const Target& target = targets[index];
        const std::string what = S3Uri(bucket, target.object.key);
        if (!digest.ok()) {
          failure = digest.status().WithContext(what);
          break;
        }
        if (*digest == target.object.etag) continue;
        failure = Refetch(index, Unavailable(what + " arrived corrupt: its MD5 is " + *digest +
                                             ", its ETag says " + target.object.etag));
        if (!failure.ok()) break;
      }
      if (!failure.ok()) break;
    }
    // Also while nothing arrives (a stalled server), so that the caller can
    // show a download that is alive but not moving.
    const uint64_t now_received = received.load(std::memory_order_relaxed);
    if (progress && (now_received != reported || Clock::now() - last_report >= kHeartbeat)) {
      reported = now_received;
      last_report = Clock::now();
      if (!progress(now_received)) {
        failure = Cancelled("stopped before it finished");
        break;
      }
    }
    if (!active.empty()) {
      curl_multi_poll(multi.get(), nullptr, 0, 100, nullptr);
    } else if (pending.empty()) {
      if (md5_worker) md5_worker->Wait(std::chrono::milliseconds(100));  // only hashing is left
    } else if (!pending.empty()) {
      // Every part waits for its backoff.
      auto first =
          std::min_element(pending.begin(), pending.end(), [](const Part& a, const Part& b) {
            return a.not_before < b.not_before;
          })->not_before;
      std::this_thread::sleep_until(first);
    }
  }
  for (Active& a : active) curl_multi_remove_handle(multi.get(), a.transfer->easy);
  return failure;
}

}  // namespace mm
