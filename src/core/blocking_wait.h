// BlockingWait: a thread about to wait on something outside this process (a
// model's worker process), or to run something whose length nothing bounds
// (an ONNX graph whose loops its inputs' values drive), says so, for as long
// as the wait lasts, with a BlockingWait on its stack. Whoever runs the thread (the execution
// slots) may then hand the thread's share of the server's capacity to other work while the wait
// drags on: a stopped or hung worker then holds a thread, but no execution slot (issue 17: no model
// can stall what it does not own).
//
// Cost: two thread-local reads when no hooks are installed (an I/O thread, a
// test); with hooks, what they cost. Not nestable: an inner BlockingWait
// inside an outer one on the same thread ends the wait early.
#pragma once

namespace mm {

class BlockingWait {
 public:
  // Installed by a thread's owner, for that thread only (thread-local; null:
  // none). `begin` and `end` get `context`; they must not block for long.
  struct Hooks {
    void (*begin)(void* context) = nullptr;
    void (*end)(void* context) = nullptr;
    void* context = nullptr;
  };
  static void SetThreadHooks(const Hooks* hooks) { hooks_ = hooks; }

  BlockingWait() : hooks_in_force_(hooks_) {
    if (hooks_in_force_ != nullptr) hooks_in_force_->begin(hooks_in_force_->context);
  }
  ~BlockingWait() {
    if (hooks_in_force_ != nullptr) hooks_in_force_->end(hooks_in_force_->context);
  }
  BlockingWait(const BlockingWait&) = delete;
  BlockingWait& operator=(const BlockingWait&) = delete;

 private:
  static inline thread_local const Hooks* hooks_ = nullptr;
  const Hooks* const hooks_in_force_;
};

}  // namespace mm
