#include "service/shutdown_deadline.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <utility>

namespace mm {

ShutdownDeadline::ShutdownDeadline(std::function<void()> cancel) : cancel_(std::move(cancel)) {}

ShutdownDeadline::~ShutdownDeadline() {
  {
    MutexLock lock(mu_);
    done_ = true;
  }
  cv_.NotifyAll();
  if (thread_.joinable()) thread_.join();
}

bool ShutdownDeadline::WaitDone(std::chrono::steady_clock::time_point deadline) {
  MutexLock lock(mu_);
  while (!done_) {
    if (!cv_.WaitUntil(lock, deadline) && std::chrono::steady_clock::now() >= deadline) {
      return done_;
    }
  }
  return true;
}

void ShutdownDeadline::Arm(std::chrono::seconds timeout, std::chrono::milliseconds grace) {
  thread_ = std::thread([this, timeout, grace] {
    if (WaitDone(std::chrono::steady_clock::now() + timeout)) return;
    expired_.store(true);
    spdlog::warn(
        "the exit timeout of {} s (--exit-timeout-secs) passed with work in flight: "
        "cancelling it (workers killed, their requests answered UNAVAILABLE)",
        timeout.count());
    cancel_();
    if (WaitDone(std::chrono::steady_clock::now() + grace)) return;
    spdlog::error("mmserve did not finish stopping {} ms after its exit timeout: exiting now",
                  grace.count());
    spdlog::default_logger()->flush();
    ::_exit(1);
  });
}

}  // namespace mm
