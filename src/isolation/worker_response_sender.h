// WorkerResponseSender: the ResponseSender (backends/backend.h) a worker
// gives its decoupled model for each request of a decoupled Execute. Send
// writes a Respond message on the worker's call socket
// (worker_calls_protocol.h), naming the Execute's token and the request's
// index; the server routes it to the scheduler's sender of that request.
//
// The request is the sender's own copy (its input bytes included): the
// Execute's shared-memory region is reused by the next batch once the
// Execute is answered, while a decoupled model may answer (and read its
// inputs) later, from any thread.
//
// Contract as backend.h's: Send from any thread, serialized; after the
// final, FAILED_PRECONDITION and nothing sent; a response the call channel
// cannot carry (a limit of worker_calls_protocol.h) is sent as that error
// instead (with the same final flag), and Send answers the error; dropping
// the last reference without a final sends an INTERNAL final naming the
// model. cancelled() asks the server whether the request's client went away.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "backends/backend.h"
#include "core/thread_annotations.h"
#include "isolation/worker_model_host.h"

namespace mm {

class WorkerResponseSender final : public ResponseSender {
 public:
  // `request` is owned (its inputs view memory it holds, e.g. its body).
  WorkerResponseSender(std::shared_ptr<WorkerModelHost> host, std::string model_name,
                       uint64_t token, uint32_t index, std::unique_ptr<InferRequest> request);
  ~WorkerResponseSender() override;

  const InferRequest& request() const override { return *request_; }
  Status Send(StatusOr<std::unique_ptr<InferResponse>> response, bool final) override
      MM_EXCLUDES(mu_);
  // Asks the server (a round trip on the call socket); false once completed.
  bool cancelled() const override MM_EXCLUDES(mu_);

  // The Execute failed: the server completes this request itself; the
  // sender sends nothing more (a later Send is FAILED_PRECONDITION).
  void Abandon() MM_EXCLUDES(mu_);

  // A copy of `request` (named `model_name`) whose inputs are copied into
  // memory it owns (its body).
  static std::unique_ptr<InferRequest> OwnedRequest(const std::string& model_name,
                                                    const InferRequest& request);

 private:
  const std::shared_ptr<WorkerModelHost> host_;
  const std::string model_name_;
  const uint64_t token_;
  const uint32_t index_;
  const std::unique_ptr<InferRequest> request_;
  mutable Mutex mu_;
  bool completed_ MM_GUARDED_BY(mu_) = false;
};

}  // namespace mm
