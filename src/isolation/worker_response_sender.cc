#include "isolation/worker_response_sender.h"

#include <cstring>

namespace mm {

WorkerResponseSender::WorkerResponseSender(std::shared_ptr<WorkerModelHost> host,
                                           std::string model_name, uint64_t token, uint32_t index,
                                           std::unique_ptr<InferRequest> request)
    : host_(std::move(host)),
      model_name_(std::move(model_name)),
      token_(token),
      index_(index),
      request_(std::move(request)) {}

WorkerResponseSender::~WorkerResponseSender() {
  bool completed;
  {
    MutexLock lock(mu_);
    completed = completed_;
  }
  if (completed) return;
  (void)Send(Internal("model '" + model_name_ + "' released request '" + request_->id +
                      "' without sending its final response (a backend defect)"),
             true);
}

bool WorkerResponseSender::cancelled() const {
  {
    MutexLock lock(mu_);
    if (completed_) return false;
  }
  return host_->IsCancelled(token_, index_);
}

void WorkerResponseSender::Abandon() {
  MutexLock lock(mu_);
  completed_ = true;
}

Status WorkerResponseSender::Send(StatusOr<std::unique_ptr<InferResponse>> response, bool final) {
  MutexLock lock(mu_);
  if (completed_) {
    return FailedPrecondition("model '" + model_name_ + "': request '" + request_->id +
                              "' was already completed (its final response was sent); a "
                              "response after the final one is dropped");
  }
  if (!final && response.ok() && *response == nullptr) {
    return InvalidArgument("model '" + model_name_ +
                           "': a non-final response needs a response; only the final flag may "
                           "come without one");
  }
  Status s = host_->Respond(token_, index_, final, response);
  if (s.code() == StatusCode::kInvalidArgument) {
    // A response the channel cannot carry: the client hears why instead.
    const Status sent =
        host_->Respond(token_, index_, final, StatusOr<std::unique_ptr<InferResponse>>(s));
    if (final && sent.ok()) completed_ = true;
    return s;
  }
  // Sent, or the server is gone (then nothing more can be sent either).
  if (final || s.code() == StatusCode::kUnavailable) completed_ = true;
  return s;
}

std::unique_ptr<InferRequest> WorkerResponseSender::OwnedRequest(const std::string& model_name,
                                                                 const InferRequest& request) {
  auto copy = std::make_unique<InferRequest>();
  copy->model_name = model_name;
  copy->model_version = request.model_version;
  copy->id = request.id;
  copy->parameters = request.parameters;
  copy->outputs = request.outputs;
  size_t total = 0;
  for (const Tensor& t : request.inputs) total += t.data.size();
  auto buffer = std::make_shared<ByteBuffer>(total);
  copy->inputs.resize(request.inputs.size());
  size_t at = 0;
  for (size_t i = 0; i < request.inputs.size(); ++i) {
    const Tensor& in = request.inputs[i];
    Tensor& t = copy->inputs[i];
    t.name = in.name;
    t.dtype = in.dtype;
    t.shape = in.shape;
    t.parameters = in.parameters;
    if (!in.data.empty()) std::memcpy(buffer->bytes.get() + at, in.data.data(), in.data.size());
    t.data = std::span<const std::byte>(buffer->bytes.get() + at, in.data.size());
    at += in.data.size();
  }
  copy->body = std::move(buffer);
  return copy;
}

}  // namespace mm
