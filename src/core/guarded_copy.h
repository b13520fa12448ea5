// GuardedCopy: memcpy for memory that someone else may take away, such as a
// client's shared memory object. Touching a page of a file or shared memory
// mapping that lies past the object's end (the client truncated it after the
// server mapped it) raises SIGBUS, which by default kills the process. Inside
// GuardedCopy such a fault ends the copy and comes back as a Status instead.
//
// How: the first call installs a process-wide SIGBUS handler (SA_SIGINFO).
// A fault on a thread that is inside GuardedCopy, at an address within one of
// the two ranges it copies, jumps back out of the copy (siglongjmp). Any other
// SIGBUS is passed to the handler that was installed before (under ASan, its
// report), or, if there was none, gets the default action: the process dies
// as it would have without us. Nothing else is intercepted.
//
// Contract:
//  1. Only SIGBUS is caught. `dst` and `src` must be mapped for `n` bytes
//     (the caller keeps the mapping alive); a SIGSEGV is not ours to hide.
//  2. On a fault the bytes of `dst` before the faulting page may have been
//     written; the rest are unspecified.
//  3. Thread-safe; reentrant across threads (the guard is thread-local).
//     Costs one memcpy plus two thread-local stores; no system call.
//  4. Another component that installs its own SIGBUS handler later without
//     chaining to the previous one disables the guard (a fault then kills the
//     process as before).
#pragma once

#include <cstddef>

#include "core/status.h"

namespace mm {

// Copies `n` bytes from `src` to `dst` (they must not overlap).
// INVALID_ARGUMENT when either range stopped being readable/writable under the
// copy, saying which side and at which byte: "the source became unreadable at
// byte 4096 of 8192 (SIGBUS: the object behind it was truncated)". Callers add
// what the memory is.
Status GuardedCopy(void* dst, const void* src, size_t n);

// Installs the handler now (GuardedCopy does on first use). Idempotent.
void InstallGuardedCopyHandler();

}  // namespace mm
