// Clang's thread-safety analysis (-Wthread-safety), and a mutex it can see.
//
// libstdc++'s std::mutex carries no capability attributes, so the analysis
// cannot check code that locks one. Guarded state therefore uses mm::Mutex
// with MutexLock (a scoped lock the analysis follows, which can be released
// and taken again) and CondVar (waits on a MutexLock), and is declared
// MM_GUARDED_BY(mu_). Functions that expect a lock held say MM_REQUIRES(mu_);
// those that take it themselves may say MM_EXCLUDES(mu_).
//
// Waits are written as loops, so the analysis sees the predicate read under
// the lock:
//
//   MutexLock lock(mu_);
//   while (!done_) cv_.Wait(lock);
//
// A lambda is analysed as a function of its own, holding nothing: one that
// runs under the caller's lock says so, [&]() MM_REQUIRES(mu_) { ... }.
//
// Other compilers see empty macros; mm::Mutex then costs what std::mutex does.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define MM_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define MM_THREAD_ANNOTATION(x)
#endif

#define MM_CAPABILITY(x) MM_THREAD_ANNOTATION(capability(x))
#define MM_SCOPED_CAPABILITY MM_THREAD_ANNOTATION(scoped_lockable)
#define MM_GUARDED_BY(x) MM_THREAD_ANNOTATION(guarded_by(x))
#define MM_PT_GUARDED_BY(x) MM_THREAD_ANNOTATION(pt_guarded_by(x))
#define MM_ACQUIRED_BEFORE(...) MM_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define MM_ACQUIRED_AFTER(...) MM_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
#define MM_REQUIRES(...) MM_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define MM_ACQUIRE(...) MM_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define MM_RELEASE(...) MM_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define MM_TRY_ACQUIRE(...) MM_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define MM_EXCLUDES(...) MM_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define MM_ASSERT_CAPABILITY(x) MM_THREAD_ANNOTATION(assert_capability(x))
#define MM_RETURN_CAPABILITY(x) MM_THREAD_ANNOTATION(lock_returned(x))
// For the rare function the analysis cannot follow (say why beside it).
#define MM_NO_THREAD_SAFETY_ANALYSIS MM_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace mm {

// A std::mutex the analysis knows as a capability. Not recursive.
class MM_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() MM_ACQUIRE() { mu_.lock(); }
  void Unlock() MM_RELEASE() { mu_.unlock(); }
  bool TryLock() MM_TRY_ACQUIRE(true) { return mu_.try_lock(); }
  // Tells the analysis the caller holds it (where it cannot see so itself,
  // e.g. in a callback run under the lock).
  void AssertHeld() const MM_ASSERT_CAPABILITY(this) {}

 private:
  friend class MutexLock;
  std::mutex mu_;
};

// Holds `mu` from construction to destruction; Unlock() and Lock() release
// and take it again in between (the destructor releases only if held).
class MM_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) MM_ACQUIRE(mu) : lock_(mu.mu_) {}
  ~MutexLock() MM_RELEASE() {}
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void Unlock() MM_RELEASE() { lock_.unlock(); }
  void Lock() MM_ACQUIRE() { lock_.lock(); }

 private:
  friend class CondVar;
  std::unique_lock<std::mutex> lock_;
};

// A condition variable waited on through a MutexLock. Spurious wake-ups
// happen: wait in a loop on the guarded condition.
class CondVar {
 public:
  void Wait(MutexLock& lock) { cv_.wait(lock.lock_); }
  // False when `deadline` passed (the condition may still have changed).
  template <class Clock, class Duration>
  bool WaitUntil(MutexLock& lock, std::chrono::time_point<Clock, Duration> deadline) {
    return cv_.wait_until(lock.lock_, deadline) == std::cv_status::no_timeout;
  }
  template <class Rep, class Period>
  bool WaitFor(MutexLock& lock, std::chrono::duration<Rep, Period> timeout) {
    return cv_.wait_for(lock.lock_, timeout) == std::cv_status::no_timeout;
  }
  void NotifyOne() { cv_.notify_one(); }
  void NotifyAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace mm
