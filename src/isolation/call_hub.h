// CallHub: the server's end of every worker's call socket (worker protocol
// v4, worker_calls_protocol.h), served by ONE thread (mm-calls) for all
// workers: an epoll loop over non-blocking sockets.
//
// Reading: each frame is read into a buffer of its own (header first, then
// the payload straight into a buffer of exactly its size: no userland copy),
// and handed to the connection's CallHandler on the hub thread, as a
// shared buffer that request tensors may view. At most kFramesPerTurn frames
// of one connection per turn, so that a busy worker does not starve the
// others.
//
// Writing: CallConnection::Send may be called from any thread; frames to one
// worker are serialized (in call order), written at once as far as the
// socket takes them (writev, tensor bytes from their own memory), the rest
// queued and written by the hub thread as the socket drains.
//
// Bounds: a frame over the protocol's sizes, a malformed frame, a frame type
// a worker may not send, a handler's refusal, or more than
// Limits::max_queued_bytes queued towards a worker that does not read: the
// connection is cut (closed both ways) and its handler hears OnClosed with
// the reason, once. Nothing else notices.
//
// Lifetime: a connection lives while the hub or a holder has it; Close()
// ends it without calling the handler. Destroying the hub stops the thread
// (no handler call after the destructor returns) and closes every
// connection.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "core/thread_annotations.h"
#include "isolation/worker_calls_protocol.h"
#include "isolation/worker_channel.h"
#include "isolation/worker_protocol.h"

namespace mm {

// What a connection does with what its worker says. Called on the hub thread
// only, one call at a time per connection; must not block.
class CallHandler {
 public:
  virtual ~CallHandler() = default;
  // One frame; `payload` is its buffer (header.payload_bytes bytes). A
  // non-OK return cuts the connection (OnClosed then follows with it).
  virtual Status OnFrame(const FrameHeader& header, std::shared_ptr<const std::string> payload) = 0;
  // The connection ended other than by Close(): the worker closed its end
  // (it exited), or it was cut; `why` says which. Once.
  virtual void OnClosed(const Status& why) = 0;
};

class CallHub;

class CallConnection {
 public:
  ~CallConnection();

  // Queues one frame to the worker (header + `parts`, whose inserts stay
  // valid as long as `keep` lives). UNAVAILABLE when the connection is closed
  // or cut (nothing sent); a frame that would put the queue over its bound
  // cuts the connection (and answers RESOURCE_EXHAUSTED).
  Status Send(WorkerMessageType type, uint32_t id, WireParts parts,
              std::shared_ptr<const void> keep = nullptr) MM_EXCLUDES(mu_);
  Status Send(WorkerMessageType type, uint32_t id, std::string payload) MM_EXCLUDES(mu_);

  // Ends the connection from the server's side (the worker stops or
  // restarts): nothing more is read or written, the handler is not called
  // again (a call running on the hub thread may finish). Any thread.
  void Close() MM_EXCLUDES(mu_);
  // Cuts it for `why` (the handler hears OnClosed(why), once).
  void Cut(const Status& why) MM_EXCLUDES(mu_);

  bool closed() const { return closed_.load(std::memory_order_acquire); }
  // Bytes queued towards the worker now (tests).
  size_t queued_bytes() const MM_EXCLUDES(mu_);

 private:
  friend class CallHub;
  struct Out {
    std::string header;
    WireParts parts;
    std::shared_ptr<const void> keep;
    size_t size = 0;  // header + payload
  };

  CallConnection(std::weak_ptr<CallHub> hub, OwnedFd socket, std::weak_ptr<CallHandler> handler,
                 uint64_t key, size_t max_queued_bytes)
      : hub_(std::move(hub)),
        socket_(std::move(socket)),
        handler_(std::move(handler)),
        key_(key),
        max_queued_bytes_(max_queued_bytes) {}

  // Writes what the socket takes of the queue; whether some is left.
  // A write error: `error` set.
  bool FlushLocked(Status* error) MM_REQUIRES(mu_);
  // Hub thread: reads and dispatches up to kFramesPerTurn frames; a non-OK
  // status when the connection ends (closed by the worker, or to be cut).
  Status ReadSome();
  // Hub thread: the socket drained; writes more.
  void OnWritable() MM_EXCLUDES(mu_);
  // Ends it (both ways, removed from the hub); whether this call ended it.
  bool End() MM_EXCLUDES(mu_);

  const std::weak_ptr<CallHub> hub_;
  const OwnedFd socket_;
  const std::weak_ptr<CallHandler> handler_;  // its owner's: gone, the connection ends
  const uint64_t key_;
  const size_t max_queued_bytes_;
  std::atomic<bool> closed_{false};

  // Read state (hub thread only).
  char header_[kFrameHeaderBytes];
  size_t header_got_ = 0;
  FrameHeader frame_;
  std::shared_ptr<std::string> payload_;
  size_t payload_got_ = 0;

  mutable Mutex mu_;
  std::deque<Out> queue_ MM_GUARDED_BY(mu_);
  size_t front_sent_ MM_GUARDED_BY(mu_) = 0;  // bytes of queue_.front() written
  size_t queued_bytes_ MM_GUARDED_BY(mu_) = 0;
  bool want_write_ MM_GUARDED_BY(mu_) = false;  // EPOLLOUT armed
};

class CallHub : public std::enable_shared_from_this<CallHub> {
 public:
  struct Limits {
    // Bytes queued towards one worker that has not read them (its replies
    // and BLS responses): past it, the worker is cut off.
    size_t max_queued_bytes = 256u << 20;
  };
  static constexpr int kFramesPerTurn = 16;

  // INTERNAL when epoll, the eventfd or the thread cannot be had.
  static StatusOr<std::shared_ptr<CallHub>> Create(Limits limits);
  static StatusOr<std::shared_ptr<CallHub>> Create() { return Create(Limits{}); }
  ~CallHub();

  // Serves `socket` (a connected Unix stream socket, the server's end; made
  // non-blocking here) with `handler` until it ends (the hub holds the
  // handler weakly: its owner keeps it, and closes the connection when it
  // lets go). UNAVAILABLE after the hub stopped.
  StatusOr<std::shared_ptr<CallConnection>> Add(OwnedFd socket,
                                                std::shared_ptr<CallHandler> handler)
      MM_EXCLUDES(mu_);

  // Stops the thread (waiting for a handler call running, unless called
  // on the hub thread) and closes every connection without their handlers
  // hearing it; no handler runs after it returns. Idempotent; the
  // destructor calls it.
  void Stop() MM_EXCLUDES(mu_);

  size_t connections() const MM_EXCLUDES(mu_);  // (tests)

 private:
  friend class CallConnection;
  CallHub(int epoll_fd, int wake_fd, Limits limits)
      : epoll_fd_(epoll_fd), wake_fd_(wake_fd), limits_(limits) {}
  void Loop() MM_EXCLUDES(mu_);
  void Remove(uint64_t key, int fd) MM_EXCLUDES(mu_);
  void WantWrite(int fd, uint64_t key, bool on);

  const int epoll_fd_;
  const int wake_fd_;
  const Limits limits_;
  mutable Mutex mu_;
  bool stopping_ MM_GUARDED_BY(mu_) = false;
  uint64_t next_key_ MM_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, std::shared_ptr<CallConnection>> connections_ MM_GUARDED_BY(mu_);
  const std::shared_ptr<std::atomic<bool>> destroyed_ = std::make_shared<std::atomic<bool>>(false);
  std::thread thread_ MM_GUARDED_BY(mu_);
};

}  // namespace mm
