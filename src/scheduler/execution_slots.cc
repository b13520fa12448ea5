#include "scheduler/execution_slots.h"

#include "scheduler/clock.h"

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "core/blocking_wait.h"

namespace mm {

namespace {

// The flow key: tenant and model, separated by a byte no name may hold.
std::string Key(std::string_view tenant, std::string_view model) {
  std::string key;
  key.reserve(tenant.size() + model.size() + 1);
  key.append(tenant).push_back('\0');
  key.append(model);
  return key;
}

int64_t SteadyNs() { return SteadyClock::Get()->NowNs(); }

}  // namespace

ExecutionSlots::ExecutionSlots(Options options)
    : slots_(std::max<size_t>(1, options.slots)), options_(options) {
  if (!options.with_threads) return;
  {
    MutexLock lock(mu_);
    for (size_t i = 0; i < slots_; ++i) StartThreadLocked();
  }
  if (options_.lend_after_ns > 0) watcher_ = std::thread([this] { WatchLoop(); });
}

void ExecutionSlots::StartThreadLocked() {
  SlotThread& t = threads_.emplace_back();
  t.slots = this;
  ++live_threads_;
  t.thread = std::thread([this, self = &t] { Loop(self); });
}

size_t ExecutionSlots::lent() const {
  MutexLock lock(mu_);
  return lent_;
}

void ExecutionSlots::BeginBlockingWait(void* context) {
  auto* self = static_cast<SlotThread*>(context);
  self->waiting_since_ns.store(SteadyNs(), std::memory_order_relaxed);
  ExecutionSlots* slots = self->slots;
  if (slots->blocked_.fetch_add(1) == 0) {
    MutexLock lock(slots->watch_mu_);
    slots->watch_cv_.NotifyOne();
  }
}

void ExecutionSlots::EndBlockingWait(void* context) {
  auto* self = static_cast<SlotThread*>(context);
  self->waiting_since_ns.store(0, std::memory_order_relaxed);
  self->slots->blocked_.fetch_sub(1);
}

void ExecutionSlots::WatchLoop() {
  pthread_setname_np(pthread_self(), "mm-slot-watch");
  const auto period =
      std::chrono::nanoseconds(std::max<int64_t>(options_.lend_after_ns / 4, 1'000'000));
  MutexLock lock(watch_mu_);
  for (;;) {
    if (blocked_.load() == 0) {
      while (!watch_stopping_ && blocked_.load() == 0) watch_cv_.Wait(lock);
    } else {
      const auto until = std::chrono::steady_clock::now() + period;
      while (!watch_stopping_ && watch_cv_.WaitUntil(lock, until)) {
      }
    }
    if (watch_stopping_) return;
    lock.Unlock();
    LendStalledSlots();
    lock.Lock();
  }
}

void ExecutionSlots::LendStalledSlots() {
  std::vector<std::thread> ended;
  {
    MutexLock lock(mu_);
    // Threads that ended after a loan are joined here.
    for (auto it = threads_.begin(); it != threads_.end();) {
      if (it->finished && it->lent) {
        ended.push_back(std::move(it->thread));
        it = threads_.erase(it);
      } else {
        ++it;
      }
    }
    const int64_t now = SteadyNs();
    size_t wanted = waiting_.load();
    for (SlotThread& t : threads_) {
      if (wanted == 0 || busy_.load() < slots_ || lent_ >= options_.max_lent || stopped_) break;
      const int64_t since = t.waiting_since_ns.load(std::memory_order_relaxed);
      if (t.lent || t.finished || since == 0 || now - since < options_.lend_after_ns) continue;
      t.lent = true;
      ++lent_;
      --wanted;
      busy_.fetch_sub(1);
      StartThreadLocked();  // (the list may grow while we walk it: std::list keeps t valid)
      spdlog::warn(
          "execution slots: an execution has been in a blocking wait (on a worker process, or "
          "a graph whose run time its inputs decide) for {} ms while other work waits; its "
          "slot goes to that work ({} lent now)",
          (now - since) / 1'000'000, lent_);
      cv_.NotifyOne();
    }
  }
  for (std::thread& t : ended) t.join();
}

ExecutionSlots::~ExecutionSlots() { Shutdown(); }

Status ExecutionSlots::SetTenantWeight(std::string_view tenant, double weight) {
  MutexLock lock(mu_);
  return fair_.SetTenantWeight(tenant, weight);
}

StatusOr<ExecutionSlots::Flow> ExecutionSlots::Register(std::string_view tenant,
                                                        std::string_view model, double weight) {
  std::string key = Key(tenant, model);
  MutexLock lock(mu_);
  if (auto it = by_name_.find(key); it != by_name_.end()) {
    FlowState& f = flows_.at(it->second);
    MM_RETURN_IF_ERROR(fair_.SetFlowWeight(f.fair, weight));
    ++f.registrations;
    return Flow{it->second};
  }
  auto fair = fair_.AddFlow(tenant, model, weight);
  if (!fair.ok()) return fair.status();
  const uint64_t id = static_cast<uint64_t>(*fair);
  FlowState& f = flows_[id];
  f.fair = *fair;
  f.key = key;
  f.registrations = 1;
  by_name_.emplace(std::move(key), id);
  return Flow{id};
}

void ExecutionSlots::Unregister(Flow flow) {
  MutexLock lock(mu_);
  auto it = flows_.find(flow.id);
  if (it == flows_.end() || --it->second.registrations > 0) return;
  (void)fair_.RemoveFlow(it->second.fair);
  by_name_.erase(it->second.key);
  flows_.erase(it);
}

bool ExecutionSlots::Request(Flow flow, std::shared_ptr<SlotUser> user) {
  MutexLock lock(mu_);
  if (stopped_) return false;
  auto it = flows_.find(flow.id);
  if (it == flows_.end()) return false;  // not registered: the caller runs it
  it->second.requests.push_back(std::move(user));
  (void)fair_.MarkReady(it->second.fair);
  // seq_cst with busy_ (see ReleaseInline): one of the two sides wakes a thread.
  waiting_.fetch_add(1);
  if (busy_.load() < slots_) cv_.NotifyOne();
  return true;
}

bool ExecutionSlots::TryClaim() {
  size_t busy = busy_.load();
  while (busy < slots_) {
    if (busy_.compare_exchange_weak(busy, busy + 1)) return true;
  }
  return false;
}

bool ExecutionSlots::TryAcquireInline() {
  if (waiting_.load(std::memory_order_relaxed) != 0) return false;  // waiting work goes first
  return TryClaim();
}

void ExecutionSlots::ReleaseInline() {
  busy_.fetch_sub(1);
  if (waiting_.load() == 0) return;
  // A request may have found every slot busy and woken nobody.
  MutexLock lock(mu_);
  cv_.NotifyOne();
}

std::tuple<uint64_t, double, std::shared_ptr<SlotUser>> ExecutionSlots::PickLocked() {
  const uint64_t id = static_cast<uint64_t>(*fair_.Next());
  FlowState& f = flows_.at(id);
  std::shared_ptr<SlotUser> user = std::move(f.requests.front());
  f.requests.pop_front();
  if (f.requests.empty()) (void)fair_.MarkIdle(f.fair);
  waiting_.fetch_sub(1);
  const double charge = f.cost_ns > 0
                            ? f.cost_ns
                            : static_cast<double>(std::max<int64_t>(1, options_.initial_cost_ns));
  (void)fair_.Charge(f.fair, charge);
  return {id, charge, std::move(user)};
}

void ExecutionSlots::SettleLocked(uint64_t flow, double charged, int64_t cost_ns) {
  auto it = flows_.find(flow);
  if (it == flows_.end()) return;  // dropped while it ran
  FlowState& f = it->second;
  const double cost = static_cast<double>(std::max<int64_t>(0, cost_ns));
  if (cost > 0) f.cost_ns = f.cost_ns == 0 ? cost : f.cost_ns + (cost - f.cost_ns) / 8;
  if (cost > charged) {
    (void)fair_.Charge(f.fair, cost - charged);
  } else if (cost < charged) {
    (void)fair_.Refund(f.fair, charged - cost);
  }
}

void ExecutionSlots::RunPick() {
  uint64_t flow = 0;
  double charged = 0;
  std::shared_ptr<SlotUser> user;
  {
    MutexLock lock(mu_);
    std::tie(flow, charged, user) = PickLocked();
  }
  const int64_t cost = user->RunOnSlot();
  user.reset();  // may drop the model, which unregisters: outside mu_
  MutexLock lock(mu_);
  SettleLocked(flow, charged, cost);
  busy_.fetch_sub(1);
}

bool ExecutionSlots::RunNext() {
  {
    MutexLock lock(mu_);
    if (waiting_.load() == 0 || !TryClaim()) return false;
  }
  RunPick();
  return true;
}

void ExecutionSlots::Loop(SlotThread* self) {
  pthread_setname_np(pthread_self(), "mm-slot");
  const BlockingWait::Hooks hooks{&BeginBlockingWait, &EndBlockingWait, self};
  if (options_.lend_after_ns > 0) BlockingWait::SetThreadHooks(&hooks);
  if (options_.nice != 0 && setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()),
                                        getpriority(PRIO_PROCESS, 0) + options_.nice) != 0) {
    spdlog::warn("execution slots: cannot set nice {} on a slot thread: {}", options_.nice,
                 std::strerror(errno));
  }
  MutexLock lock(mu_);
  for (;;) {
    while (
        !((waiting_.load() > 0 && busy_.load() < slots_) || (stopping_ && waiting_.load() == 0))) {
      cv_.Wait(lock);
    }
    if (waiting_.load() == 0) break;  // stopping, and nothing left to serve
    if (!TryClaim()) continue;        // an inline caller took the slot
    auto [flow, charged, user] = PickLocked();
    lock.Unlock();
    const int64_t cost = user->RunOnSlot();
    user.reset();  // may drop the model, which unregisters: outside mu_
    lock.Lock();
    SettleLocked(flow, charged, cost);
    if (self->lent) {
      // Its slot went to another thread while it waited: it ends here.
      --lent_;
      break;
    }
    busy_.fetch_sub(1);
  }
  BlockingWait::SetThreadHooks(nullptr);
  self->finished = true;
  // A live thread never leaves work behind: it left with nothing waiting (or
  // its slot lives on in another thread), and while one remains, Request()
  // is still served.
  if (--live_threads_ == 0) stopped_ = true;
  cv_.NotifyAll();
}

void ExecutionSlots::Shutdown() {
  {
    MutexLock lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (!options_.with_threads) {
    // Driven by hand: what was asked for still runs, here.
    while (RunNext()) {
    }
    MutexLock lock(mu_);
    stopped_ = true;
    return;
  }
  cv_.NotifyAll();
  if (watcher_.joinable()) {
    {
      MutexLock lock(watch_mu_);
      watch_stopping_ = true;
    }
    watch_cv_.NotifyAll();
    watcher_.join();
  }
  // No thread starts now (only the watcher started them).
  std::vector<std::thread> threads;
  {
    MutexLock lock(mu_);
    for (SlotThread& t : threads_) threads.push_back(std::move(t.thread));
  }
  for (auto& t : threads) {
    if (t.joinable()) t.join();
  }
}

}  // namespace mm
