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
};

// Called exactly once per request, with the response or the reason it failed.
using InferCallback = std::function<void(StatusOr<std::unique_ptr<InferResponse>>)>;

}  // namespace mm
