// Mailbox: the fast path between the server and a worker whose model is
// loaded. A socket message costs a system call with a buffer allocation on
// each side and a socket wake-up; a futex on shared memory wakes the peer for
// about half the round-trip time (bench_process_hop prints both), and the
// message needs no copy on the way in.
//
// A mailbox is a SharedRegion both processes map (kDefaultBytes unless the
// server says otherwise): a request slot the server writes and a reply slot
// the worker writes, each with a header and up to slot_payload_bytes() of
// payload (a worker protocol payload, worker_protocol.h), and the turn word,
// a futex:
//   - the low 31 bits count messages: odd means a request waits for the
//     worker, even that the last request has its reply. Only the server makes
//     it odd (Post), only the worker even (Reply);
//   - bit 31 (gone) is set by the server when the worker has died or the
//     server is done with it (MarkGone); it wakes a server thread waiting
//     for the reply, ends a worker waiting for a request, and no request is
//     posted after it.
//
// The worker's socket stays the conversation's ordered side channel:
// descriptors (Region frames) travel only on it, and so does a message too
// large for its slot, as a whole frame. A request says how many frames the
// server wrote to the socket since the previous request (the worker reads
// them first, in order), and whether the message itself is the last of them;
// a reply says whether it is on the socket.
//
// Trust: the server trusts nothing in the reply slot. AwaitReply reads its
// header once, checks it, and copies the payload out before anyone decodes
// it (the worker could change the bytes under a decoder). The worker trusts
// the server.
//
// Thread-safety: one thread at a time posts and awaits on the server side
// (the instance's executing thread), one on the worker side; MarkGone may run
// on any thread at any time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/status.h"
#include "isolation/shared_region.h"
#include "isolation/worker_protocol.h"

namespace mm {

class Mailbox {
 public:
  static constexpr uint64_t kDefaultBytes = 64u << 10;  // slots of 32 KiB less 128 bytes
  // The smallest has slots of no payload: every message goes on the socket.
  static constexpr uint64_t kMinBytes = 256;
  static constexpr uint64_t kMaxBytes = 16u << 20;

  // A new mailbox of `bytes` (server side); `name` as for SharedRegion::Create.
  // INVALID_ARGUMENT for a size outside [kMinBytes, kMaxBytes].
  static StatusOr<std::unique_ptr<Mailbox>> Create(std::string_view name,
                                                   uint64_t bytes = kDefaultBytes);
  // Maps a mailbox received from the server (worker side); takes `fd` over.
  // INVALID_ARGUMENT unless `bytes` is within the sizes Create takes and
  // SharedRegion::Adopt agrees.
  static StatusOr<std::unique_ptr<Mailbox>> Adopt(int fd, uint64_t bytes);

  int fd() const { return region_->fd(); }
  uint64_t size() const { return region_->size(); }
  // The largest payload a slot holds: size() / 2 - 128.
  size_t slot_payload_bytes() const { return slot_payload_bytes_; }

  // ---- server side

  // Posts a request and wakes the worker. `socket_frames`: frames written to
  // the socket since the previous request, the message included when
  // `on_socket` (then `payload` is ignored; else it must fit in a slot).
  // UNAVAILABLE once the worker is gone.
  Status Post(WorkerMessageType type, uint32_t request_id, uint32_t socket_frames, bool on_socket,
              std::string_view payload);

  // Waits for the reply to the request posted last, for at most `timeout`
  // (0: no limit). On OK, `*on_socket` says whether the reply is a frame on
  // the socket; else its payload is in `payload` (a copy). UNAVAILABLE when
  // the worker is gone (MarkGone); DEADLINE_EXCEEDED past the timeout;
  // INVALID_ARGUMENT for a reply slot that breaks the rules (the worker is
  // broken).
  Status AwaitReply(std::chrono::milliseconds timeout, bool* on_socket, std::string& payload);

  // The worker has died, or is to end: wakes AwaitReply, refuses later
  // Posts, ends AwaitRequest. Idempotent.
  void MarkGone();

  // ---- worker side

  struct Request {
    WorkerMessageType type = WorkerMessageType::kReply;
    uint32_t request_id = 0;
    uint32_t socket_frames = 0;
    bool on_socket = false;
    std::span<const std::byte> payload;  // in the slot; valid until Reply
  };
  // Waits for the next request (without limit: the worker dies with the
  // server). UNAVAILABLE once the server has closed the mailbox (MarkGone);
  // INVALID_ARGUMENT for a request slot that breaks the rules.
  StatusOr<Request> AwaitRequest();

  // Answers the request taken last: `payload` in the reply slot (it must
  // fit), or, with `on_socket`, a frame the worker has written to the socket.
  void Reply(uint32_t request_id, bool on_socket, std::string_view payload);

 private:
  explicit Mailbox(std::unique_ptr<SharedRegion> region)
      : region_(std::move(region)), slot_payload_bytes_(region_->size() / 2 - 128) {}
  uint32_t& turn() const;

  std::unique_ptr<SharedRegion> region_;
  const size_t slot_payload_bytes_;
  // The turn value of the request posted (server) or taken (worker) last.
  uint32_t turn_ = 0;
  uint32_t request_id_ = 0;  // server side: the request posted last
};

}  // namespace mm
