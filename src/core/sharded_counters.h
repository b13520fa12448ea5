// ShardedCounters<N>: N counters that many threads add to on the request
// path, kept in per-thread shards so that threads adding to the same
// counters never fight over one cache line; a reader sums the shards.
//
// Why: a relaxed atomic add is cheap on its own, but when every request of a
// model adds to the same counters from 16 threads, each add pulls the cache
// line from the core that wrote it last. Per-thread shards keep each line
// with one core (issue 27).
//
// A thread's shard is its number (ThreadShard(): threads are numbered as they
// first touch any sharded counter) modulo kMaxShards, so two threads share a
// shard only beyond kMaxShards threads; adds stay atomic, so sharing is
// correct, merely slower. A shard is allocated when a thread of its number
// first adds: counters used from one thread cost one shard (one block of N
// words, rounded up to whole cache lines), used from every thread at most
// kMaxShards.
//
// Reads are relaxed, as with plain relaxed atomics: each counter's total is
// exact once its adds have happened-before the read, and two counters may
// be read a moment apart. Counters are uint64 and wrap: a gauge may add
// (uint64_t)-1 on one thread and 1 on another, and the sum is right.
//
// Thread-safety: every method may be called concurrently, except Compact,
// which needs the counters to itself.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace mm {

inline constexpr size_t kMaxCounterShards = 16;

// This thread's shard, in [0, kMaxCounterShards).
size_t ThreadShard();

template <size_t N>
class ShardedCounters {
 public:
  ShardedCounters() = default;
  ~ShardedCounters() {
    for (auto& shard : shards_) delete shard.load(std::memory_order_relaxed);
  }
  ShardedCounters(const ShardedCounters&) = delete;
  ShardedCounters& operator=(const ShardedCounters&) = delete;

  void Add(size_t i, uint64_t v) { Mine().v[i].fetch_add(v, std::memory_order_relaxed); }
  // Adds and returns this thread's shard's value before the add (a count
  // that is this shard's own, for sampling every n-th call per thread).
  uint64_t FetchAddMine(size_t i, uint64_t v) {
    return Mine().v[i].fetch_add(v, std::memory_order_relaxed);
  }
  // Stores max(current, v) in this thread's shard (a "last time" gauge:
  // ReadMax gives the latest over all threads).
  void StoreMax(size_t i, uint64_t v) {
    std::atomic<uint64_t>& c = Mine().v[i];
    if (c.load(std::memory_order_relaxed) < v) c.store(v, std::memory_order_relaxed);
  }

  uint64_t Read(size_t i) const {
    uint64_t sum = 0;
    ForEachShard([&](const Block& b) { sum += b.v[i].load(std::memory_order_relaxed); });
    return sum;
  }
  uint64_t ReadMax(size_t i) const {
    uint64_t max = 0;
    ForEachShard([&](const Block& b) {
      const uint64_t v = b.v[i].load(std::memory_order_relaxed);
      if (v > max) max = v;
    });
    return max;
  }
  // Folds every shard into one and frees the others: counters many threads
  // once added to, and no thread adds to any more (a model version that
  // unloaded), shrink from up to kMaxCounterShards blocks to one. Counter i's
  // folded value is fold(i, kept, other) (a sum: `kept + other`; a StoreMax
  // gauge: the larger). Returns the bytes freed.
  // Precondition: no other thread calls any method meanwhile, and every
  // earlier call happened-before this one (the caller's proof: it holds the
  // last reference; see StatsRegistry::Compact).
  template <typename Fold>
  size_t Compact(Fold fold) {
    Block* kept = nullptr;
    size_t freed = 0;
    for (auto& shard : shards_) {
      Block* b = shard.load(std::memory_order_relaxed);
      if (b == nullptr) continue;
      if (kept == nullptr) {
        kept = b;
        continue;
      }
      for (size_t i = 0; i < N; ++i) {
        kept->v[i].store(fold(i, kept->v[i].load(std::memory_order_relaxed),
                              b->v[i].load(std::memory_order_relaxed)),
                         std::memory_order_relaxed);
      }
      shard.store(nullptr, std::memory_order_relaxed);
      delete b;
      freed += sizeof(Block);
    }
    return freed;
  }
  // How many shards are allocated (tests, and what Compact leaves: 1), and
  // the bytes of one.
  static constexpr size_t kShardBytes = (N * sizeof(uint64_t) + 63) / 64 * 64;
  size_t shards() const {
    size_t n = 0;
    ForEachShard([&](const Block&) { ++n; });
    return n;
  }

  // Calls f(value of counter i) once per allocated shard.
  template <typename F>
  void VisitShards(size_t i, F f) const {
    ForEachShard([&](const Block& b) { f(b.v[i].load(std::memory_order_relaxed)); });
  }

 private:
  struct alignas(64) Block {
    std::array<std::atomic<uint64_t>, N> v{};
  };
  static_assert(sizeof(Block) == kShardBytes);

  Block& Mine() {
    std::atomic<Block*>& slot = shards_[ThreadShard()];
    Block* block = slot.load(std::memory_order_acquire);
    if (block != nullptr) return *block;
    // First add from this shard's threads: publish a zeroed block; a thread
    // of the same shard that raced here first wins, and ours is dropped.
    auto* made = new Block();
    if (slot.compare_exchange_strong(block, made, std::memory_order_acq_rel)) return *made;
    delete made;
    return *block;
  }
  template <typename F>
  void ForEachShard(F f) const {
    for (const auto& shard : shards_) {
      if (const Block* b = shard.load(std::memory_order_acquire)) f(*b);
    }
  }

  std::array<std::atomic<Block*>, kMaxCounterShards> shards_{};
};

}  // namespace mm
