// The transport-agnostic inference request and response.
//
// A transport decodes bytes into an InferRequest whose input tensors are views
// into `body` (the buffer the request arrived in), keeps the body alive through
// `body`, and hands the request to the InferenceService. The response comes
// back through a completion callback, on a thread that is not the transport's.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/cancellation.h"
#include "core/delivery.h"
#include "core/status.h"
#include "core/tensor.h"

namespace mm {

struct InferResponse;
struct InferRequest;

// Decoupled models (Triton's model_transaction_policy { decoupled: true })
// answer a request with zero, one or many responses, then a final flag.
// The request's InferCallback (`done`, exactly once) is its completion: the
// final flag, with the last response, or with an empty response whose
// `complete_only` is set (the model sent the flag alone), or an error. Every
// response before the final one goes to the ResponseStream that a streaming
// transport attaches to the request (InferRequest::stream).
//
// Contract for an implementation (a transport):
//  1. Send is called from any thread, never concurrently for one request, in
//     the order the model sent the responses, and never after the request's
//     `done` began; it must not block (queue the response and return).
//  2. An error response (a non-OK StatusOr) is one failed response: the
//     request goes on (Triton's stream sends it as error_message).
//  3. The stream lives as long as the request's `done` may run (shared_ptr).
// A non-decoupled model never touches it: a transport may attach one to
// every request it sends over a stream.
class ResponseStream {
 public:
  virtual ~ResponseStream() = default;
  // `request`: the request answered (its id, its parameters), valid during
  // the call. One stream may serve every request of a connection.
  virtual void Send(const InferRequest& request,
                    StatusOr<std::unique_ptr<InferResponse>> response) = 0;
};

struct RequestedOutput {
  std::string name;
  Parameters parameters;
};

struct InferRequest {
  std::string model_name;
  std::string model_version;  // empty: the newest ready version
  std::string id;             // echoed in the response
  Parameters parameters;
  std::vector<Tensor> inputs;
  std::vector<RequestedOutput> outputs;  // empty: every output of the model
  // Keeps the transport buffer that input views point into alive.
  std::shared_ptr<const void> body;
  // Set by a transport that can tell when its client goes away; null if not.
  std::shared_ptr<Cancellation> cancellation;
  // Where a decoupled model's non-final responses go (ResponseStream). Null:
  // the transport answers one response per request (HTTP /infer, gRPC
  // ModelInfer); the service refuses a decoupled model's request then.
  std::shared_ptr<ResponseStream> stream;
  // When the transport began to read it (steady clock, ns): the start of its
  // duration in the statistics. 0: when the service received it.
  int64_t received_ns = 0;
};

// How the execution that served a request went (a batch's, shared by its
// requests), set by the scheduler. Durations in ns; the stages are Triton's:
// input (tensors prepared for the engine, batch merge included), infer (the
// engine's run) and output (results taken from it, batch split included).
// A backend that cannot tell input and output from the run leaves them 0.
struct ExecutionTiming {
  int64_t start_ns = 0;  // steady clock, when the execution began
  int64_t input_ns = 0;
  int64_t infer_ns = 0;
  int64_t output_ns = 0;
  int64_t batch_size = 0;  // rows executed together (1 without batching)
};

// One step of an ensemble's execution (backends/ensemble), for its trace: a
// span per step. Steady clock, ns.
struct StepTiming {
  int step = 0;  // its place in the ensemble's config, from 1
  std::string model;
  std::string version;   // the version that answered
  int64_t start_ns = 0;  // sent to its model
  int64_t end_ns = 0;    // its answer came back
  int64_t queue_ns = 0;
  ExecutionTiming timing;
};

struct InferResponse {
  std::string model_name;
  std::string model_version;
  std::string id;
  Parameters parameters;
  std::vector<Tensor> outputs;
  // Set by the scheduler (usage accounting): how long the request waited in
  // its model's queue, and its share of the execution's time (a batch's time
  // is shared among its requests by rows).
  int64_t queue_ns = 0;
  int64_t compute_ns = 0;
  // The execution itself (whole, not shared by rows). A backend may set
  // timing.input_ns and timing.output_ns in Execute; the scheduler sets the
  // rest.
  ExecutionTiming timing;
  // Set by the service on a success: the transport settles it once its write
  // of this response completed or failed (core/delivery.h). Moving it out of
  // the response before the write is how a transport keeps it.
  DeliveryReceipt receipt;
  // Decoupled models: the final flag came without a response of its own
  // (Triton: TRITONSERVER_RESPONSE_COMPLETE_FINAL on no response). The
  // response carries no outputs then; a transport writes no response for it
  // unless its client asked for an empty final one.
  bool complete_only = false;
  // An ensemble's steps, in the order they finished (empty for any other model).
  std::vector<StepTiming> steps;
};

// Called exactly once per request, with the response or the reason it failed
// (for a decoupled model: its last response, see ResponseStream).
using InferCallback = std::function<void(StatusOr<std::unique_ptr<InferResponse>>)>;

}  // namespace mm
