#include "ctl/progress.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "ctl/format.h"
#include "ctl/table.h"
#include "ctl/terminal.h"

namespace mm {

namespace {

void WriteStderr(const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::write(STDERR_FILENO, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

constexpr auto kFrameEvery = std::chrono::milliseconds(100);

}  // namespace

std::string BouncingBar(size_t tick, size_t width) {
  constexpr size_t kBlock = 3;
  if (width <= kBlock) return "[" + std::string(width, '=') + "]";
  const size_t span = width - kBlock;  // positions 0..span
  const size_t phase = tick % (2 * span);
  const size_t pos = phase <= span ? phase : 2 * span - phase;
  return "[" + std::string(pos, ' ') + std::string(kBlock, '=') +
         std::string(width - kBlock - pos, ' ') + "]";
}

ProgressLine::ProgressLine(std::string label, std::function<std::string()> poll,
                           std::chrono::milliseconds poll_every)
    : label_(std::move(label)),
      poll_(std::move(poll)),
      poll_every_(poll_every),
      thread_([this] { Run(); }) {}

ProgressLine::~ProgressLine() { Stop(); }

void ProgressLine::Stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  wake_.NotifyAll();
  if (thread_.joinable()) thread_.join();
}

void ProgressLine::Run() {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto next_poll = start;
  std::string status;
  for (size_t tick = 0;; ++tick) {
    const auto now = Clock::now();
    if (poll_ && now >= next_poll) {
      status = poll_();
      next_poll = Clock::now() + poll_every_;
    }
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    std::string line = BouncingBar(tick, 12) + " " + label_;
    if (!status.empty()) line += "  " + status;
    line += "  " + FormatFixed(elapsed, 1) + " s";
    const size_t columns = GetTerminalSize(STDERR_FILENO).columns;
    if (columns > 1) line = TruncateToWidth(line, columns - 1);
    WriteStderr("\r" + line + "\x1b[K");
    MutexLock lock(mu_);
    const auto until = Clock::now() + kFrameEvery;
    while (!stopping_ && Clock::now() < until) wake_.WaitUntil(lock, until);
    if (stopping_) break;
  }
  WriteStderr("\r\x1b[K");
}

}  // namespace mm
