// A progress line on stderr (a terminal) while a long request runs, e.g. a
// model load: a bouncing bar, a label, a status polled on the line's own
// thread, and the seconds elapsed, redrawn in place and cleared at the end.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <thread>

#include "core/thread_annotations.h"

namespace mm {

// One bar frame: `width` cells holding a 3-cell block at a position that
// bounces from side to side as `tick` grows ("[  ===   ]").
std::string BouncingBar(size_t tick, size_t width);

class ProgressLine {
 public:
  // Starts drawing at once. `poll` runs on the line's thread about every
  // `poll_every` and returns the status shown (it may block on a request: the
  // line pauses meanwhile); it is never called after Stop returns.
  ProgressLine(std::string label, std::function<std::string()> poll,
               std::chrono::milliseconds poll_every = std::chrono::milliseconds(250));
  ~ProgressLine();  // Stop()
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  // Ends the thread and clears the line. Idempotent; call from the creating
  // thread.
  void Stop();

 private:
  void Run();

  const std::string label_;
  const std::function<std::string()> poll_;
  const std::chrono::milliseconds poll_every_;
  Mutex mu_;
  CondVar wake_;
  bool stopping_ MM_GUARDED_BY(mu_) = false;
  std::thread thread_;  // started last
};

}  // namespace mm
