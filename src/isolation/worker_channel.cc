#include "isolation/worker_channel.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "isolation/shared_region.h"

namespace mm {

namespace {

// Reads exactly `size` bytes. Returns the bytes read before EOF (< size) or
// -1 with errno set.
ssize_t ReadFull(int socket, char* out, size_t size) {
  size_t got = 0;
  while (got < size) {
    ssize_t n = ::recv(socket, out + got, size - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(got);
}

// As ReadFull, also collecting descriptors that come with the bytes: the
// first into *fd, the count of all of them into *fds.
ssize_t ReadFullWithFds(int socket, char* out, size_t size, OwnedFd* fd, int* fds) {
  size_t got = 0;
  while (got < size) {
    msghdr msg{};
    iovec iov{out + got, size - got};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)] = {};
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int received = -1;
        std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        if (++*fds == 1) {
          *fd = OwnedFd(received);
        } else {
          ::close(received);
        }
      }
    }
    if ((msg.msg_flags & MSG_CTRUNC) != 0) *fds += 2;  // more than could be taken: refused
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(got);
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

Status WriteWorkerFrameWithFd(int socket, WorkerMessageType type, uint32_t request_id,
                              std::string_view payload, int fd) {
  if (payload.size() > kMaxPayloadBytes) {
    return InvalidArgument("worker message " + std::string(WorkerMessageTypeName(type)) + ": " +
                           std::to_string(payload.size()) + " bytes exceed the maximum of " +
                           std::to_string(kMaxPayloadBytes));
  }
  const std::string frame = Frame(type, request_id, payload);
  return SendWithFd(socket, std::as_bytes(std::span<const char>(frame)), fd);
}

Status WriteWorkerFrame(int socket, WorkerMessageType type, uint32_t request_id,
                        std::string_view payload) {
  if (payload.size() > kMaxPayloadBytes) {
    return InvalidArgument("worker message " + std::string(WorkerMessageTypeName(type)) + ": " +
                           std::to_string(payload.size()) + " bytes exceed the maximum of " +
                           std::to_string(kMaxPayloadBytes));
  }
  std::string header;
  AppendFrameHeader(header, {type, static_cast<uint32_t>(payload.size()), request_id});
  iovec iov[2] = {{header.data(), header.size()},
                  {const_cast<char*>(payload.data()), payload.size()}};
  size_t total = header.size() + payload.size();
  size_t sent = 0;
  while (sent < total) {
    msghdr msg{};
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
    msg.msg_iov = rest;
    msg.msg_iovlen = static_cast<size_t>(count);
    ssize_t n = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Unavailable(std::string("worker socket: send: ") + std::strerror(errno));
    sent += static_cast<size_t>(n);
  }
  return OkStatus();
}

StatusOr<WorkerFrame> ReadWorkerFrame(int socket) {
  std::array<char, kFrameHeaderBytes> raw{};
  OwnedFd fd;
  int fds = 0;
  ssize_t n = ReadFullWithFds(socket, raw.data(), raw.size(), &fd, &fds);
  if (n < 0) return Unavailable(std::string("worker socket: receive: ") + std::strerror(errno));
  if (n == 0) return Unavailable("worker socket: the peer closed");
  if (static_cast<size_t>(n) < raw.size()) {
    return Unavailable("worker socket: the peer closed in the middle of a frame header (" +
                       std::to_string(n) + " of " + std::to_string(kFrameHeaderBytes) + " bytes)");
  }
  auto header = DecodeFrameHeader(std::as_bytes(std::span<const char>(raw)));
  if (!header.ok()) return header.status();
  const bool wants_fd = header->type == WorkerMessageType::kRegion;
  if (wants_fd && fds != 1) {
    return InvalidArgument(fds == 0
                               ? "worker message Region: expected a descriptor with the frame, "
                                 "got none"
                               : "worker message Region: expected one descriptor, got more");
  }
  if (!wants_fd && fds != 0) {
    return InvalidArgument("worker message " + std::string(WorkerMessageTypeName(header->type)) +
                           ": a descriptor came with it, expected none");
  }
  WorkerFrame frame;
  frame.header = *header;
  frame.fd = std::move(fd);
  frame.payload.resize(header->payload_bytes);
  n = ReadFull(socket, frame.payload.data(), frame.payload.size());
  if (n < 0) return Unavailable(std::string("worker socket: receive: ") + std::strerror(errno));
  if (static_cast<size_t>(n) < frame.payload.size()) {
    return Unavailable("worker socket: the peer closed in the middle of a " +
                       std::string(WorkerMessageTypeName(header->type)) + " message (" +
                       std::to_string(n) + " of " + std::to_string(frame.payload.size()) +
                       " payload bytes)");
  }
  return frame;
}

}  // namespace mm
