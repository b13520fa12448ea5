#include "core/guarded_copy.h"

#include <setjmp.h>
#include <signal.h>

#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>

namespace mm {

namespace {

// One guarded copy in progress on this thread.
struct Guard {
  sigjmp_buf env;
  uintptr_t dst = 0, dst_end = 0;
  uintptr_t src = 0, src_end = 0;
  volatile uintptr_t fault = 0;  // the faulting address, set by the handler
};

// Set only around the memcpy below. The library is linked statically into the
// executable, so this is an initial-exec TLS slot: safe to read in a handler.
thread_local Guard* volatile tl_guard = nullptr;

struct sigaction g_previous {};  // written once, before the handler is installed
std::once_flag g_installed;

void OnSigbus(int sig, siginfo_t* info, void* context) {
  Guard* guard = tl_guard;
  if (guard != nullptr) {
    const auto at = reinterpret_cast<uintptr_t>(info->si_addr);
    if ((at >= guard->dst && at < guard->dst_end) || (at >= guard->src && at < guard->src_end)) {
      guard->fault = at;
      tl_guard = nullptr;
      siglongjmp(guard->env, 1);  // SA_NODEFER: no signal mask to restore
    }
  }
  // Not a guarded copy's fault: what would have happened without us.
  if ((g_previous.sa_flags & SA_SIGINFO) != 0 && g_previous.sa_sigaction != nullptr) {
    g_previous.sa_sigaction(sig, info, context);
    return;
  }
  if ((g_previous.sa_flags & SA_SIGINFO) == 0 && g_previous.sa_handler != SIG_DFL &&
      g_previous.sa_handler != SIG_IGN) {
    g_previous.sa_handler(sig);
    return;
  }
  // Default action. For a hardware fault, returning re-runs the faulting
  // access, which now kills the process; raise() covers a SIGBUS sent by kill.
  signal(sig, SIG_DFL);
  raise(sig);
}

void Install() {
  struct sigaction action {};
  action.sa_sigaction = OnSigbus;
  // NODEFER: the handler leaves by siglongjmp without restoring a mask.
  // ONSTACK: use the thread's alternate stack if it has one (ASan's does).
  action.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  sigaction(SIGBUS, &action, &g_previous);
}

// Kept out of line so that the setjmp frame is this one alone.
[[gnu::noinline]] bool CopyOrFault(Guard& guard, void* dst, const void* src, size_t n) {
  if (sigsetjmp(guard.env, 0) != 0) return false;
  tl_guard = &guard;
  std::memcpy(dst, src, n);
  tl_guard = nullptr;
  return true;
}

}  // namespace

void InstallGuardedCopyHandler() { std::call_once(g_installed, Install); }

Status GuardedCopy(void* dst, const void* src, size_t n) {
  if (n == 0) return OkStatus();
  InstallGuardedCopyHandler();
  Guard guard;
  guard.dst = reinterpret_cast<uintptr_t>(dst);
  guard.dst_end = guard.dst + n;
  guard.src = reinterpret_cast<uintptr_t>(src);
  guard.src_end = guard.src + n;
  if (CopyOrFault(guard, dst, src, n)) return OkStatus();
  const uintptr_t at = guard.fault;
  const bool in_source = at >= guard.src && at < guard.src_end;
  const uintptr_t offset = at - (in_source ? guard.src : guard.dst);
  return InvalidArgument(std::string(in_source ? "the source became unreadable"
                                               : "the destination became unwritable") +
                         " at byte " + std::to_string(offset) + " of " + std::to_string(n) +
                         " (SIGBUS: the object behind it was truncated)");
}

}  // namespace mm
