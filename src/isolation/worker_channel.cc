#include "isolation/worker_channel.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

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

}  // namespace

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
  ssize_t n = ReadFull(socket, raw.data(), raw.size());
  if (n < 0) return Unavailable(std::string("worker socket: receive: ") + std::strerror(errno));
  if (n == 0) return Unavailable("worker socket: the peer closed");
  if (static_cast<size_t>(n) < raw.size()) {
    return Unavailable("worker socket: the peer closed in the middle of a frame header (" +
                       std::to_string(n) + " of " + std::to_string(kFrameHeaderBytes) + " bytes)");
  }
  auto header = DecodeFrameHeader(std::as_bytes(std::span<const char>(raw)));
  if (!header.ok()) return header.status();
  WorkerFrame frame;
  frame.header = *header;
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
