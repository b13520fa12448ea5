#include "core/shared_mutex.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>
#include <vector>

namespace mm {
namespace {

struct Guarded {
  SharedMutex mu;
  int value MM_GUARDED_BY(mu) = 0;
};

TEST(SharedMutexTest, ReadersShareTheLock) {
  Guarded g;
  std::promise<void> holding, release;
  std::thread reader([&] {
    ReaderLock lock(g.mu);
    holding.set_value();
    release.get_future().wait();
    EXPECT_EQ(g.value, 0);
  });
  holding.get_future().wait();
  {
    ReaderLock lock(g.mu);  // would wait for the reader thread if it were exclusive
    EXPECT_EQ(g.value, 0);
  }
  release.set_value();
  reader.join();
}

TEST(SharedMutexTest, WritersExcludeEveryone) {
  Guarded g;
  std::vector<std::thread> threads;
  std::atomic<bool> torn{false};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        {
          WriterLock lock(g.mu);
          const int before = g.value;
          g.value = before + 1;
        }
        ReaderLock lock(g.mu);
        if (g.value <= 0) torn = true;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_FALSE(torn.load());
  ReaderLock lock(g.mu);
  EXPECT_EQ(g.value, 4000);
}

}  // namespace
}  // namespace mm
