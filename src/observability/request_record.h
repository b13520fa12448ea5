// What a transport knows of one inference request once it has answered it:
// the access log writes it, the tracer turns it into spans. Views only: valid
// for the call it is passed to.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "core/infer_request.h"
#include "core/status.h"

namespace mm {

struct RequestRecord {
  std::string_view protocol;  // "http" or "grpc"
  std::string_view request_id;
  std::string_view tenant;  // empty before authentication
  std::string_view model;
  std::string_view version;  // the version that answered (empty if none did)
  StatusCode code = StatusCode::kOk;
  std::string_view error;  // the message, when code is not OK
  // Steady clock, ns: the request's bytes were in hand, decoded, answered by
  // the service, and its reply encoded. 0: did not happen.
  int64_t received_ns = 0;
  int64_t decoded_ns = 0;
  int64_t answered_ns = 0;
  int64_t encoded_ns = 0;
  // From the response (0 without one): the time in the queue and the
  // execution that served it.
  int64_t queue_ns = 0;
  ExecutionTiming timing;
  // An ensemble's steps (InferResponse::steps); empty for any other model.
  std::span<const StepTiming> steps;
};

}  // namespace mm
