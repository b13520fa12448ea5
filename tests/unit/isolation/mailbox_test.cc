#include "isolation/mailbox.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>

namespace mm {
namespace {

using std::chrono::milliseconds;

// The server's mailbox and the worker's mapping of it (a second mapping of
// the same memfd, as in the worker process: the futex is a shared one).
struct Pair {
  Pair() {
    auto created = Mailbox::Create("mailbox-test");
    EXPECT_TRUE(created.ok()) << created.status().message();
    server = std::move(*created);
    auto adopted = Mailbox::Adopt(::dup(server->fd()), server->size());
    EXPECT_TRUE(adopted.ok()) << adopted.status().message();
    worker = std::move(*adopted);
  }
  // Raw bytes of the mailbox, as a broken worker could write them.
  std::byte* Raw() {
    if (!raw) {
      raw = std::move(*SharedRegion::Adopt(::dup(server->fd()), server->size()));
    }
    return raw->bytes().data();
  }
  std::unique_ptr<Mailbox> server;
  std::unique_ptr<Mailbox> worker;
  std::unique_ptr<SharedRegion> raw;
};

std::string AsString(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

TEST(MailboxTest, RequestsAndRepliesCrossInTurn) {
  Pair p;
  std::thread worker([&] {
    for (int i = 0; i < 100; ++i) {
      auto request = p.worker->AwaitRequest();
      ASSERT_TRUE(request.ok()) << request.status().message();
      EXPECT_EQ(request->type, WorkerMessageType::kExecute);
      EXPECT_EQ(request->request_id, static_cast<uint32_t>(i + 1));
      EXPECT_EQ(request->socket_frames, static_cast<uint32_t>(i % 3));
      EXPECT_FALSE(request->on_socket);
      p.worker->Reply(request->request_id, false, "re:" + AsString(request->payload));
    }
  });
  std::string reply;
  for (int i = 0; i < 100; ++i) {
    const std::string payload = "request " + std::to_string(i);
    ASSERT_TRUE(p.server
                    ->Post(WorkerMessageType::kExecute, static_cast<uint32_t>(i + 1),
                           static_cast<uint32_t>(i % 3), false, payload)
                    .ok());
    bool on_socket = true;
    Status s = p.server->AwaitReply(milliseconds(0), &on_socket, reply);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_FALSE(on_socket);
    EXPECT_EQ(reply, "re:" + payload);
  }
  worker.join();
}

TEST(MailboxTest, MessagesOnTheSocketAreMarked) {
  Pair p;
  ASSERT_TRUE(p.server->Post(WorkerMessageType::kExecute, 5, 2, true, "ignored").ok());
  auto request = p.worker->AwaitRequest();
  ASSERT_TRUE(request.ok());
  EXPECT_TRUE(request->on_socket);
  EXPECT_EQ(request->socket_frames, 2u);
  EXPECT_TRUE(request->payload.empty());
  p.worker->Reply(5, true, "");
  bool on_socket = false;
  std::string reply = "stale";
  ASSERT_TRUE(p.server->AwaitReply(milliseconds(0), &on_socket, reply).ok());
  EXPECT_TRUE(on_socket);
}

TEST(MailboxTest, FullSlotsCross) {
  Pair p;
  const std::string big(p.server->slot_payload_bytes(), 'x');
  ASSERT_TRUE(p.server->Post(WorkerMessageType::kExecute, 1, 0, false, big).ok());
  auto request = p.worker->AwaitRequest();
  ASSERT_TRUE(request.ok());
  EXPECT_EQ(AsString(request->payload), big);
  p.worker->Reply(1, false, big);
  bool on_socket = true;
  std::string reply;
  ASSERT_TRUE(p.server->AwaitReply(milliseconds(0), &on_socket, reply).ok());
  EXPECT_EQ(reply, big);
}

TEST(MailboxTest, GoneWakesTheWaiterAndRefusesPosts) {
  Pair p;
  ASSERT_TRUE(p.server->Post(WorkerMessageType::kExecute, 1, 0, false, "x").ok());
  // Whether MarkGone lands before or during the wait, the wait ends with it.
  std::thread reaper([&] { p.server->MarkGone(); });
  bool on_socket = false;
  std::string reply;
  Status s = p.server->AwaitReply(milliseconds(0), &on_socket, reply);
  reaper.join();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.message();
  Status post = p.server->Post(WorkerMessageType::kExecute, 2, 0, false, "x");
  EXPECT_EQ(post.code(), StatusCode::kUnavailable);
  p.server->MarkGone();  // idempotent
}

TEST(MailboxTest, NoReplyWithinTheTimeoutIsDeadlineExceeded) {
  Pair p;
  ASSERT_TRUE(p.server->Post(WorkerMessageType::kExecute, 1, 0, false, "x").ok());
  bool on_socket = false;
  std::string reply;
  Status s = p.server->AwaitReply(milliseconds(20), &on_socket, reply);
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s.message();
  EXPECT_NE(s.message().find("20 ms"), std::string::npos) << s.message();
}

TEST(MailboxTest, ABrokenWorkersReplyIsRefused) {
  {
    Pair p;  // the reply to another request
    ASSERT_TRUE(p.server->Post(WorkerMessageType::kExecute, 7, 0, false, "x").ok());
    ASSERT_TRUE(p.worker->AwaitRequest().ok());
    p.worker->Reply(8, false, "y");
    bool on_socket = false;
    std::string reply;
    Status s = p.server->AwaitReply(milliseconds(0), &on_socket, reply);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("a reply to request 8, expected the reply to 7"), std::string::npos)
        << s.message();
  }
  {
    Pair p;  // a reply longer than its slot (layout: reply header at half the mailbox)
    ASSERT_TRUE(p.server->Post(WorkerMessageType::kExecute, 7, 0, false, "x").ok());
    ASSERT_TRUE(p.worker->AwaitRequest().ok());
    p.worker->Reply(7, false, "y");
    const uint32_t huge = static_cast<uint32_t>(p.server->slot_payload_bytes()) + 1;
    std::memcpy(p.Raw() + Mailbox::kDefaultBytes / 2 + 4, &huge, sizeof(huge));
    bool on_socket = false;
    std::string reply;
    Status s = p.server->AwaitReply(milliseconds(0), &on_socket, reply);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("the slot holds at most"), std::string::npos) << s.message();
  }
  {
    Pair p;  // a turn word the worker may not write (layout: the turn at offset 0)
    ASSERT_TRUE(p.server->Post(WorkerMessageType::kExecute, 7, 0, false, "x").ok());
    const uint32_t bogus = 12345;
    std::memcpy(p.Raw(), &bogus, sizeof(bogus));
    bool on_socket = false;
    std::string reply;
    Status s = p.server->AwaitReply(milliseconds(0), &on_socket, reply);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("turn 12345"), std::string::npos) << s.message();
  }
}

TEST(MailboxTest, SizesAreChecked) {
  auto small = Mailbox::Create("mailbox-test", Mailbox::kMinBytes - 1);
  ASSERT_FALSE(small.ok());
  EXPECT_NE(small.status().message().find("255 bytes, expected 256 to 16777216"), std::string::npos)
      << small.status().message();
  auto region = SharedRegion::Create("mailbox-test", 4096);
  ASSERT_TRUE(region.ok());
  EXPECT_FALSE(Mailbox::Adopt(::dup((*region)->fd()), 8192).ok());  // not its size
  EXPECT_FALSE(Mailbox::Adopt(::dup((*region)->fd()), Mailbox::kMaxBytes + 1).ok());
  auto adopted = Mailbox::Adopt(::dup((*region)->fd()), 4096);
  ASSERT_TRUE(adopted.ok()) << adopted.status().message();
  EXPECT_EQ((*adopted)->slot_payload_bytes(), 4096u / 2 - 128);
}

TEST(MailboxTest, TheSmallestMailboxCarriesOnlyEmptyPayloads) {
  auto tiny = Mailbox::Create("mailbox-test", Mailbox::kMinBytes);
  ASSERT_TRUE(tiny.ok());
  EXPECT_EQ((*tiny)->slot_payload_bytes(), 0u);
  auto worker = Mailbox::Adopt(::dup((*tiny)->fd()), Mailbox::kMinBytes);
  ASSERT_TRUE(worker.ok());
  ASSERT_TRUE((*tiny)->Post(WorkerMessageType::kHealth, 1, 0, false, "").ok());
  auto request = (*worker)->AwaitRequest();
  ASSERT_TRUE(request.ok());
  EXPECT_TRUE(request->payload.empty());
  (*worker)->Reply(1, true, "");
  bool on_socket = false;
  std::string reply;
  ASSERT_TRUE((*tiny)->AwaitReply(milliseconds(0), &on_socket, reply).ok());
  EXPECT_TRUE(on_socket);
}

}  // namespace
}  // namespace mm
