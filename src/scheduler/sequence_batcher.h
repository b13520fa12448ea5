// SequenceBatcher: Triton's sequence batcher (config sequence_batching), for
// stateful models. Requests carry the parameters sequence_id (a non-zero
// integer or a non-empty string), sequence_start and sequence_end (bools);
// the requests of one sequence reach one instance, one at a time, in the
// order they came, with the control inputs and implicit state the config
// asks for. Requests of different sequences batch together.
//
// Lanes. Each instance is a lane: a ModelScheduler of its own, over that
// one instance, whose dynamic batcher forms the batches (up to
// max_batch_size rows, waiting at most the strategy's
// max_queue_delay_microseconds, preferring oldest's preferred_batch_size).
// A sequence is given a lane when it starts and keeps it:
//  - direct: each lane holds max_batch_size sequences (1 without
//    batching), one per batch slot; a sequence that starts when every slot
//    is taken waits (its requests queued) until one is free. Batches are not
//    padded to the slots: a model that keys state by batch position should
//    use implicit state or CONTROL_SEQUENCE_CORRID.
//  - oldest: a starting sequence goes to the lane with the fewest sequences;
//    a lane holds max_candidate_sequences at most (0: no limit), more wait.
// Only one request of a sequence is in its lane at a time (its next waits
// here): a batch never holds two requests of one sequence, and each request
// sees the state its predecessor left.
//
// Control inputs (control_input): CONTROL_SEQUENCE_START, _END and _READY
// carry the request's flags (READY is always true: a request is sent only
// when it is ready) as the false/true pair the config gives (int32, fp32 or
// bool); CONTROL_SEQUENCE_CORRID carries the sequence_id in its data_type
// (TYPE_UINT64, TYPE_INT64, TYPE_UINT32, TYPE_INT32, or TYPE_STRING). Shape
// [1] per request ([1,1] in a batching model's row).
//
// Implicit state (state): the model reads input_name and writes output_name;
// the batcher feeds each request the state its sequence's previous request
// wrote (zeros, or initial_state's zero_data, at the start) and keeps what
// it writes, which clients never see. Fixed dims only.
//
// Lifetime of a sequence: from its start to the request with sequence_end,
// or until it is idle (no request queued or running) longer than
// max_sequence_idle_microseconds (0: 1 s). A request of a lane whose
// instance fails with UNAVAILABLE (a worker process died) ends every
// sequence of that lane: their state went with the worker.
//
// Errors (the request fails, nothing else changes): a start past
// max_sequences (RESOURCE_EXHAUSTED, naming the limit); no or a bad sequence_id
// (INVALID_ARGUMENT); a sequence_start for a sequence already under way
// (INVALID_ARGUMENT, naming it); a request without sequence_start for a
// sequence not under way (INVALID_ARGUMENT, saying whether it ended, expired
// or lost its worker, when it is one of the last kEndedKept ended).
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/infer_request.h"
#include "core/status.h"
#include "core/thread_annotations.h"
#include "model_config.pb.h"
#include "scheduler/clock.h"
#include "scheduler/timer.h"

namespace mm {

class ModelScheduler;

struct SequenceConfig {
  enum class Strategy { kDirect, kOldest };
  Strategy strategy = Strategy::kOldest;
  int64_t max_idle_ns = 1'000'000'000;
  int64_t max_batch_size = 0;
  size_t sequences_per_lane = 0;  // 0: no limit
  // The lanes' dynamic batching: the strategy's delay and oldest's
  // preferred sizes (ascending).
  int64_t max_delay_ns = 0;
  std::vector<int64_t> preferred;
  struct Control {
    std::string input;
    inference::ModelSequenceBatching::Control::Kind kind;
    DataType dtype = DataType::kInvalid;
    std::vector<std::byte> false_value, true_value;  // START, END, READY
  };
  std::vector<Control> controls;
  struct State {
    std::string input, output;
    DataType dtype = DataType::kInvalid;
    Shape dims;        // without the batch dimension
    size_t bytes = 0;  // of one sequence's state
  };
  std::vector<State> states;
  // The model's outputs (config.output), asked for with the states' when a
  // request names none.
  std::vector<std::string> outputs;
  // Sequences under way or waiting for a lane at once, at most: a client
  // starts them, so they are bounded, and so is the state they hold
  // (kMaxSequences, and kMaxStateBytes over all of them). One more start is
  // RESOURCE_EXHAUSTED.
  size_t max_sequences = 0;
  static constexpr size_t kMaxSequences = 16384;
  static constexpr size_t kMaxStateBytes = size_t{1} << 30;
  static constexpr size_t kMaxSequenceStateBytes = size_t{64} << 20;  // one sequence's

  // INVALID_ARGUMENT naming the field for what mmserve does not support
  // (iterative_sequence, data_file initial states, variable state dims,
  // growable state, a control without its values) or a bad value.
  static StatusOr<SequenceConfig> FromModelConfig(const inference::ModelConfig& config);
};

// The inputs a sequence model's scheduler feeds (control inputs and state
// inputs) and the outputs it takes (state outputs): not the clients'.
std::vector<std::string> SequenceProvidedInputs(const inference::ModelConfig& config);
std::vector<std::string> SequenceStateOutputs(const inference::ModelConfig& config);

// Shared: a request in a lane holds the batcher until it is answered.
class SequenceBatcher : public std::enable_shared_from_this<SequenceBatcher> {
 public:
  // `lanes`: one scheduler per instance (not empty). `timer` ends idle
  // sequences (null: only when the next request comes).
  SequenceBatcher(std::string model_name, SequenceConfig config,
                  std::vector<std::shared_ptr<ModelScheduler>> lanes, const Clock* clock,
                  Timer* timer);

  void Enqueue(std::unique_ptr<InferRequest> request, InferCallback done) MM_EXCLUDES(mu_);

  // Requests accepted and not answered yet; and of those, waiting here
  // (behind their sequence's running request or for a lane) and in lanes.
  size_t pending() const MM_EXCLUDES(mu_);
  std::pair<size_t, size_t> queued_and_executing() const MM_EXCLUDES(mu_);
  void NotifyWhenIdle(std::function<void()> fn) MM_EXCLUDES(mu_);
  // Ends every sequence under way, with `reason` ("ended: ..."): their
  // queued requests fail, and later ones are refused saying so. For an
  // instance that failed with its state (a worker process died).
  void EndAll(const std::string& reason) MM_EXCLUDES(mu_);
  // Sequences under way (started, not ended).
  size_t sequences() const MM_EXCLUDES(mu_);
  uint64_t executions() const;
  uint64_t executed_requests() const;

  static constexpr size_t kEndedKept = 4096;

 private:
  struct Work {
    std::unique_ptr<InferRequest> request;
    InferCallback done;
    bool start = false;
    bool end = false;
  };
  struct Sequence {
    std::string key;  // "i:<id>" or "s:<id>"
    int64_t int_id = 0;
    std::string string_id;
    uint64_t generation = 0;  // tells a restarted sequence of one id from the old
    int lane = -1;            // -1: waits for one
    bool running = false;
    int64_t last_used_ns = 0;
    std::deque<Work> works;
    std::vector<Tensor> state;  // per SequenceConfig::states
  };

  // What dispatching a sequence's next request takes: built under mu_, sent
  // outside it.
  struct Send {
    int lane = 0;
    std::unique_ptr<InferRequest> request;
    InferCallback done;
  };
  Send PrepareLocked(Sequence& sequence) MM_REQUIRES(mu_);
  void SendAll(std::vector<Send> sends);
  void Finished(const std::string& key, uint64_t generation, bool end,
                StatusOr<std::unique_ptr<InferResponse>> result, InferCallback done)
      MM_EXCLUDES(mu_);
  // Keeps the state outputs of `response` as the sequence's state, and takes
  // them out of it.
  Status TakeStatesLocked(Sequence& s, InferResponse& response) MM_REQUIRES(mu_);
  std::string ExpiredReason() const;
  // A lane for a starting sequence, or -1 when every lane is full.
  int PickLaneLocked() const MM_REQUIRES(mu_);
  // Ends `sequence` (it leaves the table; its queued works fail with
  // `reason`, returned in `failed`), gives its lane to a waiting sequence.
  void EndLocked(const std::string& key, const std::string& reason,
                 std::vector<std::pair<InferCallback, Status>>* failed, std::vector<Send>* sends)
      MM_REQUIRES(mu_);
  void RememberEndedLocked(const std::string& key, std::string reason) MM_REQUIRES(mu_);
  // Ends the sequences idle past max_idle_ns; schedules the next sweep.
  void Sweep() MM_EXCLUDES(mu_);
  void ScheduleSweepLocked(int64_t at_ns) MM_REQUIRES(mu_);
  std::vector<std::function<void()>> IdleWaitersLocked() MM_REQUIRES(mu_);
  std::string Describe(const Sequence& s) const;

  const std::string model_name_;
  const SequenceConfig config_;
  const std::vector<std::shared_ptr<ModelScheduler>> lanes_;
  const Clock* const clock_;
  Timer* const timer_;

  mutable Mutex mu_;
  std::map<std::string, Sequence, std::less<>> sequences_ MM_GUARDED_BY(mu_);
  std::vector<size_t> lane_load_ MM_GUARDED_BY(mu_);    // sequences per lane
  std::deque<std::string> waiting_ MM_GUARDED_BY(mu_);  // sequences without a lane, in order
  std::map<std::string, std::string, std::less<>> ended_ MM_GUARDED_BY(mu_);  // key -> why
  std::deque<std::string> ended_order_ MM_GUARDED_BY(mu_);
  size_t accepted_ MM_GUARDED_BY(mu_) = 0;  // requests not answered yet
  size_t in_lanes_ MM_GUARDED_BY(mu_) = 0;  // of which sent to a lane
  uint64_t generations_ MM_GUARDED_BY(mu_) = 0;
  int64_t sweep_at_ MM_GUARDED_BY(mu_) = 0;  // 0: none scheduled
  std::vector<std::function<void()>> idle_waiters_ MM_GUARDED_BY(mu_);
};

}  // namespace mm
