#include "isolation/worker_supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>

#include "isolation/memory_limit.h"

namespace mm {

namespace {
constexpr int kWatchdogPeriodMs = 100;
// Set on the threads that run a job: a job may drop the supervisor's last
// reference, and its destructor must not then wait for that very job.
thread_local bool tls_in_job = false;
}  // namespace

StatusOr<std::unique_ptr<WorkerSupervisor>> WorkerSupervisor::Create() {
  const int epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) return Internal(std::string("epoll_create1: ") + std::strerror(errno));
  const int wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) {
    ::close(epoll_fd);
    return Internal(std::string("eventfd: ") + std::strerror(errno));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;  // watch ids start at 1: 0 is the wake-up
  ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &ev);
  return std::unique_ptr<WorkerSupervisor>(new WorkerSupervisor(epoll_fd, wake_fd));
}

WorkerSupervisor::WorkerSupervisor(int epoll_fd, int wake_fd)
    : epoll_fd_(epoll_fd), wake_fd_(wake_fd) {
  reaper_ = std::thread([this] { ReaperLoop(); });
  workers_ = std::thread([this] { WorkersLoop(); });
}

WorkerSupervisor::~WorkerSupervisor() {
  destroyed_->store(true);
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  Wake();
  jobs_cv_.NotifyAll();
  // The last reference may go in a callback on one of the threads themselves.
  for (std::thread* t : {&reaper_, &workers_}) {
    if (t->get_id() == std::this_thread::get_id()) {
      t->detach();
    } else {
      t->join();
    }
  }
  {
    // Spawns the reaper did not take (it may be this very thread) are refused.
    std::vector<std::function<void(bool)>> tasks;
    {
      MutexLock lock(mu_);
      tasks.swap(reaper_tasks_);
    }
    for (auto& task : tasks) task(false);
  }
  {
    // Jobs running hold a worker core, which holds this supervisor: only a
    // job itself can be here while others run, and they end on their own
    // (their worker's handshake is bounded).
    MutexLock lock(running_->mu);
    const size_t self = tls_in_job ? 1 : 0;
    while (running_->count > self) running_->cv.Wait(lock);
  }
  for (int fd : children_) ::close(fd);
  ::close(wake_fd_);
  ::close(epoll_fd_);
}

void WorkerSupervisor::Shutdown(const std::string& reason) {
  MutexLock lock(mu_);
  if (shutdown_reason_.empty()) shutdown_reason_ = reason.empty() ? "shutting down" : reason;
  jobs_.clear();
  for (int fd : children_) ::syscall(SYS_pidfd_send_signal, fd, SIGKILL, nullptr, 0);
}

std::string WorkerSupervisor::shutdown_reason() const {
  MutexLock lock(mu_);
  return shutdown_reason_;
}

void WorkerSupervisor::PruneChildrenLocked() {
  std::erase_if(children_, [](int fd) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 0) == 0) return false;  // running
    ::close(fd);
    return true;
  });
}

void WorkerSupervisor::Wake() {
  const uint64_t one = 1;
  ssize_t ignored = ::write(wake_fd_, &one, sizeof(one));
  (void)ignored;
}

StatusOr<std::unique_ptr<WorkerProcess>> WorkerSupervisor::Spawn(
    const std::vector<std::string>& argv, int nice) {
  auto done = std::make_shared<std::promise<StatusOr<std::unique_ptr<WorkerProcess>>>>();
  auto result = done->get_future();
  {
    MutexLock lock(mu_);
    if (stopping_) return Unavailable("the server is stopping: no worker started");
    if (!shutdown_reason_.empty()) {
      return Unavailable("no worker started: the server is " + shutdown_reason_);
    }
    reaper_tasks_.push_back([this, done, argv, nice](bool run) {
      if (!run) {
        done->set_value(Unavailable("the server is stopping: no worker started"));
        return;
      }
      auto spawned = WorkerProcess::Spawn(argv, nice);
      if (spawned.ok()) {
        MutexLock lock(mu_);
        PruneChildrenLocked();
        const int fd = ::fcntl((*spawned)->pidfd(), F_DUPFD_CLOEXEC, 0);
        if (fd >= 0) children_.push_back(fd);
        // Shut down while it started: it goes at once.
        if (!shutdown_reason_.empty()) (*spawned)->Kill(SIGKILL);
      }
      done->set_value(std::move(spawned));
    });
  }
  Wake();
  return result.get();
}

WorkerSupervisor::WatchId WorkerSupervisor::Add(Watch watch) {
  MutexLock lock(mu_);
  const WatchId id = next_id_++;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = id;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, watch.pidfd, &ev);
  const bool watchdog = watch.rss_limit_bytes > 0;
  watches_.emplace(id, std::move(watch));
  if (watchdog) Wake();  // the loop picks its poll period up
  return id;
}

void WorkerSupervisor::Remove(WatchId id) {
  MutexLock lock(mu_);
  auto it = watches_.find(id);
  if (it == watches_.end()) return;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->second.pidfd, nullptr);
  watches_.erase(it);
}

void WorkerSupervisor::After(std::chrono::milliseconds delay, std::function<void()> job) {
  {
    MutexLock lock(mu_);
    if (stopping_ || !shutdown_reason_.empty()) return;
    jobs_.emplace(std::chrono::steady_clock::now() + delay, std::move(job));
  }
  jobs_cv_.NotifyAll();
}

void WorkerSupervisor::ReaperLoop() {
  ::pthread_setname_np(::pthread_self(), "mm-reaper");
  // Outlives this object: after each callback, whether it destroyed it.
  const std::shared_ptr<std::atomic<bool>> destroyed = destroyed_;
  epoll_event events[16];
  for (;;) {
    bool watchdog = false;
    std::vector<std::function<void(bool)>> tasks;
    {
      MutexLock lock(mu_);
      if (stopping_) break;
      tasks.swap(reaper_tasks_);
      for (const auto& [id, w] : watches_) watchdog = watchdog || w.rss_limit_bytes > 0;
    }
    for (auto& task : tasks) task(true);
    if (!tasks.empty()) continue;  // more may have come meanwhile
    const int n = ::epoll_wait(epoll_fd_, events, 16, watchdog ? kWatchdogPeriodMs : -1);
    std::vector<std::function<void()>> calls;
    {
      MutexLock lock(mu_);
      for (int i = 0; i < n; ++i) {
        const WatchId id = events[i].data.u64;
        if (id == 0) {
          uint64_t count;
          ssize_t ignored = ::read(wake_fd_, &count, sizeof(count));
          (void)ignored;
          continue;
        }
        auto it = watches_.find(id);
        if (it == watches_.end()) continue;
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->second.pidfd, nullptr);
        calls.push_back(std::move(it->second.on_exit));
        watches_.erase(it);
      }
      if (watchdog) {
        for (const auto& [id, w] : watches_) {
          if (w.rss_limit_bytes == 0) continue;
          const uint64_t rss = ResidentBytesOf(w.pid);
          if (rss > w.rss_limit_bytes) calls.push_back([f = w.on_over_limit, rss] { f(rss); });
        }
      }
    }
    for (auto& call : calls) {
      call();
      if (destroyed->load()) return;  // (its destructor refuses what is left)
    }
  }
  // Spawns asked for while stopping are refused, not left hanging.
  std::vector<std::function<void(bool)>> tasks;
  {
    MutexLock lock(mu_);
    tasks.swap(reaper_tasks_);
  }
  for (auto& task : tasks) task(false);
}

void WorkerSupervisor::WorkersLoop() {
  ::pthread_setname_np(::pthread_self(), "mm-workers");
  MutexLock lock(mu_);
  for (;;) {
    if (stopping_) return;
    if (jobs_.empty()) {
      jobs_cv_.Wait(lock);
      continue;
    }
    auto due = jobs_.begin()->first;
    if (std::chrono::steady_clock::now() < due) {
      jobs_cv_.WaitUntil(lock, due);
      continue;
    }
    auto job = std::move(jobs_.begin()->second);
    jobs_.erase(jobs_.begin());
    {
      MutexLock running(running_->mu);
      ++running_->count;
    }
    // Its own thread: a restart blocks for its worker's start, and must not
    // hold up another model's (issue 17, defect 5).
    std::thread([job = std::move(job), running = running_]() mutable {
      ::pthread_setname_np(::pthread_self(), "mm-restart");
      tls_in_job = true;
      job();
      job = nullptr;  // what it held (maybe this supervisor) goes first
      MutexLock lock(running->mu);
      --running->count;
      running->cv.NotifyAll();
    }).detach();
  }
}

}  // namespace mm
