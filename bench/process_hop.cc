// bench_process_hop [N]: what one request/reply between two processes costs
// on this machine, the floor under a worker process's overhead. Two ways,
// each N times (default 20000) with a child process that answers:
//  - futex: a word in shared memory flipped and woken, as a worker's mailbox
//    does (src/isolation/mailbox.h);
//  - socket: a 100-byte message over a Unix socketpair and its answer back
//    (the worker protocol's socket, used before the mailbox).
// Prints "PROCESS_HOP round_trip_us=F socket_round_trip_us=S" (F: futex).
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace {

using Clock = std::chrono::steady_clock;

double Micros(Clock::duration d, int n) {
  return std::chrono::duration<double, std::micro>(d).count() / n;
}

double SocketRoundTrip(int n) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) std::exit(1);
  char buf[256] = {};
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(fds[0]);
    for (;;) {
      const ssize_t got = ::read(fds[1], buf, sizeof(buf));
      if (got <= 0) ::_exit(0);
      if (::write(fds[1], buf, static_cast<size_t>(got)) != got) ::_exit(1);
    }
  }
  ::close(fds[1]);
  const auto start = Clock::now();
  for (int i = 0; i < n; ++i) {
    if (::write(fds[0], buf, 100) != 100 || ::read(fds[0], buf, sizeof(buf)) != 100) std::exit(1);
  }
  const auto end = Clock::now();
  ::close(fds[0]);
  ::waitpid(child, nullptr, 0);
  return Micros(end - start, n);
}

void Wait(uint32_t* word, uint32_t seen) {
  ::syscall(SYS_futex, word, FUTEX_WAIT, seen, nullptr, nullptr, 0);
}
void Wake(uint32_t* word) { ::syscall(SYS_futex, word, FUTEX_WAKE, 1, nullptr, nullptr, 0); }

// The word counts turns: odd, a request waits; even, it has its answer;
// kStop ends the child.
double FutexRoundTrip(int n) {
  constexpr uint32_t kStop = 0xFFFFFFFF;
  void* page = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) std::exit(1);
  uint32_t* word = static_cast<uint32_t*>(page);
  std::atomic_ref<uint32_t> turn(*word);
  turn.store(0);
  const pid_t child = ::fork();
  if (child == 0) {
    for (uint32_t want = 1;; want += 2) {
      uint32_t now;
      while ((now = turn.load(std::memory_order_acquire)) != want) {
        if (now == kStop) ::_exit(0);
        Wait(word, now);
      }
      turn.store(want + 1, std::memory_order_release);
      Wake(word);
    }
  }
  const auto start = Clock::now();
  for (uint32_t i = 0; i < static_cast<uint32_t>(n); ++i) {
    turn.store(2 * i + 1, std::memory_order_release);
    Wake(word);
    uint32_t now;
    while ((now = turn.load(std::memory_order_acquire)) != 2 * i + 2) Wait(word, now);
  }
  const auto end = Clock::now();
  turn.store(kStop, std::memory_order_release);
  Wake(word);
  ::waitpid(child, nullptr, 0);
  ::munmap(page, 4096);
  return Micros(end - start, n);
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 20000;
  const double futex = FutexRoundTrip(n);
  const double socket = SocketRoundTrip(n);
  std::printf("PROCESS_HOP round_trip_us=%.1f socket_round_trip_us=%.1f\n", futex, socket);
  return 0;
}
