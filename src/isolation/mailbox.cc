#include "isolation/mailbox.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cassert>
#include <cerrno>
#include <climits>
#include <cstring>

namespace mm {

namespace {

using Clock = std::chrono::steady_clock;

constexpr uint32_t kGone = 1u << 31;
constexpr uint32_t kCount = kGone - 1;
constexpr uint32_t kOnSocketMark = 0xFFFFFFFF;  // a slot's payload length: "on the socket"

// Layout: the turn word at 0, the request header at 64 and its payload at
// 128; the reply header at half the size, its payload 128 bytes further.
constexpr size_t kRequestHeader = 64;
constexpr size_t kRequestPayload = 128;
constexpr size_t kReplyPayloadAfterHeader = 128;

Status CheckSize(uint64_t bytes) {
  if (bytes < Mailbox::kMinBytes || bytes > Mailbox::kMaxBytes) {
    return InvalidArgument("worker mailbox: " + std::to_string(bytes) + " bytes, expected " +
                           std::to_string(Mailbox::kMinBytes) + " to " +
                           std::to_string(Mailbox::kMaxBytes));
  }
  return OkStatus();
}

uint32_t Next(uint32_t turn) { return (turn + 1) & kCount; }

// Blocks while `*word` is `expected`, for at most `timeout` (null: no limit);
// returns early on a wake-up, a signal or a changed word (callers re-check).
void FutexWait(uint32_t* word, uint32_t expected, const timespec* timeout) {
  ::syscall(SYS_futex, word, FUTEX_WAIT, expected, timeout, nullptr, 0);
}

void FutexWake(uint32_t* word, int waiters) {
  ::syscall(SYS_futex, word, FUTEX_WAKE, waiters, nullptr, nullptr, 0);
}

void PutU32(std::byte* at, uint32_t v) { std::memcpy(at, &v, sizeof(v)); }
uint32_t GetU32(const std::byte* at) {
  uint32_t v;
  std::memcpy(&v, at, sizeof(v));
  return v;
}

}  // namespace

StatusOr<std::unique_ptr<Mailbox>> Mailbox::Create(std::string_view name, uint64_t bytes) {
  MM_RETURN_IF_ERROR(CheckSize(bytes));
  MM_ASSIGN_OR_RETURN(std::unique_ptr<SharedRegion> region, SharedRegion::Create(name, bytes));
  return std::unique_ptr<Mailbox>(new Mailbox(std::move(region)));
}

StatusOr<std::unique_ptr<Mailbox>> Mailbox::Adopt(int fd, uint64_t bytes) {
  if (Status s = CheckSize(bytes); !s.ok()) {
    ::close(fd);
    return s;
  }
  MM_ASSIGN_OR_RETURN(std::unique_ptr<SharedRegion> region, SharedRegion::Adopt(fd, bytes));
  return std::unique_ptr<Mailbox>(new Mailbox(std::move(region)));
}

uint32_t& Mailbox::turn() const { return *reinterpret_cast<uint32_t*>(region_->bytes().data()); }

Status Mailbox::Post(WorkerMessageType type, uint32_t request_id, uint32_t socket_frames,
                     bool on_socket, std::string_view payload) {
  assert(on_socket || payload.size() <= slot_payload_bytes_);
  std::atomic_ref<uint32_t> word(turn());
  uint32_t now = word.load(std::memory_order_acquire);
  if (now & kGone) return Unavailable("the worker is gone");
  if (now & 1) {
    return FailedPrecondition("worker mailbox: a request is still waiting for its reply");
  }
  std::byte* base = region_->bytes().data();
  PutU32(base + kRequestHeader, static_cast<uint32_t>(type));
  PutU32(base + kRequestHeader + 4, request_id);
  PutU32(base + kRequestHeader + 8, socket_frames);
  PutU32(base + kRequestHeader + 12,
         on_socket ? kOnSocketMark : static_cast<uint32_t>(payload.size()));
  if (!on_socket && !payload.empty()) {
    std::memcpy(base + kRequestPayload, payload.data(), payload.size());
  }
  // Only MarkGone races with this write; it wins or sees the request posted.
  const uint32_t posted = Next(now);
  if (!word.compare_exchange_strong(now, posted, std::memory_order_release,
                                    std::memory_order_acquire)) {
    return Unavailable("the worker is gone");
  }
  turn_ = posted;
  request_id_ = request_id;
  FutexWake(&turn(), 1);
  return OkStatus();
}

Status Mailbox::AwaitReply(std::chrono::milliseconds timeout, bool* on_socket,
                           std::string& payload) {
  std::atomic_ref<uint32_t> word(turn());
  const uint32_t want = Next(turn_);
  // Read the clock only when there is a limit (not once per request else).
  const auto deadline = timeout.count() > 0 ? Clock::now() + timeout : Clock::time_point{};
  for (;;) {
    const uint32_t now = word.load(std::memory_order_acquire);
    if (now & kGone) return Unavailable("the worker is gone");
    if (now == want) break;
    if (now != turn_) {
      return InvalidArgument("worker mailbox: turn " + std::to_string(now) + ", expected " +
                             std::to_string(turn_) + " or its reply " + std::to_string(want));
    }
    if (timeout.count() <= 0) {
      FutexWait(&turn(), now, nullptr);
      continue;
    }
    const auto left = deadline - Clock::now();
    if (left <= Clock::duration::zero()) {
      return DeadlineExceeded("no reply from the worker within " + std::to_string(timeout.count()) +
                              " ms");
    }
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(ns / 1000000000);
    ts.tv_nsec = static_cast<long>(ns % 1000000000);
    FutexWait(&turn(), now, &ts);
  }
  turn_ = want;
  const std::byte* base = region_->bytes().data();
  const uint32_t id = GetU32(base + size() / 2);
  const uint32_t bytes = GetU32(base + size() / 2 + 4);
  if (id != request_id_) {
    return InvalidArgument("worker mailbox: a reply to request " + std::to_string(id) +
                           ", expected the reply to " + std::to_string(request_id_));
  }
  *on_socket = bytes == kOnSocketMark;
  if (*on_socket) return OkStatus();
  if (bytes > slot_payload_bytes_) {
    return InvalidArgument("worker mailbox: reply payload of " + std::to_string(bytes) +
                           " bytes, the slot holds at most " + std::to_string(slot_payload_bytes_));
  }
  payload.assign(reinterpret_cast<const char*>(base + size() / 2 + kReplyPayloadAfterHeader),
                 bytes);
  return OkStatus();
}

void Mailbox::MarkGone() {
  std::atomic_ref<uint32_t>(turn()).fetch_or(kGone, std::memory_order_acq_rel);
  FutexWake(&turn(), INT_MAX);
}

StatusOr<Mailbox::Request> Mailbox::AwaitRequest() {
  std::atomic_ref<uint32_t> word(turn());
  uint32_t now = word.load(std::memory_order_acquire);
  while ((now & 1) == 0) {
    if (now & kGone) return Unavailable("the server closed the mailbox");
    FutexWait(&turn(), now, nullptr);
    now = word.load(std::memory_order_acquire);
  }
  if (now & kGone) return Unavailable("the server closed the mailbox");
  turn_ = now;
  const std::byte* base = region_->bytes().data();
  Request request;
  request.type = static_cast<WorkerMessageType>(GetU32(base + kRequestHeader));
  request.request_id = GetU32(base + kRequestHeader + 4);
  request.socket_frames = GetU32(base + kRequestHeader + 8);
  const uint32_t bytes = GetU32(base + kRequestHeader + 12);
  request.on_socket = bytes == kOnSocketMark;
  if (!request.on_socket) {
    if (bytes > slot_payload_bytes_) {
      return InvalidArgument("worker mailbox: request payload of " + std::to_string(bytes) +
                             " bytes, the slot holds at most " +
                             std::to_string(slot_payload_bytes_));
    }
    request.payload = region_->bytes().subspan(kRequestPayload, bytes);
  }
  return request;
}

void Mailbox::Reply(uint32_t request_id, bool on_socket, std::string_view payload) {
  assert(on_socket || payload.size() <= slot_payload_bytes_);
  std::byte* base = region_->bytes().data();
  PutU32(base + size() / 2, request_id);
  PutU32(base + size() / 2 + 4, on_socket ? kOnSocketMark : static_cast<uint32_t>(payload.size()));
  if (!on_socket && !payload.empty()) {
    std::memcpy(base + size() / 2 + kReplyPayloadAfterHeader, payload.data(), payload.size());
  }
  std::atomic_ref<uint32_t>(turn()).store(Next(turn_), std::memory_order_release);
  FutexWake(&turn(), 1);
}

}  // namespace mm
