#include "isolation/worker_process.h"

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <fstream>
#include <string>

namespace mm {

namespace {

std::unique_ptr<WorkerProcess> Start(std::vector<std::string> argv) {
  auto w = WorkerProcess::Spawn(argv);
  EXPECT_TRUE(w.ok()) << w.status().message();
  return w.ok() ? std::move(*w) : nullptr;
}

std::unique_ptr<WorkerProcess> Shell(const std::string& script) {
  return Start({"/bin/sh", "-c", script});
}

TEST(WorkerProcessTest, SaysHowItEnded) {
  auto exited = Shell("exit 3");
  ASSERT_NE(exited, nullptr);
  WorkerExit e = exited->Wait();
  EXPECT_EQ(e.exit_code, 3);
  EXPECT_EQ(e.signal, 0);
  EXPECT_EQ(e.Describe(), "exited with status 3");
  EXPECT_EQ(exited->Wait().exit_code, 3);  // reaped once, remembered

  auto crashed = Shell("kill -SEGV $$");
  ASSERT_NE(crashed, nullptr);
  e = crashed->Wait();
  EXPECT_EQ(e.signal, SIGSEGV);
  EXPECT_NE(e.Describe().find("killed by signal 11"), std::string::npos) << e.Describe();

  auto missing = Start({"/nonexistent/worker"});
  ASSERT_NE(missing, nullptr);
  EXPECT_EQ(missing->Wait().exit_code, 127);
  EXPECT_FALSE(WorkerProcess::Spawn({}).ok());
}

TEST(WorkerProcessTest, ItsPidfdTellsTheMomentItExits) {
  auto w = Shell("read line <&3; exit 0");  // waits for a line on its socket
  ASSERT_NE(w, nullptr);
  EXPECT_FALSE(w->TryWait().has_value());
  pollfd p{w->pidfd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0);  // still running
  ASSERT_EQ(::write(w->socket(), "go\n", 3), 3);
  EXPECT_EQ(::poll(&p, 1, -1), 1);  // no timing: poll returns when it exits
  auto e = w->TryWait();
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->exit_code, 0);
}

TEST(WorkerProcessTest, TheControlSocketIsDescriptor3) {
  auto w = Shell("echo hello >&3");
  ASSERT_NE(w, nullptr);
  char buf[16] = {};
  ssize_t n = ::read(w->socket(), buf, sizeof(buf));
  EXPECT_EQ(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0), "hello\n");
  EXPECT_EQ(w->Wait().exit_code, 0);
}

TEST(WorkerProcessTest, KillAndDestructionLeaveNothingRunning) {
  auto killed = Start({"/bin/sleep", "100"});
  ASSERT_NE(killed, nullptr);
  killed->Kill(SIGKILL);
  EXPECT_EQ(killed->Wait().signal, SIGKILL);
  killed->Kill(SIGKILL);  // reaped already: nothing happens

  auto dropped = Start({"/bin/sleep", "100"});
  ASSERT_NE(dropped, nullptr);
  const pid_t pid = dropped->pid();
  dropped.reset();  // killed and reaped
  EXPECT_EQ(::kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH);
}

// The child's nice value and blocked signals.
struct ChildState {
  int nice = -100;
  std::string blocked;  // SigBlk, hex
};
ChildState StateOf(pid_t pid) {
  ChildState state;
  errno = 0;
  state.nice = ::getpriority(PRIO_PROCESS, static_cast<id_t>(pid));
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("SigBlk:", 0) == 0) state.blocked = line.substr(line.find_last_of(" \t") + 1);
  }
  return state;
}

TEST(WorkerProcessTest, StartsAtItsNiceValueWithNoSignalBlocked) {
  // Whatever the spawning thread blocks, the program starts with nothing blocked.
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &term, &old);
  auto nicer = WorkerProcess::Spawn({"/bin/sleep", "100"}, /*nice=*/10);
  auto normal = WorkerProcess::Spawn({"/bin/sleep", "100"});
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_TRUE(nicer.ok() && normal.ok());
  // Spawn returns once the child has exec'd (vfork semantics): its state is the program's.
  EXPECT_EQ(StateOf((*nicer)->pid()).nice, 10);
  EXPECT_EQ(StateOf((*normal)->pid()).nice, ::getpriority(PRIO_PROCESS, 0));
  EXPECT_EQ(StateOf((*nicer)->pid()).blocked, "0000000000000000");
  EXPECT_EQ(StateOf((*normal)->pid()).blocked, "0000000000000000");
}

}  // namespace
}  // namespace mm
