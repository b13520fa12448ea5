// Inside the S3 client (s3_client.cc): how a download is split into ranged
// GETs, and the MD5 check of objects whose ETag is their MD5, computed while
// their parts still arrive. Not a door: src/repository/s3 only.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/thread_annotations.h"
#include "repository/s3/s3_client.h"

namespace mm::s3_internal {

// Whether an ETag has the form of an object's MD5: 32 lower-case hex
// digits (a multipart upload's ETag has a "-N" suffix).
bool IsMd5Etag(std::string_view etag);

// One byte range of an object, fetched by one GET.
struct Span {
  uint64_t offset = 0;
  uint64_t length = 0;
};

// The ranges `o` is fetched in: `part_bytes` each (boto3's layout).
std::vector<Span> SpansOf(const S3Object& o, uint64_t part_bytes);

class OrderedMd5;

// Hashes the downloaded parts of the objects whose ETag is an MD5 on a
// thread of its own, so that reading a part back and hashing it never stops
// the transfers (a 16 MiB part costs ~25-40 ms of MD5 here: done on the
// transfer thread, each wave of parallel parts waited for the hashing of the
// wave before). A Download makes one when it has such an object.
//
// An object's parts complete in any order; they are hashed in order, each
// as soon as every part before it is done, read back from the file (the
// page cache holds it).
//
// The transfer thread reports finished parts (PartDone) and collects the
// finished digests (TakeDigests); Restart forgets an object's hashing for a
// new download of it, which only happens once its digest was taken (no part
// of it is queued then). Every method is for the one transfer thread; the
// worker's own thread only hashes. `targets` must outlive the worker.
class Md5Worker {
 public:
  // `md5[i]`: whether target i's MD5 is checked; parts are `part_bytes`.
  Md5Worker(const std::vector<S3Client::Target>& targets, std::vector<bool> md5,
            uint64_t part_bytes);
  // Stops the thread; parts still queued are not hashed.
  ~Md5Worker();
  Md5Worker(const Md5Worker&) = delete;
  Md5Worker& operator=(const Md5Worker&) = delete;

  void Restart(size_t target) MM_EXCLUDES(mu_);
  // Part `part` (of SpansOf) of `target` is in its file.
  void PartDone(size_t target, size_t part) MM_EXCLUDES(mu_);
  // Objects whose every part is hashed: (target, its digest in lower-case
  // hex, or the error).
  std::vector<std::pair<size_t, StatusOr<std::string>>> TakeDigests() MM_EXCLUDES(mu_);
  // Whether parts wait to be hashed, or digests to be taken.
  bool busy() MM_EXCLUDES(mu_);
  // Waits until a digest is ready, nothing is left to hash, or `timeout` passed.
  void Wait(std::chrono::milliseconds timeout) MM_EXCLUDES(mu_);

 private:
  void Run() MM_EXCLUDES(mu_);

  const std::vector<S3Client::Target>& targets_;
  const std::vector<bool> md5_;
  const uint64_t part_bytes_;
  Mutex mu_;
  CondVar wake_, done_;
  // A hasher is used by the thread without the lock; Restart replaces one
  // only when none of its parts is queued (see above).
  std::vector<std::unique_ptr<OrderedMd5>> hashers_ MM_GUARDED_BY(mu_);
  std::deque<std::pair<size_t, size_t>> queue_ MM_GUARDED_BY(mu_);
  std::vector<std::pair<size_t, StatusOr<std::string>>> digests_ MM_GUARDED_BY(mu_);
  size_t outstanding_ MM_GUARDED_BY(mu_) = 0;
  bool stop_ MM_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace mm::s3_internal
