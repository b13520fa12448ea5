// FakeInstance: a ModelInstance (backends/backend.h) for tests, which counts
// and records what it is asked to run and answers as the test says, with no
// framework behind it.
//
// What a test can ask of it (all optional, through Options):
//  - counters: executions, how many run at once (now and at the peak), and
//    the bytes live instances hold, shared by every instance that points at
//    the same FakeCounters (say, all instances of a model);
//  - a failing request id, or FailWith() for every later request;
//  - a copy of every request (record), read back with requests();
//  - a handler that fills the response (what the model "computes"; it may
//    block, say on a gate, to hold an execution). Without one the response
//    has no outputs.
//
// Thread-safety: Execute follows backend.h (one at a time per instance, but
// instances sharing counters may run concurrently); requests(), FailWith()
// and the counters may be used from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "core/thread_annotations.h"

namespace mm::fakes {

// Counts several instances report into. Outlives them.
struct FakeCounters {
  std::atomic<int> executions{0};
  std::atomic<int> concurrent{0};   // executing now
  std::atomic<int> peak{0};         // the most executing at once so far
  std::atomic<uint64_t> memory{0};  // Options::bytes of every live instance
};

// A copy of one input as the instance saw it.
struct SeenInput {
  std::string name;
  DataType dtype = DataType::kInvalid;
  Shape shape;
  std::vector<std::byte> bytes;
};

// A copy of one request as the instance saw it.
struct SeenRequest {
  std::string id;
  std::string model_name;
  std::vector<std::string> requested_outputs;
  std::vector<SeenInput> inputs;
};

class FakeInstance final : public ModelInstance {
 public:
  // Fills `response` for `request`; its status is Execute's.
  using Handler = std::function<Status(const InferRequest& request, InferResponse& response)>;

  struct Options {
    // Not owned; null: nothing counted. Outlives every Execute, and with
    // `bytes` the instance itself.
    FakeCounters* counters = nullptr;
    uint64_t bytes = 0;   // added to counters->memory while alive
    bool record = false;  // keep a SeenRequest of every request
    // A request with this id fails INVALID_ARGUMENT ("asked to fail") after
    // being counted and recorded; empty: none does.
    std::string fail_id;
    Handler handler;  // empty: OK with no outputs
    // ExecuteList (a batch as a list) returns this when not OK, failing the
    // whole list; OK: it runs Execute on each request, each its own result.
    Status list_fails;
  };

  FakeInstance();
  explicit FakeInstance(Options options);
  ~FakeInstance() override;

  Status Execute(const InferRequest& request, InferResponse& response) override;
  // Records the list's ids (lists()), then as Options::list_fails says.
  Status ExecuteList(std::span<const InferRequest* const> requests,
                     std::span<InferResponse* const> responses, std::span<Status> results) override
      MM_EXCLUDES(mu_);

  // Every later Execute answers `status` (after counting and recording);
  // OK goes back to the handler.
  void FailWith(Status status) MM_EXCLUDES(mu_);
  // The requests recorded so far, oldest first (Options::record).
  std::vector<SeenRequest> requests() const MM_EXCLUDES(mu_);
  // The ids of every list ExecuteList received, oldest first.
  std::vector<std::vector<std::string>> lists() const MM_EXCLUDES(mu_);

 private:
  const Options options_;
  mutable Mutex mu_;
  Status fail_ MM_GUARDED_BY(mu_);
  std::vector<SeenRequest> requests_ MM_GUARDED_BY(mu_);
  std::vector<std::vector<std::string>> lists_ MM_GUARDED_BY(mu_);
};

// Handlers.
// One empty FP32 output named `name`.
FakeInstance::Handler EmptyOutput(std::string name);
// An FP32 output `name` of the first input's shape: each of its FP32 values
// plus `add` (an input of another type, or none: no output values).
FakeInstance::Handler AddToInput(std::string name, float add);

}  // namespace mm::fakes
