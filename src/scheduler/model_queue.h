// ModelQueue: one model's waiting requests, by priority level, under the
// queue policies of its config (Triton's dynamic_batching priority_levels,
// default_priority_level, default_queue_policy and priority_queue_policy).
//
//  - Admit() reads a request's "priority" and "timeout" parameters (as
//    Triton: priority 1 is the highest, 0 or absent the model's default;
//    timeout in microseconds, honoured when the level's policy allows an
//    override, and then only to shorten the default) and rejects values out
//    of range with INVALID_ARGUMENT, before anything is queued.
//  - Push() refuses a request over its level's max_queue_size with
//    RESOURCE_EXHAUSTED "queue full for model m (n waiting)".
//  - TakeExpired() removes what waited past its deadline: with timeout_action
//    REJECT the caller answers DEADLINE_EXCEEDED and never executes it; with
//    DELAY it moves behind every level (it runs only when nothing else waits).
//  - Front()/Pop() serve the highest level first, first come first served
//    within a level; Cancel() takes out a request whose client went away.
//
// Time comes from the caller (a Clock), so tests drive it. Not thread-safe:
// the model's scheduler holds its own lock around every call.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <vector>

#include "core/infer_request.h"
#include "core/status.h"
#include "model_config.pb.h"

namespace mm {

struct QueuePolicy {
  uint32_t max_queue_size = 0;     // 0: unbounded
  int64_t default_timeout_ns = 0;  // 0: none
  bool allow_timeout_override = false;
  bool delay_on_timeout = false;  // timeout_action DELAY (else REJECT)
};

struct QueueConfig {
  uint32_t levels = 1;  // priority levels; 1 is the highest
  uint32_t default_level = 1;
  std::vector<QueuePolicy> policies;  // [level - 1]

  // From a validated config (repository/model_config.h); a model without
  // dynamic_batching (or without priority levels) has one level and the
  // default queue policy.
  static QueueConfig FromModelConfig(const inference::ModelConfig& config);
};

// Where a request goes: its level and when it stops waiting (0: never).
struct Admission {
  uint32_t level = 1;
  int64_t deadline_ns = 0;
};

// INVALID_ARGUMENT, naming the model, for a "priority" outside
// [0, levels], a "timeout" that is negative, not an integer or over one hour.
StatusOr<Admission> Admit(const QueueConfig& config, const InferRequest& request, int64_t now_ns,
                          std::string_view model_name);

class ModelQueue {
 public:
  struct Item {
    std::unique_ptr<InferRequest> request;
    InferCallback done;
    int64_t enqueued_ns = 0;
    int64_t deadline_ns = 0;  // 0: none
    uint32_t level = 1;
    uint64_t ticket = 0;  // set by Push
  };

  ModelQueue(QueueConfig config, std::string model_name);

  // Queues `item` at its level and returns its ticket; RESOURCE_EXHAUSTED
  // (and `item` untouched) when the level is full.
  StatusOr<uint64_t> Push(Item& item);

  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  // The next to serve, or nullptr.
  Item* Front();
  Item Pop();  // requires !empty()

  // The waiting items in serving order (the delayed lane last), at most
  // `max` of them; pointers stay valid until the queue changes.
  std::vector<Item*> InOrder(size_t max);

  // Takes out `ticket` if it still waits (the client went away).
  std::optional<Item> Cancel(uint64_t ticket);

  // Removes every REJECT item whose deadline is at or before `now_ns` and
  // returns them, oldest deadline first; DELAY items past their deadline move
  // to the delayed lane instead.
  std::vector<Item> TakeExpired(int64_t now_ns);
  // The earliest deadline still pending, or 0 when none.
  int64_t NextDeadline();

  const QueueConfig& config() const { return config_; }

 private:
  // Lane index: level - 1 for the priority levels, levels for the delayed lane.
  using Lane = std::map<uint64_t, Item>;  // by ticket: first come first served
  // The lane holding `ticket` (and where), or nullptr.
  Lane* Find(uint64_t ticket, Lane::iterator* at);

  const QueueConfig config_;
  const std::string model_name_;
  std::vector<Lane> lanes_;      // levels + 1
  std::vector<size_t> waiting_;  // per level, delayed items excluded
  // (deadline, ticket) of items that may still expire; stale entries skipped.
  std::priority_queue<std::pair<int64_t, uint64_t>, std::vector<std::pair<int64_t, uint64_t>>,
                      std::greater<>>
      deadlines_;
  uint64_t next_ticket_ = 1;
  size_t size_ = 0;
};

}  // namespace mm
