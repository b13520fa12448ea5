// The terminal, for the ctl's live output: whether a stream is a terminal,
// its size, and the live view's screen (top): the alternate screen with the
// cursor hidden, keys read one at a time without echo, and everything put
// back on exit, on 'q', and after SIGINT/SIGTERM.
#pragma once

#include <termios.h>

#include <chrono>
#include <csignal>
#include <cstddef>
#include <string>

namespace mm {

bool IsTerminal(int fd);

struct TerminalSize {
  size_t columns = 0;  // 0: unknown
  size_t rows = 0;
};
// The size of the terminal on `fd` (TIOCGWINSZ); zeros when it is not one.
TerminalSize GetTerminalSize(int fd);

// Set by the live screen's SIGINT/SIGTERM handler while a LiveScreen exists;
// HttpClientOptions::cancel may point here so that a request in flight ends.
extern volatile std::sig_atomic_t g_stop_requested;

// The live view's screen on stdout, keys from stdin. Construction switches
// to the alternate screen, hides the cursor, puts stdin (when a terminal) in
// non-canonical no-echo mode and installs SIGINT/SIGTERM/SIGWINCH handlers;
// Restore() (also run by the destructor) undoes all of it, once.
// One at a time per process; not thread-safe.
class LiveScreen {
 public:
  LiveScreen();
  ~LiveScreen();
  LiveScreen(const LiveScreen&) = delete;
  LiveScreen& operator=(const LiveScreen&) = delete;

  void Restore();

  // Draws `frame` ('\n'-separated lines) from the top-left corner, clearing
  // what the previous frame left, cut to the screen's height.
  void Draw(const std::string& frame);

  enum class Event { kTimeout, kQuit, kResize };
  // Waits until `deadline` for 'q' (kQuit), a signal to stop (kQuit), or a
  // resize (kResize); kTimeout at the deadline.
  Event Wait(std::chrono::steady_clock::time_point deadline);

 private:
  bool restored_ = false;
  bool input_is_terminal_ = false;
  termios saved_termios_{};
  struct sigaction saved_int_ {
  }, saved_term_{}, saved_winch_{};
};

}  // namespace mm
