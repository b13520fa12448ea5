#include "scheduler/model_queue.h"

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
  const auto& db = config.dynamic_batching();
  const bool batching = config.has_dynamic_batching();
  q.levels = batching && db.priority_levels() > 0 ? static_cast<uint32_t>(db.priority_levels()) : 1;
  q.default_level = batching && db.default_priority_level() > 0
                        ? static_cast<uint32_t>(db.default_priority_level())
                        : 1;
  const QueuePolicy base = batching ? FromProto(db.default_queue_policy()) : QueuePolicy();
  q.policies.assign(q.levels, base);
  if (batching) {
    for (const auto& [level, policy] : db.priority_queue_policy()) {
      if (level >= 1 && level <= q.levels) q.policies[level - 1] = FromProto(policy);
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
  const QueuePolicy& policy = config.policies[a.level - 1];
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
    : config_(std::move(config)),
      model_name_(std::move(model_name)),
      lanes_(config_.levels + 1),
      waiting_(config_.levels, 0) {}

StatusOr<uint64_t> ModelQueue::Push(Item& item) {
  const uint32_t level = item.level >= 1 && item.level <= config_.levels ? item.level : 1;
  const QueuePolicy& policy = config_.policies[level - 1];
  if (policy.max_queue_size > 0 && waiting_[level - 1] >= policy.max_queue_size) {
    return ResourceExhausted("queue full for model '" + model_name_ + "' (" +
                             std::to_string(waiting_[level - 1]) + " waiting" +
                             (config_.levels > 1 ? " at priority " + std::to_string(level) : "") +
                             ", max_queue_size " + std::to_string(policy.max_queue_size) + ")");
  }
  const uint64_t ticket = next_ticket_++;
  item.ticket = ticket;
  item.level = level;
  if (item.deadline_ns > 0) deadlines_.emplace(item.deadline_ns, ticket);
  lanes_[level - 1].emplace(ticket, std::move(item));
  ++waiting_[level - 1];
  ++size_;
  return ticket;
}

ModelQueue::Item* ModelQueue::Front() {
  for (auto& lane : lanes_) {
    if (!lane.empty()) return &lane.begin()->second;
  }
  return nullptr;
}

ModelQueue::Item ModelQueue::Pop() {
  for (size_t i = 0; i < lanes_.size(); ++i) {
    Lane& lane = lanes_[i];
    if (lane.empty()) continue;
    Item item = std::move(lane.begin()->second);
    lane.erase(lane.begin());
    if (i < config_.levels) --waiting_[i];
    --size_;
    return item;
  }
  return Item();
}

std::vector<ModelQueue::Item*> ModelQueue::InOrder(size_t max) {
  std::vector<Item*> out;
  for (auto& lane : lanes_) {
    for (auto& [ticket, item] : lane) {
      if (out.size() >= max) return out;
      out.push_back(&item);
    }
  }
  return out;
}

ModelQueue::Lane* ModelQueue::Find(uint64_t ticket, Lane::iterator* at) {
  for (auto& lane : lanes_) {
    auto it = lane.find(ticket);
    if (it != lane.end()) {
      *at = it;
      return &lane;
    }
  }
  return nullptr;
}

std::optional<ModelQueue::Item> ModelQueue::Cancel(uint64_t ticket) {
  Lane::iterator at;
  Lane* lane = Find(ticket, &at);
  if (lane == nullptr) return std::nullopt;
  Item item = std::move(at->second);
  const size_t index = static_cast<size_t>(lane - lanes_.data());
  lane->erase(at);
  if (index < config_.levels) --waiting_[index];
  --size_;
  return item;
}

std::vector<ModelQueue::Item> ModelQueue::TakeExpired(int64_t now_ns) {
  std::vector<Item> expired;
  while (!deadlines_.empty() && deadlines_.top().first <= now_ns) {
    const auto [deadline, ticket] = deadlines_.top();
    deadlines_.pop();
    Lane::iterator at;
    Lane* lane = Find(ticket, &at);
    if (lane == nullptr || at->second.deadline_ns != deadline) continue;  // gone already
    const size_t index = static_cast<size_t>(lane - lanes_.data());
    if (index >= config_.levels) continue;  // already delayed
    Item item = std::move(at->second);
    lane->erase(at);
    --waiting_[index];
    if (config_.policies[index].delay_on_timeout) {
      // Behind every level, still first come first served among the delayed.
      item.deadline_ns = 0;
      lanes_.back().emplace(ticket, std::move(item));
    } else {
      --size_;
      expired.push_back(std::move(item));
    }
  }
  return expired;
}

int64_t ModelQueue::NextDeadline() {
  while (!deadlines_.empty()) {
    const auto [deadline, ticket] = deadlines_.top();
    Lane::iterator at;
    Lane* lane = Find(ticket, &at);
    if (lane != nullptr && at->second.deadline_ns == deadline &&
        static_cast<size_t>(lane - lanes_.data()) < config_.levels) {
      return deadline;
    }
    deadlines_.pop();  // stale
  }
  return 0;
}

}  // namespace mm
