// bench_thread_hop: what one hand-off between two threads costs on this
// machine, the price mmserve pays for each hop between its HTTP I/O thread and
// an execution thread (docs/benchmarks.md). Two threads ping-pong a turn
// through a mutex and condition variable, as mm::ThreadPool does; the program
// prints the one-way cost with both threads on one CPU and on two CPUs.
//
//   bench_thread_hop [ROUND_TRIPS]
#include <pthread.h>
#include <sched.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace {

bool Pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

// Microseconds per one-way hop, the partner thread on `partner_cpu`.
double OneWayHopMicros(int partner_cpu, int round_trips) {
  std::mutex mu;
  std::condition_variable cv;
  int turn = 0;  // guarded by mu: 1 = the partner's move, 0 = ours
  std::thread partner([&] {
    Pin(partner_cpu);
    for (int i = 0; i < round_trips; ++i) {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return turn == 1; });
      turn = 0;
      cv.notify_one();
    }
  });
  Pin(0);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < round_trips; ++i) {
    std::unique_lock<std::mutex> lock(mu);
    turn = 1;
    cv.notify_one();
    cv.wait(lock, [&] { return turn == 0; });
  }
  const auto end = std::chrono::steady_clock::now();
  partner.join();
  return std::chrono::duration<double, std::micro>(end - start).count() / round_trips / 2;
}

}  // namespace

int main(int argc, char** argv) {
  const int round_trips = argc > 1 ? std::atoi(argv[1]) : 20000;
  if (round_trips <= 0) {
    std::fprintf(stderr, "usage: bench_thread_hop [ROUND_TRIPS]\n");
    return 2;
  }
  std::printf("THREAD_HOP same_cpu_us=%.2f", OneWayHopMicros(0, round_trips));
  if (std::thread::hardware_concurrency() > 1) {
    std::printf(" other_cpu_us=%.2f", OneWayHopMicros(1, round_trips));
  }
  std::printf("\n");
  return 0;
}
