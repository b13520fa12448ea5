#include "scheduler/sequence_batcher.h"

#include <algorithm>
#include <cstring>
#include <variant>

#include "core/data_type.h"
#include "scheduler/model_scheduler.h"

namespace mm {

namespace {

using SB = inference::ModelSequenceBatching;

template <typename T>
std::vector<std::byte> BytesOf(T value) {
  std::vector<std::byte> out(sizeof(T));
  std::memcpy(out.data(), &value, sizeof(T));
  return out;
}

std::string KindName(SB::Control::Kind kind) { return SB::Control::Kind_Name(kind); }

bool IsCorridType(DataType t) {
  return t == DataType::kUint64 || t == DataType::kInt64 || t == DataType::kUint32 ||
         t == DataType::kInt32 || t == DataType::kBytes;
}

}  // namespace

StatusOr<SequenceConfig> SequenceConfig::FromModelConfig(const inference::ModelConfig& config) {
  const SB& sb = config.sequence_batching();
  auto bad = [](const std::string& m) { return InvalidArgument("sequence_batching: " + m); };
  if (sb.iterative_sequence()) {
    return bad("iterative_sequence is not supported; leave it false");
  }
  if (config.model_transaction_policy().decoupled()) {
    return bad("a decoupled model cannot be a sequence model here; leave decoupled false");
  }
  SequenceConfig c;
  c.max_batch_size = config.max_batch_size();
  if (sb.has_oldest()) {
    c.strategy = Strategy::kOldest;
    const auto& oldest = sb.oldest();
    if (oldest.max_candidate_sequences() < 0) {
      return bad("oldest.max_candidate_sequences is negative; expected 0 (no limit) or more");
    }
    c.sequences_per_lane = static_cast<size_t>(oldest.max_candidate_sequences());
    for (int32_t p : oldest.preferred_batch_size()) {
      if (p > 0 && p <= c.max_batch_size) c.preferred.push_back(p);
    }
    std::sort(c.preferred.begin(), c.preferred.end());
    c.preferred.erase(std::unique(c.preferred.begin(), c.preferred.end()), c.preferred.end());
    c.max_delay_ns = static_cast<int64_t>(oldest.max_queue_delay_microseconds()) * 1000;
  } else {  // direct, Triton's default
    c.strategy = Strategy::kDirect;
    c.sequences_per_lane = static_cast<size_t>(std::max<int64_t>(1, c.max_batch_size));
    c.max_delay_ns = static_cast<int64_t>(sb.direct().max_queue_delay_microseconds()) * 1000;
  }
  if (sb.max_sequence_idle_microseconds() > 0) {
    c.max_idle_ns = static_cast<int64_t>(sb.max_sequence_idle_microseconds()) * 1000;
  }
  for (const auto& ci : sb.control_input()) {
    if (ci.name().empty()) return bad("a control_input has no name");
    if (ci.control_size() != 1) {
      return bad("control_input '" + ci.name() + "' has " + std::to_string(ci.control_size()) +
                 " controls; expected one");
    }
    const SB::Control& ctl = ci.control(0);
    Control control;
    control.input = ci.name();
    control.kind = ctl.kind();
    const std::string what = "control_input '" + ci.name() + "' (" + KindName(ctl.kind()) + ")";
    if (ctl.kind() == SB::Control::CONTROL_SEQUENCE_CORRID) {
      control.dtype = static_cast<DataType>(ctl.data_type());
      if (!IsCorridType(control.dtype)) {
        return bad(what + " has data_type " + std::string(DataTypeConfigName(control.dtype)) +
                   "; expected TYPE_UINT64, TYPE_INT64, TYPE_UINT32, TYPE_INT32 or TYPE_STRING");
      }
    } else if (ctl.int32_false_true_size() == 2) {
      control.dtype = DataType::kInt32;
      control.false_value = BytesOf(ctl.int32_false_true(0));
      control.true_value = BytesOf(ctl.int32_false_true(1));
    } else if (ctl.fp32_false_true_size() == 2) {
      control.dtype = DataType::kFp32;
      control.false_value = BytesOf(ctl.fp32_false_true(0));
      control.true_value = BytesOf(ctl.fp32_false_true(1));
    } else if (ctl.bool_false_true_size() == 2) {
      control.dtype = DataType::kBool;
      control.false_value = BytesOf(static_cast<uint8_t>(ctl.bool_false_true(0)));
      control.true_value = BytesOf(static_cast<uint8_t>(ctl.bool_false_true(1)));
    } else {
      return bad(what + " needs its false and true values: int32_false_true, fp32_false_true " +
                 "or bool_false_true with two entries");
    }
    c.controls.push_back(std::move(control));
  }
  for (const auto& st : sb.state()) {
    const std::string what = "state '" + st.input_name() + "'";
    if (st.input_name().empty() || st.output_name().empty()) {
      return bad("a state needs both input_name and output_name");
    }
    if (st.use_growable_memory()) return bad(what + ": use_growable_memory is not supported");
    State state;
    state.input = st.input_name();
    state.output = st.output_name();
    state.dtype = static_cast<DataType>(st.data_type());
    if (state.dtype == DataType::kBytes || DataTypeSize(state.dtype) == 0) {
      return bad(what + " has data_type " + std::string(DataTypeConfigName(state.dtype)) +
                 "; expected a fixed-size type such as TYPE_FP32");
    }
    size_t elements = 1;
    for (int64_t d : st.dims()) {
      if (d <= 0 || d > (int64_t{1} << 31)) {
        return bad(what + " has dims " + ShapeToString(Shape(st.dims().begin(), st.dims().end())) +
                   "; expected fixed positive sizes (variable state is not supported)");
      }
      elements *= static_cast<size_t>(d);
      if (elements > (size_t{1} << 28)) return bad(what + " is larger than 2^28 elements");
    }
    state.dims.assign(st.dims().begin(), st.dims().end());
    state.bytes = elements * DataTypeSize(state.dtype);
    if (st.initial_state_size() > 1) return bad(what + " has more than one initial_state");
    if (st.initial_state_size() == 1 && st.initial_state(0).has_data_file()) {
      return bad(what + ": initial_state data_file is not supported; use zero_data");
    }
    c.states.push_back(std::move(state));
  }
  size_t state_bytes = 0;
  for (const State& st : c.states) state_bytes += st.bytes;
  if (state_bytes > kMaxSequenceStateBytes) {
    return bad("its states hold " + std::to_string(state_bytes) +
               " bytes per sequence; expected at most " + std::to_string(kMaxSequenceStateBytes));
  }
  c.max_sequences = std::max<size_t>(
      1, std::min(kMaxSequences, state_bytes == 0 ? kMaxSequences : kMaxStateBytes / state_bytes));
  for (const auto& out : config.output()) c.outputs.push_back(out.name());
  return c;
}

std::vector<std::string> SequenceProvidedInputs(const inference::ModelConfig& config) {
  std::vector<std::string> names;
  if (!config.has_sequence_batching()) return names;
  for (const auto& ci : config.sequence_batching().control_input()) names.push_back(ci.name());
  for (const auto& st : config.sequence_batching().state()) names.push_back(st.input_name());
  return names;
}

std::vector<std::string> SequenceStateOutputs(const inference::ModelConfig& config) {
  std::vector<std::string> names;
  if (!config.has_sequence_batching()) return names;
  for (const auto& st : config.sequence_batching().state()) names.push_back(st.output_name());
  return names;
}

SequenceBatcher::SequenceBatcher(std::string model_name, SequenceConfig config,
                                 std::vector<std::shared_ptr<ModelScheduler>> lanes,
                                 const Clock* clock, Timer* timer)
    : model_name_(std::move(model_name)),
      config_(std::move(config)),
      lanes_(std::move(lanes)),
      clock_(clock),
      timer_(timer) {
  MutexLock lock(mu_);
  lane_load_.assign(lanes_.size(), 0);
}

namespace {

// The request's sequence: its key, and its id as given.
struct SequenceId {
  std::string key;
  int64_t int_id = 0;
  std::string string_id;
  bool is_string = false;
};

StatusOr<SequenceId> ParseSequenceId(const InferRequest& request, const std::string& model) {
  auto it = request.parameters.find("sequence_id");
  const std::string expected =
      "model '" + model +
      "' batches sequences: every request needs the parameter sequence_id, a non-zero integer "
      "or a non-empty string";
  if (it == request.parameters.end()) return InvalidArgument(expected);
  SequenceId id;
  if (const auto* i = std::get_if<int64_t>(&it->second); i != nullptr && *i != 0) {
    id.int_id = *i;
    id.key = "i:" + std::to_string(*i);
    return id;
  }
  if (const auto* d = std::get_if<double>(&it->second);
      d != nullptr && *d != 0 && *d == static_cast<double>(static_cast<int64_t>(*d))) {
    id.int_id = static_cast<int64_t>(*d);
    id.key = "i:" + std::to_string(id.int_id);
    return id;
  }
  if (const auto* s = std::get_if<std::string>(&it->second); s != nullptr && !s->empty()) {
    if (s->size() > 256) return InvalidArgument(expected + " of at most 256 bytes");
    id.string_id = *s;
    id.is_string = true;
    id.key = "s:" + *s;
    return id;
  }
  return InvalidArgument(expected);
}

StatusOr<bool> FlagParameter(const InferRequest& request, std::string_view name,
                             const std::string& model) {
  auto it = request.parameters.find(name);
  if (it == request.parameters.end()) return false;
  if (const auto* b = std::get_if<bool>(&it->second)) return *b;
  if (const auto* i = std::get_if<int64_t>(&it->second); i != nullptr && (*i == 0 || *i == 1)) {
    return *i == 1;
  }
  return InvalidArgument("model '" + model + "': parameter " + std::string(name) +
                         " must be a boolean");
}

}  // namespace

std::string SequenceBatcher::Describe(const Sequence& s) const {
  return "model '" + model_name_ + "': sequence " +
         (s.string_id.empty() ? std::to_string(s.int_id) : "'" + s.string_id + "'");
}

void SequenceBatcher::Enqueue(std::unique_ptr<InferRequest> request, InferCallback done) {
  auto id = ParseSequenceId(*request, model_name_);
  if (!id.ok()) return done(id.status());
  auto start = FlagParameter(*request, "sequence_start", model_name_);
  if (!start.ok()) return done(start.status());
  auto end = FlagParameter(*request, "sequence_end", model_name_);
  if (!end.ok()) return done(end.status());
  const std::string label =
      "model '" + model_name_ + "': sequence " +
      (id->is_string ? "'" + id->string_id + "'" : std::to_string(id->int_id));
  if (id->is_string) {
    for (const auto& c : config_.controls) {
      if (c.kind == SB::Control::CONTROL_SEQUENCE_CORRID && c.dtype != DataType::kBytes) {
        return done(InvalidArgument(
            label + ": a string sequence_id, but control_input '" + c.input + "' takes the id as " +
            std::string(DataTypeConfigName(c.dtype)) + "; send an integer sequence_id"));
      }
    }
  }
  const int64_t now = clock_->NowNs();
  std::vector<Send> sends;
  std::vector<std::pair<InferCallback, Status>> failed;
  Status refused;
  {
    MutexLock lock(mu_);
    auto it = sequences_.find(id->key);
    // One idle past its limit ends now, whether or not a sweep ran.
    if (it != sequences_.end() && !it->second.running && it->second.works.empty() &&
        it->second.lane >= 0 && now - it->second.last_used_ns >= config_.max_idle_ns) {
      EndLocked(id->key, ExpiredReason(), &failed, &sends);
      it = sequences_.end();
    }
    if (*start && it == sequences_.end() && sequences_.size() >= config_.max_sequences) {
      refused = ResourceExhausted(
          label + " cannot start: the model has " + std::to_string(sequences_.size()) +
          " sequences under way or waiting, its limit (its state's memory bounds it); end some "
          "(sequence_end) or let idle ones expire");
    } else if (*start && it != sequences_.end()) {
      refused = InvalidArgument(label +
                                " is already under way: this request says sequence_start again; "
                                "end it first (sequence_end) or use another sequence_id");
    } else if (!*start && it == sequences_.end()) {
      auto ended = ended_.find(id->key);
      refused = InvalidArgument(label + " is not under way" +
                                (ended != ended_.end()
                                     ? ": it " + ended->second
                                     : "; a sequence begins with a request whose sequence_start "
                                       "is true") +
                                "; this request was not executed");
    } else {
      if (*start) {
        Sequence s;
        s.key = id->key;
        s.int_id = id->int_id;
        s.string_id = id->string_id;
        s.generation = ++generations_;
        for (const SequenceConfig::State& st : config_.states) {
          Tensor& t = s.state.emplace_back();
          t.name = st.input;
          t.dtype = st.dtype;
          if (config_.max_batch_size > 0) t.shape.push_back(1);
          t.shape.insert(t.shape.end(), st.dims.begin(), st.dims.end());
          AttachBuffer(t, std::make_shared<ByteBuffer>(st.bytes));  // zeros
        }
        const int lane = PickLaneLocked();
        if (lane >= 0) {
          s.lane = lane;
          ++lane_load_[lane];
        } else {
          waiting_.push_back(id->key);
        }
        it = sequences_.emplace(id->key, std::move(s)).first;
      }
      Sequence& s = it->second;
      s.last_used_ns = now;
      s.works.push_back({std::move(request), std::move(done), *start, *end});
      ++accepted_;
      if (!s.running && s.lane >= 0) sends.push_back(PrepareLocked(s));
    }
  }
  for (auto& [fn, status] : failed) fn(std::move(status));
  if (!refused.ok()) return done(std::move(refused));
  SendAll(std::move(sends));
}

std::string SequenceBatcher::ExpiredReason() const {
  return "expired: no request came for longer than max_sequence_idle_microseconds (" +
         std::to_string(config_.max_idle_ns / 1000) + ")";
}

int SequenceBatcher::PickLaneLocked() const {
  int best = -1;
  for (size_t i = 0; i < lane_load_.size(); ++i) {
    if (config_.sequences_per_lane > 0 && lane_load_[i] >= config_.sequences_per_lane) continue;
    if (best < 0 || lane_load_[i] < lane_load_[best]) best = static_cast<int>(i);
  }
  return best;
}

SequenceBatcher::Send SequenceBatcher::PrepareLocked(Sequence& s) {
  Work work = std::move(s.works.front());
  s.works.pop_front();
  s.running = true;
  InferRequest& r = *work.request;
  // Control inputs, in one buffer, each 8-byte aligned (an INT64 CORRID
  // after an INT32 flag would not be).
  auto aligned = [](size_t n) { return (n + 7) & ~size_t{7}; };
  size_t bytes = 0;
  for (const auto& c : config_.controls) {
    if (c.kind != SB::Control::CONTROL_SEQUENCE_CORRID) {
      bytes += aligned(c.true_value.size());
    } else if (c.dtype == DataType::kBytes) {
      bytes +=
          aligned(4 + (s.string_id.empty() ? std::to_string(s.int_id).size() : s.string_id.size()));
    } else {
      bytes += aligned(DataTypeSize(c.dtype));
    }
  }
  if (!config_.controls.empty()) {
    auto buffer = std::make_shared<ByteBuffer>(bytes);
    size_t at = 0;
    for (const auto& c : config_.controls) {
      std::byte* p = buffer->bytes.get() + at;
      size_t n = 0;
      switch (c.kind) {
        case SB::Control::CONTROL_SEQUENCE_START:
        case SB::Control::CONTROL_SEQUENCE_END:
        case SB::Control::CONTROL_SEQUENCE_READY: {
          const bool on = c.kind == SB::Control::CONTROL_SEQUENCE_READY ||
                          (c.kind == SB::Control::CONTROL_SEQUENCE_START ? work.start : work.end);
          const auto& v = on ? c.true_value : c.false_value;
          std::memcpy(p, v.data(), v.size());
          n = v.size();
          break;
        }
        default: {  // CORRID
          if (c.dtype == DataType::kBytes) {
            const std::string text = s.string_id.empty() ? std::to_string(s.int_id) : s.string_id;
            const auto len = static_cast<uint32_t>(text.size());
            std::memcpy(p, &len, 4);
            std::memcpy(p + 4, text.data(), text.size());
            n = 4 + text.size();
          } else if (DataTypeSize(c.dtype) == 8) {
            std::memcpy(p, &s.int_id, 8);
            n = 8;
          } else {
            const auto narrow = static_cast<int32_t>(s.int_id);
            std::memcpy(p, &narrow, 4);
            n = 4;
          }
        }
      }
      Tensor& t = r.inputs.emplace_back();
      t.name = c.input;
      t.dtype = c.dtype;
      t.shape = config_.max_batch_size > 0 ? Shape{1, 1} : Shape{1};
      t.data = {p, n};
      t.owner = buffer;
      at += aligned(n);
    }
  }
  if (!config_.states.empty()) {
    for (const Tensor& state : s.state) r.inputs.push_back(state);
    if (r.outputs.empty()) {
      for (const std::string& name : config_.outputs) r.outputs.push_back({name, {}});
    }
    for (const auto& st : config_.states) r.outputs.push_back({st.output, {}});
  }
  ++in_lanes_;
  Send send;
  send.lane = s.lane;
  send.request = std::move(work.request);
  send.done = [self = shared_from_this(), key = s.key, generation = s.generation, end = work.end,
               done =
                   std::move(work.done)](StatusOr<std::unique_ptr<InferResponse>> result) mutable {
    self->Finished(key, generation, end, std::move(result), std::move(done));
  };
  return send;
}

void SequenceBatcher::SendAll(std::vector<Send> sends) {
  for (Send& s : sends) lanes_[s.lane]->Enqueue(std::move(s.request), std::move(s.done));
}

Status SequenceBatcher::TakeStatesLocked(Sequence& s, InferResponse& response) {
  for (size_t k = 0; k < config_.states.size(); ++k) {
    const SequenceConfig::State& st = config_.states[k];
    auto out = std::find_if(response.outputs.begin(), response.outputs.end(),
                            [&](const Tensor& t) { return t.name == st.output; });
    if (out == response.outputs.end()) {
      return Internal(Describe(s) + ": the model did not return its state output '" + st.output +
                      "'");
    }
    if (out->dtype != st.dtype || out->data.size() != st.bytes) {
      return Internal(Describe(s) + ": state output '" + st.output + "' is " +
                      std::string(DataTypeConfigName(out->dtype)) + " " +
                      ShapeToString(out->shape) + "; expected " +
                      std::string(DataTypeConfigName(st.dtype)) + " " + ShapeToString(st.dims) +
                      " per request");
    }
    // Its own copy: the model's output may view a batch's buffer or a
    // worker's shared memory.
    Tensor& held = s.state[k];
    auto buffer = std::make_shared<ByteBuffer>(st.bytes);
    std::memcpy(buffer->bytes.get(), out->data.data(), st.bytes);
    AttachBuffer(held, std::move(buffer));
    response.outputs.erase(out);
  }
  return OkStatus();
}

void SequenceBatcher::Finished(const std::string& key, uint64_t generation, bool end,
                               StatusOr<std::unique_ptr<InferResponse>> result,
                               InferCallback done) {
  const int64_t now = clock_->NowNs();
  std::vector<Send> sends;
  std::vector<std::pair<InferCallback, Status>> failed;
  std::vector<std::function<void()>> waiters;
  {
    MutexLock lock(mu_);
    --in_lanes_;
    --accepted_;
    auto it = sequences_.find(key);
    if (it != sequences_.end() && it->second.generation == generation) {
      Sequence& s = it->second;
      s.running = false;
      s.last_used_ns = now;
      if (result.ok()) {
        if (Status taken = TakeStatesLocked(s, **result); !taken.ok()) result = taken;
      }
      if (!result.ok() && result.status().code() == StatusCode::kUnavailable) {
        // Its instance failed (a worker process died): the state of every
        // sequence of the lane went with it.
        const int lane = s.lane;
        const std::string reason =
            "ended: the instance serving it failed (" + result.status().message() + ")";
        std::vector<std::string> keys;
        for (const auto& [k, other] : sequences_) {
          if (other.lane == lane) keys.push_back(k);
        }
        for (const std::string& k : keys) EndLocked(k, reason, &failed, &sends);
      } else if (end) {
        EndLocked(key, "ended: its request with sequence_end came", &failed, &sends);
      } else if (!s.works.empty()) {
        sends.push_back(PrepareLocked(s));
      } else {
        ScheduleSweepLocked(now + config_.max_idle_ns);
      }
    }
    waiters = IdleWaitersLocked();
  }
  SendAll(std::move(sends));
  done(std::move(result));
  for (auto& [fn, status] : failed) fn(std::move(status));
  for (auto& fn : waiters) fn();
}

void SequenceBatcher::EndLocked(const std::string& key, const std::string& reason,
                                std::vector<std::pair<InferCallback, Status>>* failed,
                                std::vector<Send>* sends) {
  auto it = sequences_.find(key);
  if (it == sequences_.end()) return;
  Sequence& s = it->second;
  for (Work& w : s.works) {
    failed->push_back({std::move(w.done), InvalidArgument(Describe(s) + " " + reason +
                                                          "; this request was not executed")});
  }
  accepted_ -= s.works.size();
  const int lane = s.lane;
  if (lane >= 0) {
    --lane_load_[lane];
  } else {
    auto waiting = std::find(waiting_.begin(), waiting_.end(), key);
    if (waiting != waiting_.end()) waiting_.erase(waiting);
  }
  RememberEndedLocked(key, reason);
  sequences_.erase(it);
  // The freed place goes to the sequence that has waited longest for one.
  while (lane >= 0 && !waiting_.empty()) {
    const int pick = PickLaneLocked();
    if (pick < 0) break;
    Sequence& next = sequences_.at(waiting_.front());
    waiting_.pop_front();
    next.lane = pick;
    ++lane_load_[pick];
    if (!next.running && !next.works.empty()) sends->push_back(PrepareLocked(next));
  }
}

void SequenceBatcher::RememberEndedLocked(const std::string& key, std::string reason) {
  if (ended_.insert_or_assign(key, std::move(reason)).second) ended_order_.push_back(key);
  while (ended_order_.size() > kEndedKept) {
    ended_.erase(ended_order_.front());
    ended_order_.pop_front();
  }
}

void SequenceBatcher::ScheduleSweepLocked(int64_t at_ns) {
  if (timer_ == nullptr || (sweep_at_ != 0 && sweep_at_ <= at_ns)) return;
  sweep_at_ = at_ns;
  timer_->At(at_ns, [weak = weak_from_this()] {
    if (auto self = weak.lock()) self->Sweep();
  });
}

void SequenceBatcher::Sweep() {
  const int64_t now = clock_->NowNs();
  std::vector<Send> sends;
  std::vector<std::pair<InferCallback, Status>> failed;
  std::vector<std::function<void()>> waiters;
  {
    MutexLock lock(mu_);
    if (sweep_at_ > now) return;  // a later sweep is due instead
    sweep_at_ = 0;
    std::vector<std::string> expired;
    int64_t next = 0;
    for (const auto& [key, s] : sequences_) {
      if (s.running || !s.works.empty() || s.lane < 0) continue;
      const int64_t due = s.last_used_ns + config_.max_idle_ns;
      if (due <= now) {
        expired.push_back(key);
      } else if (next == 0 || due < next) {
        next = due;
      }
    }
    const std::string reason = ExpiredReason();
    for (const std::string& key : expired) EndLocked(key, reason, &failed, &sends);
    if (next != 0) ScheduleSweepLocked(next);
    waiters = IdleWaitersLocked();
  }
  SendAll(std::move(sends));
  for (auto& [fn, status] : failed) fn(std::move(status));
  for (auto& fn : waiters) fn();
}

void SequenceBatcher::EndAll(const std::string& reason) {
  std::vector<Send> sends;
  std::vector<std::pair<InferCallback, Status>> failed;
  std::vector<std::function<void()>> waiters;
  {
    MutexLock lock(mu_);
    std::vector<std::string> keys;
    for (const auto& [key, s] : sequences_) keys.push_back(key);
    for (const std::string& key : keys) EndLocked(key, reason, &failed, &sends);
    waiters = IdleWaitersLocked();
  }
  SendAll(std::move(sends));
  for (auto& [fn, status] : failed) fn(std::move(status));
  for (auto& fn : waiters) fn();
}

std::vector<std::function<void()>> SequenceBatcher::IdleWaitersLocked() {
  std::vector<std::function<void()>> waiters;
  if (accepted_ == 0) waiters.swap(idle_waiters_);
  return waiters;
}

size_t SequenceBatcher::pending() const {
  MutexLock lock(mu_);
  return accepted_;
}

std::pair<size_t, size_t> SequenceBatcher::queued_and_executing() const {
  size_t queued = 0, executing = 0;
  for (const auto& lane : lanes_) {
    auto [q, e] = lane->queued_and_executing();
    queued += q;
    executing += e;
  }
  MutexLock lock(mu_);
  return {queued + (accepted_ - in_lanes_), executing};
}

void SequenceBatcher::NotifyWhenIdle(std::function<void()> fn) {
  {
    MutexLock lock(mu_);
    if (accepted_ > 0) {
      idle_waiters_.push_back(std::move(fn));
      return;
    }
  }
  fn();
}

size_t SequenceBatcher::sequences() const {
  MutexLock lock(mu_);
  return sequences_.size();
}

uint64_t SequenceBatcher::executions() const {
  uint64_t n = 0;
  for (const auto& lane : lanes_) n += lane->executions();
  return n;
}

uint64_t SequenceBatcher::executed_requests() const {
  uint64_t n = 0;
  for (const auto& lane : lanes_) n += lane->executed_requests();
  return n;
}

}  // namespace mm
