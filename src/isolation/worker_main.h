// The worker side of process isolation: what `mmserve --worker` runs. A
// worker holds one instance of one model version and serves the server's
// requests on its control socket (worker_protocol.h) until the server hands
// it a mailbox (mailbox.h), then from the mailbox; it ends when the server
// closes the one it is serving from (the server may also just kill it).
//
// Conversation (the server drives it; the worker only answers):
//   Region   maps the shared-memory region the tensors travel in (no reply)
//   Load     loads the model through the backend its platform names (found
//            in the worker's BackendRegistry, created then), keeps one
//            instance, answers the complete config
//   Execute  runs the inputs found in the region, writes the outputs into the
//            region at or after output_offset (64-byte aligned), answers where
//            they are; outputs that do not fit are answered with the region
//            size they need
//   Health, Stats, Unload  as the protocol says
//   Mailbox  adopts the mailbox and answers on the socket; from then on
//            requests come from the mailbox: the worker first reads the
//            frames the request announces on the socket (Regions, or the
//            request itself when it was too large for the slot), answers in
//            the reply slot, or on the socket when the reply does not fit
// A malformed message ends the worker (exit status 2) with the reason on
// stderr: the server and the worker are one build, so a bad frame means a
// broken channel, not a request to refuse.
//
// Memory: every allocation that fails (std::bad_alloc from operator new) ends
// the worker with kWorkerExitOutOfMemory, so that a model over its limit
// (RLIMIT_AS, set at Load) is reported as such rather than as a crash.
#pragma once

#include "backends/registry.h"

namespace mm {

inline constexpr int kWorkerExitOutOfMemory = 86;
inline constexpr int kWorkerExitProtocolError = 2;

// Serves `socket` (and the mailbox it brings) until the server closes the
// socket, or the mailbox once there is one (returns 0), or sends something
// malformed (returns kWorkerExitProtocolError). `backends` finds the backend
// a Load names (BackendRegistry::Find); it outlives the call.
int RunWorker(int socket, BackendRegistry& backends);

}  // namespace mm
