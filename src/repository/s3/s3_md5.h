// How S3Client::Download cuts an object into ranged parts, and checks the
// MD5 of an object whose ETag is one while its parts arrive in any order (on
// a thread of its own). Internal to the repository room: s3_client.cc's.
#pragma once

#include <openssl/evp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/hex.h"
#include "core/status.h"
#include "repository/s3/s3_client.h"

namespace mm {

inline bool IsMd5Etag(std::string_view etag) {
  return etag.size() == 32 && std::all_of(etag.begin(), etag.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// One byte range of an object, fetched by one GET.
struct Span {
  uint64_t offset = 0;
  uint64_t length = 0;
};

// The ranges `o` is fetched in: `part_bytes` each (boto3's layout).
inline std::vector<Span> SpansOf(const S3Object& o, uint64_t part_bytes) {
  std::vector<Span> spans;
  for (uint64_t offset = 0; offset < o.size; offset += part_bytes) {
    spans.push_back({offset, std::min(part_bytes, o.size - offset)});
  }
  return spans;
}

// The MD5 of an object whose parts complete in any order: parts are hashed
// in order, each as soon as every part before it is done, read back from
// the file (the page cache holds it).
class OrderedMd5 {
 public:
  OrderedMd5(int fd, std::vector<Span> spans)
      : fd_(fd), spans_(std::move(spans)), done_(spans_.size(), false), ctx_(EVP_MD_CTX_new()) {
    if (ctx_) EVP_DigestInit_ex(ctx_, EVP_md5(), nullptr);
  }
  ~OrderedMd5() { EVP_MD_CTX_free(ctx_); }
  OrderedMd5(const OrderedMd5&) = delete;
  OrderedMd5& operator=(const OrderedMd5&) = delete;

  // Part `index` (spans_[index]) is complete.
  Status PartDone(size_t index) {
    done_[index] = true;
    while (next_ < done_.size() && done_[next_]) {
      MM_RETURN_IF_ERROR(Hash(spans_[next_].offset, spans_[next_].offset + spans_[next_].length));
      ++next_;
    }
    return OkStatus();
  }
  bool complete() const { return next_ == done_.size(); }
  // The digest in lower-case hex; call once every part is done.
  std::string Hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (!ctx_ || EVP_DigestFinal_ex(ctx_, digest, &length) != 1) return "";
    return LowerHex(digest, length);
  }

 private:
  // Hashes bytes [begin, end) of the file, mapped (no copy; `begin` is a
  // multiple of the part size, usually of the page size too), read when it
  // cannot be.
  Status Hash(uint64_t begin, uint64_t end) {
    if (!ctx_) return Internal("cannot create an MD5 context");
    if (end == begin) return OkStatus();
    // MAP_POPULATE maps the (cached) pages in one go: no fault per page.
    void* mapped = begin % 4096 == 0
                       ? mmap(nullptr, end - begin, PROT_READ, MAP_SHARED | MAP_POPULATE, fd_,
                              static_cast<off_t>(begin))
                       : MAP_FAILED;
    if (mapped != MAP_FAILED) {
      madvise(mapped, end - begin, MADV_SEQUENTIAL);
      EVP_DigestUpdate(ctx_, mapped, end - begin);
      munmap(mapped, end - begin);
      return OkStatus();
    }
    std::vector<char> buffer(std::min<uint64_t>(end - begin, 1 << 20));
    while (begin < end) {
      const ssize_t n = pread(fd_, buffer.data(), std::min<uint64_t>(buffer.size(), end - begin),
                              static_cast<off_t>(begin));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        return Internal(std::string("cannot read back a downloaded file: ") +
                        (n < 0 ? std::strerror(errno) : "it is shorter than written"));
      }
      EVP_DigestUpdate(ctx_, buffer.data(), static_cast<size_t>(n));
      begin += static_cast<uint64_t>(n);
    }
    return OkStatus();
  }

  const int fd_;
  const std::vector<Span> spans_;
  std::vector<bool> done_;
  size_t next_ = 0;
  EVP_MD_CTX* ctx_;
};

// Hashes the downloaded parts of the objects whose ETag is an MD5 on a
// thread of its own, so that reading a part back and hashing it never stops
// the transfers (a 16 MiB part costs ~25-40 ms of MD5 here: done on the
// transfer thread, each wave of parallel parts waited for the hashing of the
// wave before). A Download makes one when it has such an object.
//
// The transfer thread reports finished parts (PartDone) and collects the
// finished digests (TakeDigests); Restart forgets an object's hashing for a
// new download of it, which only happens once its digest was taken (no part
// of it is queued then).
class Md5Worker {
 public:
  // `md5[i]`: whether target i's MD5 is checked.
  Md5Worker(const std::vector<S3Client::Target>& targets, std::vector<bool> md5,
            uint64_t part_bytes)
      : targets_(targets), md5_(std::move(md5)), part_bytes_(part_bytes), hashers_(targets.size()) {
    for (size_t i = 0; i < targets.size(); ++i) Restart(i);
    thread_ = std::thread([this] { Run(); });
  }
  ~Md5Worker() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

  void Restart(size_t target) {
    const S3Object& o = targets_[target].object;
    std::lock_guard<std::mutex> lock(mu_);
    hashers_[target] =
        md5_[target] ? std::make_unique<OrderedMd5>(targets_[target].fd, SpansOf(o, part_bytes_))
                     : nullptr;
  }
  bool Checks(size_t target) {
    std::lock_guard<std::mutex> lock(mu_);
    return hashers_[target] != nullptr;
  }
  void PartDone(size_t target, size_t part) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.emplace_back(target, part);
      ++outstanding_;
    }
    wake_.notify_all();
  }
  // Objects whose every part is hashed: (target, its digest or the error).
  std::vector<std::pair<size_t, StatusOr<std::string>>> TakeDigests() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(digests_, {});
  }
  // Whether parts wait to be hashed.
  bool busy() {
    std::lock_guard<std::mutex> lock(mu_);
    return outstanding_ > 0 || !digests_.empty();
  }
  // Waits until a digest is ready, nothing is left to hash, or `timeout` passed.
  void Wait(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait_for(lock, timeout, [this] { return !digests_.empty() || outstanding_ == 0; });
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      wake_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      const auto [target, part] = queue_.front();
      queue_.pop_front();
      OrderedMd5* hasher = hashers_[target].get();
      lock.unlock();
      Status status = hasher->PartDone(part);
      std::optional<StatusOr<std::string>> digest;
      if (!status.ok()) {
        digest = status;
      } else if (hasher->complete()) {
        digest = hasher->Hex();
      }
      lock.lock();
      --outstanding_;
      if (digest) digests_.emplace_back(target, std::move(*digest));
      if (digest || outstanding_ == 0) done_.notify_all();
    }
  }

  const std::vector<S3Client::Target>& targets_;
  const std::vector<bool> md5_;
  const uint64_t part_bytes_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  std::vector<std::unique_ptr<OrderedMd5>> hashers_;  // guarded by mu_ (swapped only when idle)
  std::deque<std::pair<size_t, size_t>> queue_;
  std::vector<std::pair<size_t, StatusOr<std::string>>> digests_;
  size_t outstanding_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace mm
