#include "scheduler/model_queue.h"

#include <algorithm>
#include <variant>

namespace mm {

namespace {

constexpr int64_t kMaxTimeoutUs = 3600LL * 1'000'000;  // one hour

QueuePolicy FromProto(const inference::ModelQueuePolicy& p) {
  QueuePolicy q;
  q.max_queue_size = p.max_queue_size();
  q.default_timeout_ns = static_cast<int64_t>(
      std::min<uint64_t>(p.default_timeout_microseconds(), kMaxTimeoutUs) * 1000);
  q.allow_timeout_override = p.allow_timeout_override();
  q.delay_on_timeout = p.timeout_action() == inference::ModelQueuePolicy::DELAY;
  return q;
}

// An integer request parameter: nullopt when absent; INVALID_ARGUMENT when
// it is not an integer.
StatusOr<std::optional<int64_t>> IntParameter(const InferRequest& request, std::string_view key,
                                              std::string_view model) {
  auto it = request.parameters.find(key);
  if (it == request.parameters.end()) return std::optional<int64_t>();
  if (const auto* v = std::get_if<int64_t>(&it->second)) return std::optional<int64_t>(*v);
  if (const auto* d = std::get_if<double>(&it->second)) {
    if (*d == static_cast<double>(static_cast<int64_t>(*d))) {
      return std::optional<int64_t>(static_cast<int64_t>(*d));
    }
  }
  return InvalidArgument("model '" + std::string(model) + "': request parameter '" +
                         std::string(key) + "' must be an integer");
}

}  // namespace

QueueConfig QueueConfig::FromModelConfig(const inference::ModelConfig& config) {
  QueueConfig q;
  if (!config.has_dynamic_batching()) return q;
  const auto& db = config.dynamic_batching();
  // Below the delayed lane's key (ModelQueue), whatever the config says: no
  // truncation from 64 bits, no level past the end.
  constexpr uint64_t kMaxLevels = UINT32_MAX - 1;
  q.levels = static_cast<uint32_t>(std::clamp<uint64_t>(db.priority_levels(), 1, kMaxLevels));
  q.default_level = db.default_priority_level() >= 1 && db.default_priority_level() <= q.levels
                        ? static_cast<uint32_t>(db.default_priority_level())
                        : 1;
  q.default_policy = FromProto(db.default_queue_policy());
  for (const auto& [level, policy] : db.priority_queue_policy()) {
    if (level >= 1 && level <= q.levels) {
      q.level_policies[static_cast<uint32_t>(level)] = FromProto(policy);
    }
  }
  return q;
}

StatusOr<Admission> Admit(const QueueConfig& config, const InferRequest& request, int64_t now_ns,
                          std::string_view model_name) {
  Admission a;
  a.level = config.default_level;
  MM_ASSIGN_OR_RETURN(auto priority, IntParameter(request, "priority", model_name));
  if (priority) {
    if (*priority < 0 || *priority > static_cast<int64_t>(config.levels)) {
      return InvalidArgument("model '" + std::string(model_name) + "': priority " +
                             std::to_string(*priority) +
                             " is out of range; this model has priority levels 1 (highest) to " +
                             std::to_string(config.levels) + ", and 0 means its default (" +
                             std::to_string(config.default_level) + ")");
    }
    if (*priority > 0) a.level = static_cast<uint32_t>(*priority);
  }
  const QueuePolicy& policy = config.PolicyOf(a.level);
  int64_t timeout_ns = policy.default_timeout_ns;
  MM_ASSIGN_OR_RETURN(auto timeout, IntParameter(request, "timeout", model_name));
  if (timeout) {
    if (*timeout < 0 || *timeout > kMaxTimeoutUs) {
      return InvalidArgument("model '" + std::string(model_name) + "': timeout " +
                             std::to_string(*timeout) +
                             " is out of range; expected microseconds from 0 to " +
                             std::to_string(kMaxTimeoutUs) + " (one hour)");
    }
    // As Triton: a request may shorten the level's timeout when its policy
    // allows an override, never lengthen it; otherwise the parameter is moot.
    const int64_t requested = *timeout * 1000;
    if (policy.allow_timeout_override && requested > 0 &&
        (timeout_ns == 0 || requested < timeout_ns)) {
      timeout_ns = requested;
    }
  }
  a.deadline_ns = timeout_ns > 0 ? now_ns + timeout_ns : 0;
  return a;
}

ModelQueue::ModelQueue(QueueConfig config, std::string model_name)
    : config_(std::move(config)), model_name_(std::move(model_name)) {}

StatusOr<uint64_t> ModelQueue::Push(Item& item) {
  const uint32_t level =
      item.level >= 1 && item.level <= config_.levels ? item.level : config_.default_level;
  const QueuePolicy& policy = config_.PolicyOf(level);
  size_t& waiting = waiting_[level];
  if (policy.max_queue_size > 0 && waiting >= policy.max_queue_size) {
    return ResourceExhausted("queue full for model '" + model_name_ + "' (" +
                             std::to_string(waiting) + " waiting" +
                             (config_.levels > 1 ? " at priority " + std::to_string(level) : "") +
                             ", max_queue_size " + std::to_string(policy.max_queue_size) + ")");
  }
  const uint64_t ticket = next_ticket_++;
  item.ticket = ticket;
  item.level = level;
  if (item.deadline_ns > 0) deadlines_.emplace(item.deadline_ns, level, ticket);
  items_.emplace_hint(items_.end(), Key{level, ticket}, std::move(item));
  ++waiting;
  return ticket;
}

ModelQueue::Item* ModelQueue::Front() { return items_.empty() ? nullptr : &items_.begin()->second; }

ModelQueue::Item ModelQueue::Pop() {
  if (items_.empty()) return Item();
  Item item = std::move(items_.begin()->second);
  Erase(items_.begin());
  return item;
}

std::vector<ModelQueue::Item*> ModelQueue::InOrder(size_t max) {
  std::vector<Item*> out;
  for (auto& [key, item] : items_) {
    if (out.size() >= max) break;
    out.push_back(&item);
  }
  return out;
}

void ModelQueue::Erase(std::map<Key, Item>::iterator at) {
  if (at->first.first != kDelayed) --waiting_[at->first.first];
  items_.erase(at);
}

std::map<ModelQueue::Key, ModelQueue::Item>::iterator ModelQueue::Find(uint64_t ticket) {
  // Only the levels used so far, and the delayed lane, can hold it.
  for (const auto& [level, waiting] : waiting_) {
    if (waiting == 0) continue;
    auto it = items_.find(Key{level, ticket});
    if (it != items_.end()) return it;
  }
  return items_.find(Key{kDelayed, ticket});
}

std::optional<ModelQueue::Item> ModelQueue::Cancel(uint64_t ticket) {
  auto at = Find(ticket);
  if (at == items_.end()) return std::nullopt;
  Item item = std::move(at->second);
  Erase(at);
  return item;
}

std::vector<ModelQueue::Item> ModelQueue::TakeExpired(int64_t now_ns) {
  std::vector<Item> expired;
  while (!deadlines_.empty() && std::get<0>(deadlines_.top()) <= now_ns) {
    const auto [deadline, level, ticket] = deadlines_.top();
    deadlines_.pop();
    auto at = items_.find(Key{level, ticket});
    if (at == items_.end()) continue;  // gone already (or delayed: its key changed)
    Item item = std::move(at->second);
    Erase(at);
    if (config_.PolicyOf(level).delay_on_timeout) {
      // Behind every level, still first come first served among the delayed.
      item.deadline_ns = 0;
      items_.emplace(Key{kDelayed, ticket}, std::move(item));
    } else {
      expired.push_back(std::move(item));
    }
  }
  return expired;
}

int64_t ModelQueue::NextDeadline() {
  while (!deadlines_.empty()) {
    const auto [deadline, level, ticket] = deadlines_.top();
    if (items_.contains(Key{level, ticket})) return deadline;
    deadlines_.pop();  // stale
  }
  return 0;
}

}  // namespace mm
