#include "ctl/terminal.h"

#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace mm {

volatile std::sig_atomic_t g_stop_requested = 0;

namespace {

volatile std::sig_atomic_t g_resized = 0;

void OnStop(int) { g_stop_requested = 1; }
void OnResize(int) { g_resized = 1; }

void WriteAll(const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::write(STDOUT_FILENO, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

void Install(int sig, void (*handler)(int), struct sigaction* saved) {
  struct sigaction sa {};
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: poll() returns EINTR
  sigaction(sig, &sa, saved);
}

}  // namespace

bool IsTerminal(int fd) { return ::isatty(fd) == 1; }

TerminalSize GetTerminalSize(int fd) {
  winsize ws{};
  if (::ioctl(fd, TIOCGWINSZ, &ws) != 0) return {};
  return {ws.ws_col, ws.ws_row};
}

LiveScreen::LiveScreen() {
  g_stop_requested = 0;
  g_resized = 0;
  Install(SIGINT, &OnStop, &saved_int_);
  Install(SIGTERM, &OnStop, &saved_term_);
  Install(SIGWINCH, &OnResize, &saved_winch_);
  input_is_terminal_ = IsTerminal(STDIN_FILENO) && ::tcgetattr(STDIN_FILENO, &saved_termios_) == 0;
  if (input_is_terminal_) {
    termios raw = saved_termios_;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    ::tcsetattr(STDIN_FILENO, TCSANOW, &raw);
  }
  std::fflush(stdout);
  WriteAll("\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J");  // alternate screen, cursor hidden
}

LiveScreen::~LiveScreen() { Restore(); }

void LiveScreen::Restore() {
  if (restored_) return;
  restored_ = true;
  WriteAll("\x1b[?25h\x1b[?1049l");  // cursor shown, main screen back
  if (input_is_terminal_) ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_termios_);
  sigaction(SIGINT, &saved_int_, nullptr);
  sigaction(SIGTERM, &saved_term_, nullptr);
  sigaction(SIGWINCH, &saved_winch_, nullptr);
}

void LiveScreen::Draw(const std::string& frame) {
  const TerminalSize size = GetTerminalSize(STDOUT_FILENO);
  std::string out = "\x1b[H";
  size_t line_count = 0, start = 0;
  while (start < frame.size()) {
    size_t end = frame.find('\n', start);
    if (end == std::string::npos) end = frame.size();
    // The last row stays empty: a newline there would scroll the screen.
    if (size.rows > 0 && line_count + 1 >= size.rows) break;
    out.append(frame, start, end - start);
    out += "\x1b[K\n";
    ++line_count;
    start = end + 1;
  }
  out += "\x1b[J";
  WriteAll(out);
}

LiveScreen::Event LiveScreen::Wait(std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    if (g_stop_requested) return Event::kQuit;
    if (g_resized) {
      g_resized = 0;
      return Event::kResize;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return Event::kTimeout;
    pollfd fd{STDIN_FILENO, POLLIN, 0};
    const int n = ::poll(input_is_terminal_ ? &fd : nullptr, input_is_terminal_ ? 1 : 0,
                         static_cast<int>(left.count()));
    if (n < 0 && errno != EINTR) return Event::kQuit;  // stdin unusable
    if (n < 0) continue;                               // a signal: the flags say which
    if (n == 0) continue;
    if (fd.revents & (POLLHUP | POLLERR | POLLNVAL)) return Event::kQuit;
    char keys[64];
    const ssize_t got = ::read(STDIN_FILENO, keys, sizeof(keys));
    for (ssize_t i = 0; i < got; ++i) {
      if (keys[i] == 'q' || keys[i] == 'Q') return Event::kQuit;
    }
  }
}

}  // namespace mm
