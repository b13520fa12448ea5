#include "isolation/worker_channel.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "isolation/shared_region.h"

namespace mm {

namespace {

constexpr size_t kChunk = 64 << 10;

Status TooLarge(WorkerMessageType type, size_t bytes) {
  return InvalidArgument("worker message " + std::string(WorkerMessageTypeName(type)) + ": " +
                         std::to_string(bytes) + " bytes exceed the maximum of " +
                         std::to_string(kMaxPayloadBytes));
}

}  // namespace

OwnedFd::~OwnedFd() {
  if (fd_ >= 0) ::close(fd_);
}

OwnedFd& OwnedFd::operator=(OwnedFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

Status WriteWorkerFrame(int socket, WorkerMessageType type, uint32_t request_id,
                        std::string_view payload) {
  if (payload.size() > kMaxPayloadBytes) return TooLarge(type, payload.size());
  char header[kFrameHeaderBytes];
  {
    std::string h;
    AppendFrameHeader(h, {type, static_cast<uint32_t>(payload.size()), request_id});
    std::memcpy(header, h.data(), kFrameHeaderBytes);
  }
  iovec iov[2] = {{header, kFrameHeaderBytes}, {const_cast<char*>(payload.data()), payload.size()}};
  const size_t total = kFrameHeaderBytes + payload.size();
  size_t sent = 0;
  while (sent < total) {
    // Skip what is already sent.
    iovec rest[2];
    int count = 0;
    size_t skip = sent;
    for (const iovec& v : iov) {
      if (skip >= v.iov_len) {
        skip -= v.iov_len;
        continue;
      }
      rest[count++] = {static_cast<char*>(v.iov_base) + skip, v.iov_len - skip};
      skip = 0;
    }
    msghdr msg{};
    msg.msg_iov = rest;
    msg.msg_iovlen = static_cast<size_t>(count);
    ssize_t n = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return DeadlineExceeded("worker socket: the peer took nothing within the send timeout");
    }
    if (n < 0) return Unavailable(std::string("worker socket: send: ") + std::strerror(errno));
    sent += static_cast<size_t>(n);
  }
  return OkStatus();
}

Status WriteWorkerFrameParts(int socket, WorkerMessageType type, uint32_t request_id,
                             const WireParts& parts) {
  const size_t payload_bytes = parts.size();
  if (payload_bytes > kMaxCallPayloadBytes) {
    return InvalidArgument("worker message " + std::string(WorkerMessageTypeName(type)) + ": " +
                           std::to_string(payload_bytes) + " bytes exceed the maximum of " +
                           std::to_string(kMaxCallPayloadBytes));
  }
  std::string header;
  AppendFrameHeader(header, {type, static_cast<uint32_t>(payload_bytes), request_id});
  std::vector<iovec> iov;
  iov.reserve(2 + 2 * parts.inserts.size());
  iov.push_back({header.data(), header.size()});
  parts.AppendIovecs(iov);
  size_t first = 0;  // iov[first..] is left to send
  while (first < iov.size()) {
    msghdr msg{};
    msg.msg_iov = iov.data() + first;
    msg.msg_iovlen = std::min<size_t>(iov.size() - first, 1024);
    const ssize_t n = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return DeadlineExceeded("worker socket: the peer took nothing within the send timeout");
    }
    if (n < 0) return Unavailable(std::string("worker socket: send: ") + std::strerror(errno));
    size_t sent = static_cast<size_t>(n);
    while (first < iov.size() && sent >= iov[first].iov_len) {
      sent -= iov[first].iov_len;
      ++first;
    }
    if (sent > 0) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + sent;
      iov[first].iov_len -= sent;
    }
  }
  return OkStatus();
}

Status WriteWorkerFrameWithFd(int socket, WorkerMessageType type, uint32_t request_id,
                              std::string_view payload, int fd) {
  if (payload.size() > kMaxPayloadBytes) return TooLarge(type, payload.size());
  const std::string frame = Frame(type, request_id, payload);
  return SendWithFd(socket, std::as_bytes(std::span<const char>(frame)), fd);
}

Status FrameReader::Fill(size_t n, const FrameHeader* in_frame) {
  const size_t want = buffered() + n;
  while (buffered() < want) {
    // Room for what is wanted, the buffered bytes moved to the front first.
    if (start_ > 0) {
      std::memmove(buffer_.data(), buffer_.data() + start_, buffered());
      end_ -= start_;
      start_ = 0;
    }
    if (buffer_.size() < std::max(kChunk, want)) buffer_.resize(std::max(kChunk, want));
    iovec iov{buffer_.data() + end_, buffer_.size() - end_};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    const ssize_t got = ::recvmsg(socket_, &msg, MSG_CMSG_CLOEXEC);
    const int error = errno;
    if (got >= 0) {
      end_ += static_cast<size_t>(got);
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
          int fd = -1;
          std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
          fds_.emplace_back(fd);
        }
      }
      if ((msg.msg_flags & MSG_CTRUNC) != 0) {
        return InvalidArgument("worker socket: more descriptors came than any frame takes");
      }
    }
    if (got < 0 && error == EINTR) continue;
    if (got < 0 && (error == EAGAIN || error == EWOULDBLOCK)) {
      return DeadlineExceeded("worker socket: no answer within the receive timeout");
    }
    if (got < 0) return Unavailable(std::string("worker socket: receive: ") + std::strerror(error));
    if (got == 0) {
      const size_t have = buffered();
      if (in_frame != nullptr) {
        return Unavailable("worker socket: the peer closed in the middle of a " +
                           std::string(WorkerMessageTypeName(in_frame->type)) + " message (" +
                           std::to_string(have) + " of " + std::to_string(in_frame->payload_bytes) +
                           " payload bytes)");
      }
      if (have == 0) {
        closed_ = true;
        return Unavailable("worker socket: the peer closed");
      }
      return Unavailable("worker socket: the peer closed in the middle of a frame header (" +
                         std::to_string(have) + " of " + std::to_string(kFrameHeaderBytes) +
                         " bytes)");
    }
  }
  return OkStatus();
}

StatusOr<WorkerFrame> FrameReader::Read() {
  if (buffered() == 0 && !fds_.empty()) {
    return InvalidArgument(
        "worker socket: a descriptor came without a Region, Mailbox or Calls frame");
  }
  if (buffered() < kFrameHeaderBytes) {
    MM_RETURN_IF_ERROR(Fill(kFrameHeaderBytes - buffered(), nullptr));
  }
  auto header = DecodeFrameHeader(
      std::as_bytes(std::span<const char>(buffer_.data() + start_, kFrameHeaderBytes)));
  if (!header.ok()) return header.status();
  start_ += kFrameHeaderBytes;
  WorkerFrame frame;
  frame.header = *header;
  const size_t size = header->payload_bytes;
  if (buffered() < size) MM_RETURN_IF_ERROR(Fill(size - buffered(), &frame.header));
  frame.payload.assign(buffer_.data() + start_, size);
  start_ += size;
  if (start_ == end_) start_ = end_ = 0;
  if (buffer_.size() > kChunk && end_ == 0) {
    buffer_.resize(kChunk);  // a large frame's room goes back
    buffer_.shrink_to_fit();
  }
  if (header->type == WorkerMessageType::kRegion || header->type == WorkerMessageType::kMailbox ||
      header->type == WorkerMessageType::kCalls) {
    if (fds_.empty()) {
      return InvalidArgument("worker message " + std::string(WorkerMessageTypeName(header->type)) +
                             ": expected a descriptor with the frame, got none");
    }
    frame.fd = std::move(fds_.front());
    fds_.pop_front();
  }
  return frame;
}

}  // namespace mm
