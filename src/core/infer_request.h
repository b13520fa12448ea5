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
};

// Called exactly once per request, with the response or the reason it failed.
using InferCallback = std::function<void(StatusOr<std::unique_ptr<InferResponse>>)>;

}  // namespace mm
