// Framed, blocking I/O of worker protocol messages (worker_protocol.h) on a
// connected Unix stream socket: one side of a server–worker pair.
//
// Reading is buffered: a FrameReader asks the kernel for whatever has arrived
// (up to 64 KiB at a time), so a small frame costs one receive call, not one
// for its header and one for its payload; bytes past the frame wait in the
// reader for the next Read. Use one reader per socket for its whole life.
//
// The worker reads requests on its own thread and may block; the server side
// reads a worker's replies on the thread that sent it the request.
// Thread-safety: none; one reader and one writer per socket at a time,
// serialized by the caller.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "core/status.h"
#include "isolation/worker_calls_protocol.h"
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
  OwnedFd fd;           // the descriptor sent with the frame (Region, Mailbox)
};

// Writes one frame (header, then payload) in full, in one call when the
// socket takes it. UNAVAILABLE when the peer is gone; DEADLINE_EXCEEDED
// when the socket's send timeout (SO_SNDTIMEO) passes (part of the frame may
// have gone: stop using the socket). A payload over kMaxPayloadBytes is
// INVALID_ARGUMENT, nothing sent.
Status WriteWorkerFrame(int socket, WorkerMessageType type, uint32_t request_id,
                        std::string_view payload);

// Writes one frame whose payload is `parts` (worker_calls_protocol.h: tensor
// bytes from their own memory, writev), in full; errors as WriteWorkerFrame.
// The payload may be up to kMaxCallPayloadBytes.
Status WriteWorkerFrameParts(int socket, WorkerMessageType type, uint32_t request_id,
                             const WireParts& parts);

// Writes one frame with `fd` attached to its first byte (SCM_RIGHTS).
Status WriteWorkerFrameWithFd(int socket, WorkerMessageType type, uint32_t request_id,
                              std::string_view payload, int fd);

class FrameReader {
 public:
  explicit FrameReader(int socket) : socket_(socket) {}

  // Reads one frame in full. The header is decoded (and so checked) before
  // the payload is read, and the payload buffer is sized only from a checked
  // header. Errors:
  //  UNAVAILABLE        the peer closed (cleanly between frames, or in the
  //                     middle of one: then the message says where)
  //  DEADLINE_EXCEEDED  the socket's receive timeout (SO_RCVTIMEO) passed
  //  INVALID_ARGUMENT   a bad header; a Region or Mailbox frame without a
  //                     descriptor; a descriptor that came with no such frame
  // After an error the reader is in an unknown place in the stream: stop
  // using the socket.
  StatusOr<WorkerFrame> Read();

  // Whether the last Read failed because the peer closed the socket cleanly,
  // between two frames (the normal end of a conversation).
  bool closed() const { return closed_; }

 private:
  // Receives at least `n` more bytes than buffered (0: whatever comes).
  Status Fill(size_t n, const FrameHeader* in_frame);
  size_t buffered() const { return end_ - start_; }

  const int socket_;
  std::string buffer_;  // [start_, end_) received and not yet consumed
  size_t start_ = 0;
  size_t end_ = 0;
  std::deque<OwnedFd> fds_;  // received descriptors, for the Region frames to come
  bool closed_ = false;
};

}  // namespace mm
