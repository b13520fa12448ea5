// A reader-writer mutex Clang's thread-safety analysis can see (see
// core/thread_annotations.h for mm::Mutex and the macros).
//
// State guarded by a SharedMutex is declared MM_GUARDED_BY(mu_): reading it
// needs a ReaderLock (or a WriterLock), writing it a WriterLock. Functions
// that expect the lock held say MM_REQUIRES(mu_) (exclusive) or
// MM_REQUIRES_SHARED(mu_).
#pragma once

#include <shared_mutex>

#include "core/thread_annotations.h"

#ifndef MM_ACQUIRE_SHARED
#define MM_ACQUIRE_SHARED(...) MM_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#endif
#ifndef MM_RELEASE_SHARED
#define MM_RELEASE_SHARED(...) MM_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#endif
#ifndef MM_REQUIRES_SHARED
#define MM_REQUIRES_SHARED(...) MM_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
#endif

namespace mm {

// std::shared_mutex as a capability. Not recursive; a reader may not
// upgrade (release, then take a WriterLock, and look again).
class MM_CAPABILITY("shared_mutex") SharedMutex {
 public:
  SharedMutex() = default;
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;

  void Lock() MM_ACQUIRE() { mu_.lock(); }
  void Unlock() MM_RELEASE() { mu_.unlock(); }
  void LockShared() MM_ACQUIRE_SHARED() { mu_.lock_shared(); }
  void UnlockShared() MM_RELEASE_SHARED() { mu_.unlock_shared(); }

 private:
  std::shared_mutex mu_;
};

// Holds `mu` exclusively from construction to destruction.
class MM_SCOPED_CAPABILITY WriterLock {
 public:
  explicit WriterLock(SharedMutex& mu) MM_ACQUIRE(mu) : mu_(mu) { mu_.Lock(); }
  ~WriterLock() MM_RELEASE() { mu_.Unlock(); }
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

 private:
  SharedMutex& mu_;
};

// Holds `mu` shared from construction to destruction.
class MM_SCOPED_CAPABILITY ReaderLock {
 public:
  explicit ReaderLock(SharedMutex& mu) MM_ACQUIRE_SHARED(mu) : mu_(mu) { mu_.LockShared(); }
  ~ReaderLock() MM_RELEASE() { mu_.UnlockShared(); }
  ReaderLock(const ReaderLock&) = delete;
  ReaderLock& operator=(const ReaderLock&) = delete;

 private:
  SharedMutex& mu_;
};

}  // namespace mm
