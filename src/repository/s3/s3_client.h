// A small client for the S3 API over libcurl: list a prefix, get a small
// object, download objects in parallel ranged parts. Requests are signed with
// AWS Signature V4 by libcurl itself (CURLOPT_AWS_SIGV4), with path-style
// addressing (endpoint/bucket/key) so that MinIO, Ceph, moto and AWS all
// answer; anonymous when there are no credentials.
//
// Errors say which object, what the server answered (HTTP status, S3 error
// code and message) and what to check. Codes: 403 -> PERMISSION_DENIED,
// 404 -> NOT_FOUND, a full disk -> RESOURCE_EXHAUSTED, everything a retry
// might fix (no connection, a connection cut, 5xx, 429, a corrupt transfer)
// -> UNAVAILABLE after the retries are spent. Retries back off exponentially.
// No message holds a credential.
//
// Thread-safety: every method may be called concurrently from several
// threads; each call blocks its caller (loader threads, never the request
// path). Connections and DNS answers are shared between calls.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "repository/http_common.h"
#include "repository/s3/aws_config.h"
#include "repository/s3/s3_xml.h"

namespace mm {

class S3Client {
 public:
  struct Options {
    S3Settings settings;
    // Tries per request (and per part of a download), the first included.
    int max_attempts = 5;
    // The wait before the second try; it doubles for each next one, up to max_backoff.
    std::chrono::milliseconds first_backoff{200};
    std::chrono::milliseconds max_backoff{5000};
    // Objects larger than part_bytes download in ranged parts, up to
    // max_parallel transfers at once across all objects of one Download
    // (boto3's defaults: 8 MiB parts, 10 at once).
    uint64_t part_bytes = 8ull << 20;
    int max_parallel = 10;
    std::chrono::milliseconds connect_timeout{5000};
    // A transfer that receives nothing for this long is cut (and retried).
    std::chrono::seconds stall_timeout{30};
  };

  // INVALID_ARGUMENT for options out of range; INTERNAL when libcurl cannot start.
  static StatusOr<std::unique_ptr<S3Client>> Create(Options options);
  ~S3Client();
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  // Every object whose key starts with `prefix` (ListObjectsV2, all pages),
  // in the server's (lexicographic) order.
  StatusOr<std::vector<S3Object>> List(std::string_view bucket, std::string_view prefix) const;

  // The whole of a small object. INVALID_ARGUMENT when it is over `max_bytes`.
  StatusOr<std::string> Get(std::string_view bucket, std::string_view key,
                            uint64_t max_bytes) const;

  // One object to download into an open file (at offset 0, `object.size`
  // bytes; the caller sized it or not, and closes it).
  struct Target {
    S3Object object;
    int fd = -1;
  };
  // Called on the downloading thread with the bytes received so far (of all
  // targets; a retried part takes its bytes back), often (throttle in it),
  // and about once a second while nothing arrives. Returning false stops the
  // download: Download returns CANCELLED.
  using Progress = std::function<bool(uint64_t bytes_done)>;

  // Downloads every target, parts in parallel. Each object must still have
  // the listed ETag (If-Match; a changed object fails the download) and
  // arrives whole: its size is checked, and its content against the CRC32
  // the store keeps for it (listed with ChecksumAlgorithm CRC32, asked for
  // with a HEAD) or else against an ETag that is an MD5 (single-part
  // uploads; a multipart ETag "..-N" is not a digest). A corrupt object is
  // fetched again, whole, while tries last. On failure the files hold
  // partial data: the caller discards them.
  Status Download(std::string_view bucket, const std::vector<Target>& targets,
                  const Progress& progress) const;

  // The full-object CRC32 the store keeps for `object` (HEAD with
  // x-amz-checksum-mode; If-Match its ETag); nullopt when it gives none or a
  // composite one (of an upload's parts: x-amz-checksum-type COMPOSITE, or no
  // type and a multipart ETag).
  StatusOr<std::optional<uint32_t>> StoredCrc32(std::string_view bucket,
                                                const S3Object& object) const;

  const Options& options() const { return options_; }

 private:
  explicit S3Client(Options options);

  const Options options_;
  std::unique_ptr<CurlShare> shared_;
};

// "s3://bucket/key" for messages.
std::string S3Uri(std::string_view bucket, std::string_view key);

}  // namespace mm
