#include "core/cancellation.h"

#include <gtest/gtest.h>

namespace mm {
namespace {

TEST(CancellationTest, TheHandlerRunsOnceWhenCancelled) {
  Cancellation c;
  int runs = 0;
  c.OnCancel([&] { ++runs; });
  EXPECT_FALSE(c.cancelled());
  c.Cancel();
  c.Cancel();
  EXPECT_TRUE(c.cancelled());
  EXPECT_EQ(runs, 1);
}

TEST(CancellationTest, AHandlerSetAfterTheCancelRunsAtOnce) {
  Cancellation c;
  c.Cancel();
  int runs = 0;
  c.OnCancel([&] { ++runs; });
  EXPECT_EQ(runs, 1);
}

TEST(CancellationTest, ANewHandlerReplacesTheOldOne) {
  Cancellation c;
  int old_runs = 0, new_runs = 0;
  c.OnCancel([&] { ++old_runs; });
  c.OnCancel([&] { ++new_runs; });
  c.Cancel();
  EXPECT_EQ(old_runs, 0);
  EXPECT_EQ(new_runs, 1);
}

TEST(CancellationTest, ResetMakesItNewForTheNextRequest) {
  Cancellation c;
  int runs = 0;
  c.OnCancel([&] { ++runs; });
  c.Reset();  // the request was answered: its handler goes
  c.Cancel();
  EXPECT_EQ(runs, 0);
  c.Reset();  // and a cancelled one is cancelled no more
  EXPECT_FALSE(c.cancelled());
  c.OnCancel([&] { ++runs; });
  EXPECT_EQ(runs, 0);
  c.Cancel();
  EXPECT_EQ(runs, 1);
}

}  // namespace
}  // namespace mm
