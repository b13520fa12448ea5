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
// Nothing is sized by the number of levels: policies are kept only for the
// levels that have their own, and waiting items sit in one ordered map keyed
// by (level, ticket), so a config with many levels costs nothing until
// requests use them (and then per level used, not per level declared).
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
#include <tuple>
#include <utility>
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
  uint32_t levels = 1;         // priority levels; 1 is the highest
  uint32_t default_level = 1;  // in [1, levels]
  QueuePolicy default_policy;
  std::map<uint32_t, QueuePolicy> level_policies;  // levels with their own policy

  // The policy of `level` (in [1, levels]).
  const QueuePolicy& PolicyOf(uint32_t level) const {
    if (level_policies.empty()) return default_policy;
    auto it = level_policies.find(level);
    return it != level_policies.end() ? it->second : default_policy;
  }

  // From a validated config (repository/model_config.h); a model without
  // dynamic_batching (or without priority levels) has one level and the
  // default queue policy. Validation bounds the levels (ConfigBounds); here
  // they are clamped below 2^32 - 1 and the default level into [1, levels],
  // so even an unvalidated config gives a consistent QueueConfig.
  static QueueConfig FromModelConfig(const inference::ModelConfig& config);
};

// Where a request goes: its level and when it stops waiting (0: never).
struct Admission {
  uint32_t level = 1;
  int64_t deadline_ns = 0;
};

// INVALID_ARGUMENT, naming the model and the range, for a "priority" outside
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

  // Queues `item` at its level (one outside [1, levels] queues at the
  // default level) and returns its ticket; RESOURCE_EXHAUSTED (and `item`
  // untouched) when the level is full.
  StatusOr<uint64_t> Push(Item& item);

  bool empty() const { return items_.empty(); }
  size_t size() const { return items_.size(); }
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
  // Items in serving order: by level (1 first; the delayed lane, kDelayed,
  // last), then by ticket (first come first served).
  using Key = std::pair<uint32_t, uint64_t>;  // (level, ticket)
  static constexpr uint32_t kDelayed = UINT32_MAX;
  // Where `ticket` waits, or items_.end().
  std::map<Key, Item>::iterator Find(uint64_t ticket);
  void Erase(std::map<Key, Item>::iterator at);

  const QueueConfig config_;
  const std::string model_name_;
  std::map<Key, Item> items_;
  // Items waiting per level used so far (delayed items excluded); an entry
  // is made the first time a level is used, so at most min(levels, levels
  // ever used) entries.
  std::map<uint32_t, size_t> waiting_;
  // (deadline, level, ticket) of items that may still expire; stale entries
  // (gone, or moved to the delayed lane) are skipped.
  using Deadline = std::tuple<int64_t, uint32_t, uint64_t>;
  std::priority_queue<Deadline, std::vector<Deadline>, std::greater<>> deadlines_;
  uint64_t next_ticket_ = 1;
};

}  // namespace mm
