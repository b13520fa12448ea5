// bench_process_hop [N]: what one request/reply between two processes costs
// on this machine, the floor under a worker process's overhead: a 100-byte
// message to a child process over a Unix socketpair and its answer back,
// N times (default 20000). Prints "PROCESS_HOP round_trip_us=X".
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 20000;
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) return 1;
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
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    if (::write(fds[0], buf, 100) != 100 || ::read(fds[0], buf, sizeof(buf)) != 100) return 1;
  }
  const auto end = std::chrono::steady_clock::now();
  ::close(fds[0]);
  ::waitpid(child, nullptr, 0);
  std::printf("PROCESS_HOP round_trip_us=%.1f\n",
              std::chrono::duration<double, std::micro>(end - start).count() / n);
  return 0;
}
