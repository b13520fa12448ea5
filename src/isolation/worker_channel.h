// Framed, blocking I/O of worker protocol messages (worker_protocol.h) on a
// connected Unix stream socket: one side of a server–worker pair.
//
// The worker reads requests on its own thread and may block; the server side
// will read replies on a thread of its own per worker (never a transport or
// execution thread). Thread-safety: none; one reader and one writer per socket
// at a time, serialized by the caller.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"
#include "isolation/worker_protocol.h"

namespace mm {

// A descriptor that closes itself.
class OwnedFd {
 public:
  OwnedFd() = default;
  explicit OwnedFd(int fd) : fd_(fd) {}
  ~OwnedFd();
  OwnedFd(OwnedFd&& other) noexcept : fd_(other.release()) {}
  OwnedFd& operator=(OwnedFd&& other) noexcept;
  int get() const { return fd_; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
};

struct WorkerFrame {
  FrameHeader header;
  std::string payload;  // header.payload_bytes bytes
  OwnedFd fd;           // the descriptor sent with the frame (Region), if any
};

// Writes one frame (header, then payload) in full. UNAVAILABLE when the peer
// is gone. A payload over kMaxPayloadBytes is INVALID_ARGUMENT, nothing sent.
Status WriteWorkerFrame(int socket, WorkerMessageType type, uint32_t request_id,
                        std::string_view payload);

// Writes one frame with `fd` attached to its first byte (SCM_RIGHTS).
Status WriteWorkerFrameWithFd(int socket, WorkerMessageType type, uint32_t request_id,
                              std::string_view payload, int fd);

// Reads one frame in full. The header is decoded (and so checked) before the
// payload is read, and the payload buffer is sized only from a checked
// header. UNAVAILABLE when the peer closed (cleanly between frames, or in the
// middle of one: then the message says so); INVALID_ARGUMENT for a bad
// header, for a Region frame without exactly one descriptor, and for a
// descriptor on any other frame (descriptors that came are closed).
StatusOr<WorkerFrame> ReadWorkerFrame(int socket);

}  // namespace mm
