#include "isolation/shared_region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace mm {

namespace {

std::string SystemError(std::string_view what) {
  return std::string(what) + ": " + std::strerror(errno);
}

constexpr int kRequiredSeals = F_SEAL_SHRINK | F_SEAL_GROW;

StatusOr<std::byte*> Map(int fd, uint64_t bytes) {
  void* base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) return Internal(SystemError("shared region: mmap"));
  return static_cast<std::byte*>(base);
}

}  // namespace

StatusOr<std::unique_ptr<SharedRegion>> SharedRegion::Create(std::string_view name,
                                                             uint64_t bytes) {
  if (bytes == 0) return InvalidArgument("shared region '" + std::string(name) + "': size is 0");
  const int fd = ::memfd_create(std::string(name).c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return Internal(SystemError("shared region: memfd_create"));
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0 ||
      ::fcntl(fd, F_ADD_SEALS, kRequiredSeals | F_SEAL_SEAL) != 0) {
    Status s = Internal(SystemError("shared region '" + std::string(name) + "' of " +
                                    std::to_string(bytes) + " bytes"));
    ::close(fd);
    return s;
  }
  auto base = Map(fd, bytes);
  if (!base.ok()) {
    ::close(fd);
    return base.status();
  }
  return std::unique_ptr<SharedRegion>(new SharedRegion(fd, *base, bytes));
}

StatusOr<std::unique_ptr<SharedRegion>> SharedRegion::Adopt(int fd, uint64_t expected_bytes) {
  auto fail = [fd](Status s) {
    ::close(fd);
    return s;
  };
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail(InvalidArgument(SystemError("shared region: fstat")));
  if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != expected_bytes ||
      expected_bytes == 0) {
    return fail(InvalidArgument("shared region: expected a memory file of " +
                                std::to_string(expected_bytes) + " bytes, got " +
                                (S_ISREG(st.st_mode) ? std::to_string(st.st_size) + " bytes"
                                                     : std::string("something else"))));
  }
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0 || (seals & kRequiredSeals) != kRequiredSeals) {
    return fail(InvalidArgument(
        "shared region: not sealed against resizing (a peer could shrink it under us)"));
  }
  auto base = Map(fd, expected_bytes);
  if (!base.ok()) return fail(base.status());
  return std::unique_ptr<SharedRegion>(new SharedRegion(fd, *base, expected_bytes));
}

SharedRegion::~SharedRegion() {
  ::munmap(base_, size_);
  ::close(fd_);
}

Status SendWithFd(int socket, std::span<const std::byte> data, int fd) {
  if (data.empty()) return InvalidArgument("SendWithFd: at least one byte must go with the fd");
  msghdr msg{};
  iovec iov{const_cast<std::byte*>(data.data()), data.size()};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return DeadlineExceeded("worker socket: the peer took nothing within the send timeout");
      }
      return Unavailable(SystemError("worker socket: send"));
    }
    sent += static_cast<size_t>(n);
    // The descriptor went with the first bytes; the rest go plain.
    iov.iov_base = const_cast<std::byte*>(data.data()) + sent;
    iov.iov_len = data.size() - sent;
    msg.msg_control = nullptr;
    msg.msg_controllen = 0;
  }
  return OkStatus();
}

}  // namespace mm
