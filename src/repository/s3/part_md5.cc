#include "repository/s3/part_md5.h"

#include <openssl/evp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "core/hex.h"

namespace mm::s3_internal {

bool IsMd5Etag(std::string_view etag) {
  return etag.size() == 32 && std::all_of(etag.begin(), etag.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::vector<Span> SpansOf(const S3Object& o, uint64_t part_bytes) {
  std::vector<Span> spans;
  for (uint64_t offset = 0; offset < o.size; offset += part_bytes) {
    spans.push_back({offset, std::min(part_bytes, o.size - offset)});
  }
  return spans;
}

// The MD5 of an object whose parts complete in any order: parts are hashed
// in order, each as soon as every part before it is done, read back from
// the file (the page cache holds it). One thread at a time.
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

Md5Worker::Md5Worker(const std::vector<S3Client::Target>& targets, std::vector<bool> md5,
                     uint64_t part_bytes)
    : targets_(targets), md5_(std::move(md5)), part_bytes_(part_bytes) {
  {
    MutexLock lock(mu_);
    hashers_.resize(targets.size());
  }
  for (size_t i = 0; i < targets.size(); ++i) Restart(i);
  thread_ = std::thread([this] { Run(); });
}

Md5Worker::~Md5Worker() {
  {
    MutexLock lock(mu_);
    stop_ = true;
  }
  wake_.NotifyAll();
  thread_.join();
}

void Md5Worker::Restart(size_t target) {
  const S3Object& o = targets_[target].object;
  MutexLock lock(mu_);
  hashers_[target] =
      md5_[target] ? std::make_unique<OrderedMd5>(targets_[target].fd, SpansOf(o, part_bytes_))
                   : nullptr;
}

void Md5Worker::PartDone(size_t target, size_t part) {
  {
    MutexLock lock(mu_);
    queue_.emplace_back(target, part);
    ++outstanding_;
  }
  wake_.NotifyAll();
}

std::vector<std::pair<size_t, StatusOr<std::string>>> Md5Worker::TakeDigests() {
  MutexLock lock(mu_);
  return std::exchange(digests_, {});
}

bool Md5Worker::busy() {
  MutexLock lock(mu_);
  return outstanding_ > 0 || !digests_.empty();
}

void Md5Worker::Wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  MutexLock lock(mu_);
  while (digests_.empty() && outstanding_ > 0) {
    if (!done_.WaitUntil(lock, deadline)) return;
  }
}

void Md5Worker::Run() {
  MutexLock lock(mu_);
  for (;;) {
    while (!stop_ && queue_.empty()) wake_.Wait(lock);
    if (stop_) return;
    const auto [target, part] = queue_.front();
    queue_.pop_front();
    OrderedMd5* hasher = hashers_[target].get();
    lock.Unlock();
    Status status = hasher->PartDone(part);
    std::optional<StatusOr<std::string>> digest;
    if (!status.ok()) {
      digest = status;
    } else if (hasher->complete()) {
      digest = hasher->Hex();
    }
    lock.Lock();
    --outstanding_;
    if (digest) digests_.emplace_back(target, std::move(*digest));
    if (digest || outstanding_ == 0) done_.NotifyAll();
  }
}

}  // namespace mm::s3_internal
