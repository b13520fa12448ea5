// ExecutionSlots: the server's one pool of execution slots, shared by every
// model, handed out by weighted fair sharing (DESIGN.md "Scheduling").
//
// A slot is the right to run one model execution (one batch) at a time; there
// are `slots` of them, each with its own thread. A model that has work asks
// for a slot with Request(); when slots are scarcer than the work, the next
// free slot goes to the model its FairShare picks: tenants first, then the
// models of a tenant, each by its weight, in execution time. So a flooded
// model cannot starve the others, and no model with work waits for ever.
//
// Costs: a pick is charged the flow's average execution time at once (so that
// several slots freeing together do not all go to one model), and corrected to
// what the execution really cost when it ends.
//
// Inline work: a caller may run a short execution on its own thread (no thread
// hop) after TryAcquireInline(), which succeeds only when a slot is idle and
// no model is waiting for one; it must ReleaseInline() after. Inline runs are
// not charged: nobody was waiting for the slot they took, and a charge for
// uncontended service would only push that model behind the others later.
//
// Flows: a flow is a model (by tenant and model name), shared by all the
// versions of that model that are loaded; Register() twice with the same names
// returns the same flow, and it is dropped at the last Unregister().
//
// Lent slots: an execution that waits outside the process (a model's worker
// process: BlockingWait, core/blocking_wait.h) for longer than lend_after_ns
// while other work waits and every slot is taken gives its slot up: a new
// slot thread takes its place, and the waiting thread ends once its
// execution does. So a stopped or hung worker holds a thread, never a share
// of the slots, and other models keep running (issue 17). At most max_lent
// threads are out on loan at once; past that, stalls hold their slots.
//
// Lifetime and threads: Request() keeps its SlotUser alive until its
// RunOnSlot() has returned; RunOnSlot() is called with no lock of this class
// held and may call Request() or Unregister(). Every method is thread-safe.
// Shutdown() (also run by the destructor) finishes every request already made
// and every one those executions make in turn, then joins the threads; after
// that Request() refuses (returns false) and the caller runs the work itself.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/thread_annotations.h"
#include "scheduler/fair_share.h"

namespace mm {

// What runs on a slot: a model scheduler.
class SlotUser {
 public:
  virtual ~SlotUser() = default;
  // Runs at most one execution (one batch); may Request() the next slot.
  // Returns what it cost in nanoseconds: 0 when there was nothing to run (the
  // work was taken by another slot, timed out or was cancelled).
  //
  // (Measured: handing the next request back through the return value
  // instead, to save Request()'s lock, cut add_sub at concurrency 32 from 60k
  // to 45k requests/s: a third of the requests stopped running inline and
  // context switches went from 0.05 to 0.75 per request. Why is not yet
  // understood.)
  virtual int64_t RunOnSlot() = 0;
};

struct ExecutionSlotsOptions {
  size_t slots = 1;
  // false: no threads; the test drives the slots with RunNext().
  bool with_threads = true;
  // Charged for a pick of a flow whose cost is not known yet (ns).
  int64_t initial_cost_ns = 100'000;
  // Nice value of the slot threads, relative to the process (0: the same as
  // the I/O threads). Positive: on a busy CPU, the I/O threads (decoding a
  // request, writing an answer) get the CPU before a long execution's next
  // time slice, so the queueing decisions made here are not undone by the
  // kernel's.
  int nice = 0;
  // An execution in a BlockingWait for longer than this, while work waits
  // for a slot, lends its slot (0: never). Needs with_threads.
  int64_t lend_after_ns = 500'000'000;
  size_t max_lent = 256;
};

class ExecutionSlots {
 public:
  using Options = ExecutionSlotsOptions;

  // A registered flow; 0 is never a flow.
  struct Flow {
    uint64_t id = 0;
  };

  explicit ExecutionSlots(Options options);
  ~ExecutionSlots();
  ExecutionSlots(const ExecutionSlots&) = delete;
  ExecutionSlots& operator=(const ExecutionSlots&) = delete;

  size_t size() const { return slots_; }

  // Weight of a tenant (default 1), for flows registered before or after.
  // INVALID_ARGUMENT unless finite and > 0.
  Status SetTenantWeight(std::string_view tenant, double weight);

  // The flow of `model` of `tenant` with `weight` within the tenant. A second
  // registration of the same names shares the flow and sets its weight.
  // INVALID_ARGUMENT for a bad weight.
  StatusOr<Flow> Register(std::string_view tenant, std::string_view model, double weight = 1.0);
  // Drops one registration; the flow goes with the last. The caller has no
  // Request() outstanding on it (its SlotUser is then alive, and it is the one
  // unregistering, so it cannot be).
  void Unregister(Flow flow);

  // Asks for one slot on `flow`: user->RunOnSlot() is called once, on a slot
  // thread, when the fair share gives `flow` a slot. Several requests of one
  // flow are served in order. false after Shutdown(): nothing is kept, the
  // caller runs the work itself.
  bool Request(Flow flow, std::shared_ptr<SlotUser> user);

  // Claims an idle slot for the calling thread when no flow waits for one.
  bool TryAcquireInline();
  // Frees the slot claimed by TryAcquireInline(). Lock-free unless a flow
  // waits for a slot.
  void ReleaseInline();

  // Without threads: runs the next pick on this thread, if a slot is free and
  // a flow waits. false when nothing ran.
  bool RunNext();

  void Shutdown();

  // Slots in use now (executing on slot threads or inline).
  size_t busy() const { return busy_.load(std::memory_order_relaxed); }
  // Requests waiting for a slot now.
  size_t waiting() const { return waiting_.load(std::memory_order_relaxed); }
  // Threads whose slot went to other work while they wait (see Lent slots).
  size_t lent() const;

 private:
  struct FlowState {
    FlowId fair;
    std::string key;  // in by_name_
    int registrations = 0;
    double cost_ns = 0;  // moving average of its executions; 0 until one
    std::deque<std::shared_ptr<SlotUser>> requests;
  };

  // A slot thread, and what the lending needs of it.
  struct SlotThread {
    ExecutionSlots* slots = nullptr;
    std::thread thread;
    // Steady-clock ns when its BlockingWait began; 0 outside one.
    std::atomic<int64_t> waiting_since_ns{0};
    // Guarded by the owner's mu_ (which a nested struct's annotation cannot
    // name; every access is in a member of ExecutionSlots holding it).
    bool lent = false;      // its slot went to other work
    bool finished = false;  // its loop has ended
  };
  // Starts a slot thread.
  void StartThreadLocked() MM_REQUIRES(mu_);
  void Loop(SlotThread* self) MM_EXCLUDES(mu_);
  // Wakes every so often while an execution is in a BlockingWait, and lends
  // the slots of those that wait too long while work waits.
  void WatchLoop() MM_EXCLUDES(watch_mu_);
  void LendStalledSlots() MM_EXCLUDES(mu_);
  static void BeginBlockingWait(void* self);
  static void EndBlockingWait(void* self);
  // Requires a waiting flow and a claimed slot: takes the next request,
  // charges its estimate. Returns the flow id, the charge and the user.
  std::tuple<uint64_t, double, std::shared_ptr<SlotUser>> PickLocked() MM_REQUIRES(mu_);
  // Records what an execution of `flow` cost, given what was charged for it
  // already.
  void SettleLocked(uint64_t flow, double charged, int64_t cost_ns) MM_REQUIRES(mu_);
  // Runs a pick (slot claimed) and frees the slot.
  void RunPick() MM_EXCLUDES(mu_);
  bool TryClaim();

  const size_t slots_;
  const Options options_;

  // Slots in use, claimed by CAS: inline claims take no lock.
  std::atomic<size_t> busy_{0};
  // Requests queued in all flows; read without mu_ by TryAcquireInline.
  std::atomic<size_t> waiting_{0};

  mutable Mutex mu_;
  CondVar cv_;
  FairShare fair_ MM_GUARDED_BY(mu_);
  std::unordered_map<uint64_t, FlowState> flows_ MM_GUARDED_BY(mu_);
  std::map<std::string, uint64_t, std::less<>> by_name_ MM_GUARDED_BY(mu_);
  bool stopping_ MM_GUARDED_BY(mu_) = false;
  // Set once no slot thread is left to serve a request: Request() refuses.
  bool stopped_ MM_GUARDED_BY(mu_) = false;
  size_t live_threads_ MM_GUARDED_BY(mu_) = 0;
  std::list<SlotThread> threads_ MM_GUARDED_BY(mu_);  // (the list)
  size_t lent_ MM_GUARDED_BY(mu_) = 0;
  std::atomic<size_t> blocked_{0};  // threads in a BlockingWait now
  Mutex watch_mu_;                  // the watcher's sleep (not mu_: cheap to wake)
  CondVar watch_cv_;
  bool watch_stopping_ MM_GUARDED_BY(watch_mu_) = false;
  std::thread watcher_;  // constant after construction
};

}  // namespace mm
