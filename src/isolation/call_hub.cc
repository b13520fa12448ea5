#include "isolation/call_hub.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mm {

namespace {

constexpr size_t kMaxIovecs = 256;

// The message types a worker may send on its call socket.
bool FromWorker(WorkerMessageType t) {
  switch (t) {
    case WorkerMessageType::kRespond:
    case WorkerMessageType::kInfer:
    case WorkerMessageType::kModelReady:
    case WorkerMessageType::kMetricCreate:
    case WorkerMessageType::kMetricUpdate:
    case WorkerMessageType::kMetricValue:
    case WorkerMessageType::kMetricRelease:
    case WorkerMessageType::kIsCancelled:
      return true;
    default:
      return false;
  }
}

}  // namespace

// -------------------------------------------------------------- connection

CallConnection::~CallConnection() = default;

Status CallConnection::Send(WorkerMessageType type, uint32_t id, std::string payload) {
  WireParts parts;
  parts.bytes = std::move(payload);
  return Send(type, id, std::move(parts), nullptr);
}

Status CallConnection::Send(WorkerMessageType type, uint32_t id, WireParts parts,
                            std::shared_ptr<const void> keep) {
  const size_t payload_bytes = parts.size();
  Out out;
  AppendFrameHeader(out.header, {type, static_cast<uint32_t>(payload_bytes), id});
  out.parts = std::move(parts);
  out.keep = std::move(keep);
  out.size = kFrameHeaderBytes + payload_bytes;
  Status error;
  bool over = false;
  bool arm = false;
  {
    MutexLock lock(mu_);
    if (closed()) return Unavailable("the worker's call channel is closed");
    if (queued_bytes_ + out.size > max_queued_bytes_) {
      over = true;
    } else {
      queued_bytes_ += out.size;
      queue_.push_back(std::move(out));
      if (!want_write_) {
        // Nothing was waiting for the socket: write now, as far as it takes.
        const bool left = FlushLocked(&error);
        if (error.ok() && left) {
          want_write_ = true;
          arm = true;
        }
      }
    }
  }
  if (over) {
    Status why = ResourceExhausted("the worker does not read its call socket: over " +
                                   std::to_string(max_queued_bytes_) + " bytes queued towards it");
    Cut(why);
    return why;
  }
  if (!error.ok()) {
    Cut(error);
    return error;
  }
  if (arm) {
    if (auto hub = hub_.lock()) hub->WantWrite(socket_.get(), key_, true);
  }
  return OkStatus();
}

bool CallConnection::FlushLocked(Status* error) {
  std::vector<iovec> iov;
  while (!queue_.empty()) {
    iov.clear();
    size_t skip = front_sent_;
    for (const Out& out : queue_) {
      const size_t first = iov.size();
      iov.push_back({const_cast<char*>(out.header.data()), out.header.size()});
      out.parts.AppendIovecs(iov);
      if (&out == &queue_.front()) {
        // Drop what is written already.
        size_t i = first;
        while (skip > 0 && i < iov.size()) {
          const size_t n = std::min(skip, iov[i].iov_len);
          iov[i].iov_base = static_cast<char*>(iov[i].iov_base) + n;
          iov[i].iov_len -= n;
          skip -= n;
          if (iov[i].iov_len == 0) ++i;
        }
        iov.erase(iov.begin() + static_cast<std::ptrdiff_t>(first),
                  iov.begin() + static_cast<std::ptrdiff_t>(i));
      }
      if (iov.size() >= kMaxIovecs) break;
    }
    if (iov.size() > kMaxIovecs) iov.resize(kMaxIovecs);
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = iov.size();
    const ssize_t n = ::sendmsg(socket_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n < 0) {
      *error = Unavailable(std::string("the worker's call socket: send: ") + std::strerror(errno));
      return false;
    }
    size_t written = static_cast<size_t>(n);
    while (written > 0 && !queue_.empty()) {
      const size_t left = queue_.front().size - front_sent_;
      if (written < left) {
        front_sent_ += written;
        break;
      }
      written -= left;
      queued_bytes_ -= queue_.front().size;
      queue_.pop_front();
      front_sent_ = 0;
    }
  }
  return false;
}

void CallConnection::OnWritable() {
  Status error;
  bool left;
  {
    MutexLock lock(mu_);
    if (closed()) return;
    left = FlushLocked(&error);
    if (error.ok() && !left) want_write_ = false;
  }
  if (!error.ok()) {
    Cut(error);
    return;
  }
  if (!left) {
    if (auto hub = hub_.lock()) hub->WantWrite(socket_.get(), key_, false);
  }
}

size_t CallConnection::queued_bytes() const {
  MutexLock lock(mu_);
  return queued_bytes_;
}

bool CallConnection::End() {
  if (closed_.exchange(true, std::memory_order_acq_rel)) return false;
  ::shutdown(socket_.get(), SHUT_RDWR);
  {
    MutexLock lock(mu_);
    queue_.clear();
    queued_bytes_ = 0;
    front_sent_ = 0;
  }
  if (auto hub = hub_.lock()) hub->Remove(key_, socket_.get());
  return true;
}

void CallConnection::Close() { End(); }

void CallConnection::Cut(const Status& why) {
  if (!End()) return;
  if (auto handler = handler_.lock()) handler->OnClosed(why);
}

Status CallConnection::ReadSome() {
  for (int frames = 0; frames < CallHub::kFramesPerTurn;) {
    if (closed()) return OkStatus();
    ssize_t n;
    if (header_got_ < kFrameHeaderBytes) {
      n = ::recv(socket_.get(), header_ + header_got_, kFrameHeaderBytes - header_got_,
                 MSG_DONTWAIT);
    } else {
      n = ::recv(socket_.get(), payload_->data() + payload_got_, payload_->size() - payload_got_,
                 MSG_DONTWAIT);
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return OkStatus();
    if (n < 0) {
      return Unavailable(std::string("the worker's call socket: receive: ") + std::strerror(errno));
    }
    if (n == 0) {
      if (header_got_ == 0) return Unavailable("the worker closed its call socket");
      return InvalidArgument("the worker closed its call socket in the middle of a frame");
    }
    if (header_got_ < kFrameHeaderBytes) {
      header_got_ += static_cast<size_t>(n);
      if (header_got_ < kFrameHeaderBytes) continue;
      auto header =
          DecodeFrameHeader(std::as_bytes(std::span<const char>(header_, kFrameHeaderBytes)));
      if (!header.ok()) return header.status();
      if (!FromWorker(header->type)) {
        return InvalidArgument("a " + std::string(WorkerMessageTypeName(header->type)) +
                               " frame on the call socket, which a worker does not send");
      }
      frame_ = *header;
      payload_ = std::make_shared<std::string>();
      payload_->resize(frame_.payload_bytes);
      payload_got_ = 0;
    } else {
      payload_got_ += static_cast<size_t>(n);
    }
    if (payload_got_ < frame_.payload_bytes) continue;
    // A whole frame.
    header_got_ = 0;
    std::shared_ptr<const std::string> payload = std::move(payload_);
    ++frames;
    auto handler = handler_.lock();
    if (handler == nullptr) {
      End();  // its owner let it go
      return OkStatus();
    }
    MM_RETURN_IF_ERROR(handler->OnFrame(frame_, std::move(payload)));
  }
  return OkStatus();
}

// --------------------------------------------------------------------- hub

StatusOr<std::shared_ptr<CallHub>> CallHub::Create(Limits limits) {
  const int epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) return Internal(std::string("epoll_create1: ") + std::strerror(errno));
  const int wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) {
    ::close(epoll_fd);
    return Internal(std::string("eventfd: ") + std::strerror(errno));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;  // keys start at 1: 0 is the wake-up
  ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &ev);
  std::shared_ptr<CallHub> hub(new CallHub(epoll_fd, wake_fd, limits));
  {
    MutexLock lock(hub->mu_);
    hub->thread_ = std::thread([raw = hub.get()] { raw->Loop(); });
  }
  return hub;
}

CallHub::~CallHub() {
  destroyed_->store(true);
  Stop();
  ::close(wake_fd_);
  ::close(epoll_fd_);
}

void CallHub::Stop() {
  std::map<uint64_t, std::shared_ptr<CallConnection>> connections;
  {
    MutexLock lock(mu_);
    stopping_ = true;
    connections.swap(connections_);
  }
  const uint64_t one = 1;
  ssize_t ignored = ::write(wake_fd_, &one, sizeof(one));
  (void)ignored;
  for (auto& [key, connection] : connections) {
    connection->closed_.store(true);
    ::shutdown(connection->socket_.get(), SHUT_RDWR);
  }
  connections.clear();
  std::thread thread;
  {
    MutexLock lock(mu_);
    thread = std::move(thread_);
  }
  if (!thread.joinable()) return;
  if (thread.get_id() == std::this_thread::get_id()) {
    // The last reference went on the hub thread (Loop dropping its hold):
    // it must not wait for itself; the loop sees destroyed_ and returns.
    thread.detach();
  } else {
    thread.join();
  }
}

StatusOr<std::shared_ptr<CallConnection>> CallHub::Add(OwnedFd socket,
                                                       std::shared_ptr<CallHandler> handler) {
  const int fd = socket.get();
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    return Internal(std::string("the call socket: fcntl: ") + std::strerror(errno));
  }
  MutexLock lock(mu_);
  if (stopping_) return Unavailable("the server is stopping: no call channel");
  const uint64_t key = next_key_++;
  std::shared_ptr<CallConnection> connection(new CallConnection(
      weak_from_this(), std::move(socket), std::move(handler), key, limits_.max_queued_bytes));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = key;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    connection->closed_.store(true);
    return Internal(std::string("the call socket: epoll_ctl: ") + std::strerror(errno));
  }
  connections_.emplace(key, connection);
  return connection;
}

size_t CallHub::connections() const {
  MutexLock lock(mu_);
  return connections_.size();
}

void CallHub::Remove(uint64_t key, int fd) {
  MutexLock lock(mu_);
  if (connections_.erase(key) > 0) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void CallHub::WantWrite(int fd, uint64_t key, bool on) {
  MutexLock lock(mu_);
  if (connections_.count(key) == 0) return;
  epoll_event ev{};
  ev.events = EPOLLIN | (on ? EPOLLOUT : 0u);
  ev.data.u64 = key;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
}

void CallHub::Loop() {
  const std::shared_ptr<std::atomic<bool>> destroyed = destroyed_;
  epoll_event events[64];
  for (;;) {
    const int n = ::epoll_wait(epoll_fd_, events, 64, -1);
    if (n < 0 && errno == EINTR) continue;
    // The hub is held while this turn's events are handled: a handler that
    // drops the last reference elsewhere cannot destroy it under the loop.
    std::shared_ptr<CallHub> self;
    std::vector<std::pair<std::shared_ptr<CallConnection>, uint32_t>> ready;
    {
      MutexLock lock(mu_);
      if (stopping_) return;
      self = weak_from_this().lock();
      if (!self) return;
      for (int i = 0; i < n; ++i) {
        // (epoll_event is packed: its fields are copied, never referenced.)
        const uint64_t key = events[i].data.u64;
        const uint32_t what = events[i].events;
        auto it = connections_.find(key);
        if (it != connections_.end()) ready.emplace_back(it->second, what);
      }
    }
    for (auto& [connection, what] : ready) {
      if (connection->closed()) continue;
      if ((what & EPOLLOUT) != 0) connection->OnWritable();
      if ((what & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) {
        Status s = connection->ReadSome();
        if (!s.ok()) connection->Cut(s);
      }
    }
    ready.clear();
    // Dropping `self` may destroy the hub on this thread: its destructor
    // detaches this thread, and the loop returns without touching it.
    self.reset();
    if (destroyed->load()) return;
  }
}

}  // namespace mm
