#include "core/sharded_counters.h"

namespace mm {

size_t ThreadShard() {
  static std::atomic<size_t> next{0};
  thread_local const size_t shard =
      next.fetch_add(1, std::memory_order_relaxed) % kMaxCounterShards;
  return shard;
}

}  // namespace mm
