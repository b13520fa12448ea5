// ProcessBackend: runs each model instance in a worker process of its own,
// so that a crash, an out-of-memory or a hang in one model takes down only
// that model's worker (DESIGN.md, Isolation).
//
// One worker per instance: the scheduler already gives each instance one
// batch at a time, so a worker is single-threaded request/reply, and a crash
// costs only that instance's in-flight batch. (Per instance group would save
// one model copy per extra instance, but multiplex several batches over one
// socket and lose them all at once; docs/isolation.md.)
//
// A worker is `worker_command` (the mmserve binary with --worker) with the
// model name appended; it loads the model through the backend its platform
// names (worker_main.h); after the load the server posts its requests to
// the worker's mailbox (mailbox.h). Per instance the server keeps up to kMaxRegions
// shared-memory regions: an Execute writes the batch's inputs into a region
// once, the worker reads them in place and writes its outputs after them,
// and the response's output tensors point into that region and hold it
// (Tensor::owner); a later batch takes a region no response holds.
//
// Failures after the load:
//  - the worker's death is seen at once (its pidfd, on the supervisor's
//    reaper thread); its in-flight batch fails UNAVAILABLE naming the cause
//    ("model 'm' version 1 worker killed by signal 11 (Segmentation fault)"),
//    and so does every later batch until it is back;
//  - LoadSpec::on_health hears a non-OK status naming the cause and the
//    restart to come; the worker restarts after a backoff that doubles with
//    each consecutive failure (from restart_backoff up to
//    max_restart_backoff; a worker that ran longer than the maximum starts
//    the series again); on_health hears OK once every instance is back;
//  - a batch that runs past the execution timeout kills the worker ("killed:
//    execution exceeded the timeout of 2000 ms") and is treated the same;
//  - a worker over mmserve.memory_limit_bytes is killed (memory_limit.h says
//    how the limit is enforced; the log says which mechanism is in force).
// A failure during Load fails the load, naming the cause; nothing restarts.
//
// Calls (worker protocol v4): each worker also has a call socket, on which
// it speaks first: a decoupled model's responses (ExecuteDecoupled), BLS
// calls and custom metrics, served with the model's LoadSpec::host (null:
// answered UNAVAILABLE). One thread serves every worker's (call_hub.h); a
// worker that breaks that protocol or floods it is killed and restarts.
//
// Thread-safety: Load may be called concurrently; instances follow backend.h.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"

namespace mm {

class CallHub;
class WorkerSupervisor;

class ProcessBackend final : public Backend {
 public:
  struct Options {
    std::vector<std::string> worker_command;  // argv; the model name is appended
    // The models of these platforms (LoadSpec::platform) run in a program of
    // their own instead (argv likewise). Python models do, when it was built:
    // mmserve-python-worker links CPython's static, non-PIC library, whose
    // interpreter runs model code 10-15% faster than the shared
    // libpython3.11.so that mmserve links, and needs a non-PIE executable;
    // the server itself stays PIE (a Python worker runs tenant code anyway:
    // address randomisation protects nothing in it).
    std::map<std::string, std::vector<std::string>, std::less<>> worker_commands;
    // A batch running longer is killed with its worker (0: no limit); a
    // model's mmserve.execution_timeout_ms overrides it.
    std::chrono::milliseconds execution_timeout{0};
    // A worker's start (its health, its model's load, its mailbox: the
    // handshake) must end within this long, or the worker is killed and the
    // start fails (a load with DEADLINE_EXCEEDED; a restart is retried after
    // its backoff). Each worker starts on its own thread: a hung start never
    // holds up another model's.
    std::chrono::milliseconds start_timeout{60000};
    std::chrono::milliseconds restart_backoff{1000};
    std::chrono::milliseconds max_restart_backoff{30000};
    uint64_t initial_region_bytes = 1u << 20;  // grows to fit the largest batch
    // Each worker's mailbox (mailbox.h), kMinMailboxBytes to
    // kMaxMailboxBytes: a request or reply too large for its slot (half of
    // it, less 128 bytes) travels on the socket instead. (Tests make it tiny
    // to send everything that way.)
    uint64_t mailbox_bytes = 64u << 10;
    // A worker starts, and loads its model, at nice `load_nice` (as the
    // server's loader threads), so that a start or a restart (after a crash,
    // say) yields the CPU to the models serving; then it serves at nice
    // `serve_nice` (as the server's execution threads) when the system lets
    // it raise its priority (root, CAP_SYS_NICE or RLIMIT_NICE), else stays
    // at `load_nice` (said in the log). (SCHED_IDLE was tried for loading:
    // on a CPU kept busy by anything else, loads all but stopped.)
    int load_nice = 10;
    int serve_nice = 5;
  };

  static constexpr uint64_t kMinMailboxBytes = 256;
  static constexpr uint64_t kMaxMailboxBytes = 16u << 20;

  // INVALID_ARGUMENT for an empty worker_command, a backoff or start timeout
  // <= 0 or a mailbox size out of range;
  // INTERNAL when the supervisor threads cannot start.
  static StatusOr<std::unique_ptr<ProcessBackend>> Create(Options options);
  ~ProcessBackend() override;

  StatusOr<std::unique_ptr<LoadedModel>> Load(const LoadSpec& spec) override;

  // The server is stopping (its exit deadline passed): every worker is
  // killed (SIGKILL), those starting too; their in-flight batches fail
  // UNAVAILABLE saying "the server is <reason>", and nothing restarts or
  // starts after. Any thread; idempotent.
  void Shutdown(const std::string& reason);

 private:
  ProcessBackend(Options options, std::shared_ptr<WorkerSupervisor> supervisor,
                 std::shared_ptr<CallHub> hub);

  const Options options_;
  const std::shared_ptr<WorkerSupervisor> supervisor_;
  // Serves every worker's call socket (call_hub.h): decoupled responses,
  // BLS calls and custom metrics, with each model's LoadSpec::host.
  const std::shared_ptr<CallHub> hub_;
};

}  // namespace mm
