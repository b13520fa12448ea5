// Counts a process's heap allocations and lock acquisitions, for the request
// path's budget test (test_request_budget.py). LD_PRELOADed into the release
// server; every allocation function (malloc and C++'s operator new, which
// jemalloc defines too) and every pthread mutex or rwlock acquisition is
// counted, then forwarded to the definition it hides.
//
// The counts live in a file mapped shared, $MMSERVE_ALLOC_COUNT_DIR/<pid>, so
// the test reads them while the process runs, asking it nothing (a scrape
// would allocate). Each process writes its own file: a worker process, started
// with the same environment, counts apart from its server.
//
// Built by the test with the system's C compiler; not part of the server.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

// The file's layout, read by the test: four little-endian uint64.
struct Counts {
  _Atomic uint64_t allocations;  // malloc, calloc, realloc, aligned, operator new
  _Atomic uint64_t bytes;        // bytes asked for by those
  _Atomic uint64_t locks;        // pthread_mutex_lock/trylock, rwlock rd/wr locks
  _Atomic uint64_t pid;          // whose counts these are
};

static struct Counts fallback_counts;
static struct Counts* counts = &fallback_counts;

static void count_allocation(size_t n) {
  atomic_fetch_add_explicit(&counts->allocations, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&counts->bytes, n, memory_order_relaxed);
}

// dlsym may allocate before the real functions are known: from a static
// arena, never freed.
static _Alignas(64) char boot_arena[64 * 1024];
static size_t boot_used;
static void* boot_alloc(size_t n) {
  n = (n + 63) & ~(size_t)63;
  if (boot_used + n > sizeof boot_arena) abort();
  void* p = boot_arena + boot_used;
  boot_used += n;
  return p;
}
static int in_boot(const void* p) {
  return (const char*)p >= boot_arena && (const char*)p < boot_arena + sizeof boot_arena;
}

typedef void* (*malloc_fn)(size_t);
typedef void* (*calloc_fn)(size_t, size_t);
typedef void* (*realloc_fn)(void*, size_t);
typedef void (*free_fn)(void*);
typedef int (*posix_memalign_fn)(void**, size_t, size_t);
typedef void* (*aligned_fn)(size_t, size_t);
typedef void* (*new_fn)(size_t);
typedef void* (*new_nothrow_fn)(size_t, const void*);
typedef void* (*new_aligned_fn)(size_t, size_t);
typedef void* (*new_aligned_nothrow_fn)(size_t, size_t, const void*);
typedef int (*lock_fn)(void*);

static malloc_fn real_malloc;
static calloc_fn real_calloc;
static realloc_fn real_realloc;
static free_fn real_free;
static posix_memalign_fn real_posix_memalign;
static aligned_fn real_aligned_alloc, real_memalign;
static new_fn real_new, real_new_array;
static new_nothrow_fn real_new_nothrow, real_new_array_nothrow;
static new_aligned_fn real_new_aligned, real_new_array_aligned;
static new_aligned_nothrow_fn real_new_aligned_nothrow, real_new_array_aligned_nothrow;
static lock_fn real_mutex_lock, real_mutex_trylock, real_rdlock, real_wrlock;

// volatile: glibc declares dlsym a leaf (it calls nothing of ours), so a
// plain flag set around it would be optimized away; it does call malloc.
static volatile int resolving;
static void resolve(void) {
  if (real_malloc || resolving) return;
  resolving = 1;
  real_calloc = (calloc_fn)dlsym(RTLD_NEXT, "calloc");
  real_realloc = (realloc_fn)dlsym(RTLD_NEXT, "realloc");
  real_free = (free_fn)dlsym(RTLD_NEXT, "free");
  real_posix_memalign = (posix_memalign_fn)dlsym(RTLD_NEXT, "posix_memalign");
  real_aligned_alloc = (aligned_fn)dlsym(RTLD_NEXT, "aligned_alloc");
  real_memalign = (aligned_fn)dlsym(RTLD_NEXT, "memalign");
  real_new = (new_fn)dlsym(RTLD_NEXT, "_Znwm");
  real_new_array = (new_fn)dlsym(RTLD_NEXT, "_Znam");
  real_new_nothrow = (new_nothrow_fn)dlsym(RTLD_NEXT, "_ZnwmRKSt9nothrow_t");
  real_new_array_nothrow = (new_nothrow_fn)dlsym(RTLD_NEXT, "_ZnamRKSt9nothrow_t");
  real_new_aligned = (new_aligned_fn)dlsym(RTLD_NEXT, "_ZnwmSt11align_val_t");
  real_new_array_aligned = (new_aligned_fn)dlsym(RTLD_NEXT, "_ZnamSt11align_val_t");
  real_new_aligned_nothrow =
      (new_aligned_nothrow_fn)dlsym(RTLD_NEXT, "_ZnwmSt11align_val_tRKSt9nothrow_t");
  real_new_array_aligned_nothrow =
      (new_aligned_nothrow_fn)dlsym(RTLD_NEXT, "_ZnamSt11align_val_tRKSt9nothrow_t");
  real_mutex_lock = (lock_fn)dlsym(RTLD_NEXT, "pthread_mutex_lock");
  real_mutex_trylock = (lock_fn)dlsym(RTLD_NEXT, "pthread_mutex_trylock");
  real_rdlock = (lock_fn)dlsym(RTLD_NEXT, "pthread_rwlock_rdlock");
  real_wrlock = (lock_fn)dlsym(RTLD_NEXT, "pthread_rwlock_wrlock");
  // Last: its being set is what says the others are.
  real_malloc = (malloc_fn)dlsym(RTLD_NEXT, "malloc");
  resolving = 0;
}

__attribute__((constructor)) static void map_counts(void) {
  resolve();
  const char* dir = getenv("MMSERVE_ALLOC_COUNT_DIR");
  if (dir == NULL || *dir == '\0') return;
  char path[4096];
  snprintf(path, sizeof path, "%s/%ld", dir, (long)getpid());
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  if (ftruncate(fd, sizeof(struct Counts)) == 0) {
    void* p = mmap(NULL, sizeof(struct Counts), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p != MAP_FAILED) {
      struct Counts* mapped = (struct Counts*)p;
      atomic_store(&mapped->allocations, atomic_load(&counts->allocations));
      atomic_store(&mapped->bytes, atomic_load(&counts->bytes));
      atomic_store(&mapped->locks, atomic_load(&counts->locks));
      atomic_store(&mapped->pid, (uint64_t)getpid());
      counts = mapped;
    }
  }
  close(fd);
}

void* malloc(size_t n) {
  if (!real_malloc) {
    resolve();
    if (!real_malloc) return boot_alloc(n);
  }
  count_allocation(n);
  return real_malloc(n);
}

void* calloc(size_t count, size_t size) {
  if (!real_malloc) {
    resolve();
    if (!real_malloc) {
      void* p = boot_alloc(count * size);  // the arena is zeroed
      return p;
    }
  }
  count_allocation(count * size);
  return real_calloc(count, size);
}

void* realloc(void* p, size_t n) {
  if (in_boot(p)) {
    void* q = malloc(n);
    if (q) {
      size_t left = (size_t)(boot_arena + sizeof boot_arena - (char*)p);
      memcpy(q, p, n < left ? n : left);
    }
    return q;
  }
  if (!real_malloc) resolve();
  count_allocation(n);
  return real_realloc(p, n);
}

void free(void* p) {
  if (p == NULL || in_boot(p)) return;
  if (!real_malloc) resolve();
  real_free(p);
}

int posix_memalign(void** out, size_t alignment, size_t n) {
  if (!real_malloc) resolve();
  count_allocation(n);
  return real_posix_memalign(out, alignment, n);
}

void* aligned_alloc(size_t alignment, size_t n) {
  if (!real_malloc) resolve();
  count_allocation(n);
  return real_aligned_alloc(alignment, n);
}

void* memalign(size_t alignment, size_t n) {
  if (!real_malloc) resolve();
  count_allocation(n);
  return real_memalign(alignment, n);
}

// operator new and new[], plain, nothrow and aligned (mangled names).
void* _Znwm(size_t n) {
  if (!real_new) resolve();
  if (!real_new) return boot_alloc(n);
  count_allocation(n);
  return real_new(n);
}
void* _Znam(size_t n) {
  if (!real_new_array) resolve();
  if (!real_new_array) return boot_alloc(n);
  count_allocation(n);
  return real_new_array(n);
}
void* _ZnwmRKSt9nothrow_t(size_t n, const void* tag) {
  if (!real_new_nothrow) resolve();
  if (!real_new_nothrow) return boot_alloc(n);
  count_allocation(n);
  return real_new_nothrow(n, tag);
}
void* _ZnamRKSt9nothrow_t(size_t n, const void* tag) {
  if (!real_new_array_nothrow) resolve();
  if (!real_new_array_nothrow) return boot_alloc(n);
  count_allocation(n);
  return real_new_array_nothrow(n, tag);
}
void* _ZnwmSt11align_val_t(size_t n, size_t alignment) {
  if (!real_new_aligned) resolve();
  if (!real_new_aligned) return boot_alloc(n);
  count_allocation(n);
  return real_new_aligned(n, alignment);
}
void* _ZnamSt11align_val_t(size_t n, size_t alignment) {
  if (!real_new_array_aligned) resolve();
  if (!real_new_array_aligned) return boot_alloc(n);
  count_allocation(n);
  return real_new_array_aligned(n, alignment);
}
void* _ZnwmSt11align_val_tRKSt9nothrow_t(size_t n, size_t alignment, const void* tag) {
  if (!real_new_aligned_nothrow) resolve();
  if (!real_new_aligned_nothrow) return boot_alloc(n);
  count_allocation(n);
  return real_new_aligned_nothrow(n, alignment, tag);
}
void* _ZnamSt11align_val_tRKSt9nothrow_t(size_t n, size_t alignment, const void* tag) {
  if (!real_new_array_aligned_nothrow) resolve();
  if (!real_new_array_aligned_nothrow) return boot_alloc(n);
  count_allocation(n);
  return real_new_array_aligned_nothrow(n, alignment, tag);
}

static void count_lock(void) { atomic_fetch_add_explicit(&counts->locks, 1, memory_order_relaxed); }
int pthread_mutex_lock(pthread_mutex_t* m) {
  if (!real_mutex_lock) resolve();
  if (!real_mutex_lock) return 0;  // while resolving, one thread
  count_lock();
  return real_mutex_lock(m);
}
int pthread_mutex_trylock(pthread_mutex_t* m) {
  if (!real_mutex_trylock) resolve();
  if (!real_mutex_trylock) return 0;  // while resolving, one thread
  count_lock();
  return real_mutex_trylock(m);
}
int pthread_rwlock_rdlock(pthread_rwlock_t* l) {
  if (!real_rdlock) resolve();
  if (!real_rdlock) return 0;  // while resolving, one thread
  count_lock();
  return real_rdlock(l);
}
int pthread_rwlock_wrlock(pthread_rwlock_t* l) {
  if (!real_wrlock) resolve();
  if (!real_wrlock) return 0;  // while resolving, one thread
  count_lock();
  return real_wrlock(l);
}
