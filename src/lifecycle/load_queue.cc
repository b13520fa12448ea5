#include "lifecycle/load_queue.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include <spdlog/spdlog.h>

namespace mm {

LoadQueue::LoadQueue(Options options)
    : options_([&] {
        options.per_tenant = std::max<size_t>(1, options.per_tenant);
        options.max_threads = std::max(options.max_threads, options.per_tenant);
        return options;
      }()) {}

LoadQueue::~LoadQueue() {
  Shutdown();
  MutexLock lock(mu_);
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.detach();  // only the caller's own thread is left
  }
}

void LoadQueue::Submit(std::string_view tenant, std::function<void()> job) {
  {
    MutexLock lock(mu_);
    if (!stopping_) {
      auto it = tenants_.find(tenant);
      if (it == tenants_.end()) it = tenants_.emplace(std::string(tenant), TenantJobs{}).first;
      it->second.queued.push_back(std::move(job));
      DispatchLocked();
      return;
    }
  }
  job();
}

std::map<std::string, LoadQueue::TenantJobs, std::less<>>::iterator LoadQueue::NextLocked() {
  auto next = tenants_.end();
  for (auto it = tenants_.begin(); it != tenants_.end(); ++it) {
    const TenantJobs& t = it->second;
    if (t.queued.empty() || t.running >= options_.per_tenant) continue;
    if (next == tenants_.end() || t.last_served < next->second.last_served) next = it;
  }
  return next;
}

bool LoadQueue::TakeLocked(Worker& worker) {
  auto it = NextLocked();
  if (it == tenants_.end()) return false;
  worker.job = std::move(it->second.queued.front());
  it->second.queued.pop_front();
  ++it->second.running;
  it->second.last_served = ++sequence_;
  worker.tenant = it->first;
  worker.has_job = true;
  ++running_;
  return true;
}

void LoadQueue::DispatchLocked() {
  ReapLocked();
  for (;;) {
    if (NextLocked() == tenants_.end()) return;
    if (!idle_.empty()) {
      Worker* w = idle_.back();
      idle_.pop_back();
      TakeLocked(*w);
      w->cv.NotifyOne();
      continue;
    }
    if (workers_.size() >= options_.max_threads) return;  // waits for a thread, in fair order
    auto worker = std::make_unique<Worker>();
    Worker* w = worker.get();
    TakeLocked(*w);
    try {
      w->thread = std::thread([this, w] { Loop(w); });
    } catch (const std::system_error& e) {
      // No thread to be had now: the job goes back to the front of its
      // queue, for the next thread that frees up.
      spdlog::error("cannot start a model loader thread ({} running): {}", workers_.size(),
                    e.what());
      auto it = tenants_.find(w->tenant);
      it->second.queued.push_front(std::move(w->job));
      --it->second.running;
      --running_;
      return;
    }
    workers_.push_back(std::move(worker));
  }
}

void LoadQueue::ReapLocked() {
  for (auto it = workers_.begin(); it != workers_.end();) {
    Worker& w = **it;
    if (w.finished && w.thread.get_id() != std::this_thread::get_id()) {
      if (w.thread.joinable()) w.thread.join();  // its loop has returned: quick
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
}

void LoadQueue::Loop(Worker* worker) {
  if (options_.nice != 0 &&
      setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), options_.nice) != 0) {
    spdlog::warn("cannot lower the priority of a model loader thread: {}", std::strerror(errno));
  }
  MutexLock lock(mu_);
  for (;;) {
    if (!worker->has_job && !TakeLocked(*worker)) {
      if (stopping_) break;
      idle_.push_back(worker);
      const auto until = std::chrono::steady_clock::now() + options_.linger;
      while (!worker->has_job && !stopping_) {
        if (!worker->cv.WaitUntil(lock, until)) break;
      }
      if (!worker->has_job) {
        // Lingered long enough, or stopping: leave the idle list and go.
        idle_.erase(std::find(idle_.begin(), idle_.end(), worker));
        break;
      }
    }
    std::function<void()> job = std::move(worker->job);
    worker->job = nullptr;
    lock.Unlock();
    job();
    job = nullptr;  // its captures go before the next job starts
    lock.Lock();
    worker->has_job = false;
    --running_;
    auto it = tenants_.find(worker->tenant);
    if (it != tenants_.end()) {
      --it->second.running;
      if (it->second.running == 0 && it->second.queued.empty()) tenants_.erase(it);
    }
    // The freed place may let other jobs start (this thread takes one first).
    if (TakeLocked(*worker)) {
      DispatchLocked();
    } else if (running_ == 0 && IdleLocked()) {
      idle_cv_.NotifyAll();
    }
  }
  worker->finished = true;
  finished_cv_.NotifyAll();
}

bool LoadQueue::IdleLocked() const {
  if (running_ > 0) return false;
  for (const auto& [tenant, t] : tenants_) {
    if (!t.queued.empty()) return false;
  }
  return true;
}

bool LoadQueue::AllFinishedLocked() const {
  return std::all_of(workers_.begin(), workers_.end(), [&](const auto& w) {
    return w->finished || w->thread.get_id() == std::this_thread::get_id();
  });
}

bool LoadQueue::WaitIdle(std::optional<std::chrono::steady_clock::time_point> deadline) {
  MutexLock lock(mu_);
  while (!IdleLocked()) {
    if (!deadline) {
      idle_cv_.Wait(lock);
    } else if (!idle_cv_.WaitUntil(lock, *deadline)) {
      return IdleLocked();
    }
  }
  return true;
}

bool LoadQueue::Shutdown(std::optional<std::chrono::steady_clock::time_point> deadline) {
  std::vector<std::function<void()>> queued;
  {
    MutexLock lock(mu_);
    stopping_ = true;
    // What never started runs here, in fair order, whatever its tenant.
    for (;;) {
      auto it = NextLocked();
      if (it == tenants_.end()) {
        // Tenants at their limit: their queued jobs too.
        for (auto& [tenant, t] : tenants_) {
          for (auto& job : t.queued) queued.push_back(std::move(job));
          t.queued.clear();
        }
        break;
      }
      queued.push_back(std::move(it->second.queued.front()));
      it->second.queued.pop_front();
      it->second.last_served = ++sequence_;
    }
    for (Worker* w : idle_) w->cv.NotifyOne();
  }
  for (auto& job : queued) {
    job();
    job = nullptr;
  }
  MutexLock lock(mu_);
  while (!AllFinishedLocked()) {
    if (!deadline) {
      finished_cv_.Wait(lock);
    } else if (!finished_cv_.WaitUntil(lock, *deadline) && !AllFinishedLocked()) {
      return false;
    }
  }
  ReapLocked();
  return true;
}

size_t LoadQueue::threads() const {
  MutexLock lock(mu_);
  size_t n = 0;
  for (const auto& w : workers_) n += w->finished ? 0 : 1;
  return n;
}

size_t LoadQueue::running() const {
  MutexLock lock(mu_);
  return running_;
}

}  // namespace mm
